"""OPC UA southbound driver (kind "opcua"): the gateway as a client of an upstream OPC UA server.

``client.build_client`` (a configured asyncua Client with the trust list), ``pki`` (client
certificate, trust-list folders), ``settings`` (the config model, no asyncua), ``mapping``
(DataValue <-> TagSample), ``driver`` (the session). See docs/opcua_client.md.
"""
