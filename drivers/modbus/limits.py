"""Limits of the Modbus protocol, defined once (pure; no imports).

The settings models (``drivers.modbus.settings``) put these numbers in their field limits; the pure
helpers that are also used on their own (``make_point``, ``plan_reads``) check their arguments
against the same names. The drivers do not check them again. Limits that only the settings know
(timeouts, retries, demotion) are the field limits of ``drivers.modbus.settings``.
"""

from __future__ import annotations

# -- the protocol (Modbus Application Protocol Specification v1.1b3) ------------------------------------
MAX_ADDRESS = 65535  # addresses of every table are 0..65535
MAX_UNIT_ID = 255
MAX_READ_REGISTERS = 125  # FC3/FC4: registers one read returns
MAX_READ_BITS = 2000  # FC1/FC2: coils or discrete inputs one read returns
MAX_WRITE_REGISTERS = 123  # FC16: registers one write carries

# A string is read in one request and written in one request: a readable string may span a whole
# FC3/FC4 response, a writable one only what FC16 carries.
MAX_STRING_REGISTERS = MAX_READ_REGISTERS
MAX_WRITABLE_STRING_REGISTERS = MAX_WRITE_REGISTERS

# -- request shaping ----------------------------------------------------------------------------------
# Unused addresses a block read may span to merge two tags. A register block cannot bridge a wider
# gap, so a larger value is refused as a mistake rather than accepted without effect.
MAX_GAP = MAX_READ_REGISTERS - 1
