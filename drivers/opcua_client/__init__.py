"""OPC UA southbound driver (kind "opcua"): the gateway as a client of an upstream OPC UA server.

``client.build_client`` (a configured asyncua Client with the trust list), ``pki`` (client
certificate, trust-list folders), ``settings`` and ``points`` (the config model and NodeId syntax,
no asyncua), ``mapping`` (DataValue <-> TagSample), ``requests`` (the request structures sent),
``driver`` (the only module with a session), ``subscription`` (mode "subscription" on it). See docs/opcua_client.md.
"""
