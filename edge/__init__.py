"""edgetwin: an OPC UA edge gateway with a digital twin inside."""

__version__ = "0.1.0"
