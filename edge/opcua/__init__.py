"""The northbound OPC UA server's parts: information model, logins and sessions, client writes."""
