"""Engineering units: the config's unit text -> OPC UA EUInformation (UNECE Rec. 20 common codes).

OPC UA Part 8 encodes a UNECE common code as UnitId = the code's ASCII bytes packed big-endian
(e.g. "CEL" -> 0x43454C = 4408652), with NamespaceUri http://www.opcfoundation.org/UA/units/un/cefact.
"""

from __future__ import annotations

from typing import NamedTuple

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


class Unit(NamedTuple):
    code: str  # UNECE common code
    symbol: str
    description: str


UNITS: dict[str, Unit] = {
    "degC": Unit("CEL", "°C", "degree Celsius"),
    "K": Unit("KEL", "K", "kelvin"),
    "%": Unit("P1", "%", "percent"),
    "l/min": Unit("L2", "l/min", "litre per minute"),
    "m3/h": Unit("MQH", "m³/h", "cubic metre per hour"),
    "l": Unit("LTR", "l", "litre"),
    "A": Unit("AMP", "A", "ampere"),
    "V": Unit("VLT", "V", "volt"),
    "W": Unit("WTT", "W", "watt"),
    "kW": Unit("KWT", "kW", "kilowatt"),
    "bar": Unit("BAR", "bar", "bar"),
    "Pa": Unit("PAL", "Pa", "pascal"),
    "mm/s": Unit("C16", "mm/s", "millimetre per second"),
    "g": Unit("K86", "g", "acceleration of free fall"),
    "rpm": Unit("RPM", "r/min", "revolutions per minute"),
    "Hz": Unit("HTZ", "Hz", "hertz"),
    "s": Unit("SEC", "s", "second"),
    "h": Unit("HUR", "h", "hour"),
    "m": Unit("MTR", "m", "metre"),
    "1": Unit("C62", "1", "one (dimensionless)"),
}


def unit_id(code: str) -> int:
    value = 0
    for ch in code:
        value = (value << 8) | ord(ch)
    return value


def lookup(text: str | None) -> Unit | None:
    """The UNECE unit for a config unit text, or None when unknown (the text is still shown)."""
    if text is None:
        return None
    return UNITS.get(text)
