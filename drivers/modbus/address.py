"""Modbus addresses and validated register points (pure; no I/O).

Address grammar (case-insensitive, surrounding blanks ignored)::

    address   := prefixed | classic
    prefixed  := area ":" number [ "." bit ]     zero-based protocol address
    area      := "hr"              holding register   (FC3 read, FC6/FC16 write)
               | "ir"              input register     (FC4)
               | "coil" | "co"     coil               (FC1 read, FC5 write)
               | "di"              discrete input     (FC2)
    classic   := digit 4 or 5 digits [ "." bit ]     one-based "Modicon" numbering
                 "4xxxx"/"4xxxxx"  holding register   40001  -> hr:0,  400001 -> hr:0
                 "3xxxx"/"3xxxxx"  input register     30010  -> ir:9
                 "1xxxx"/"1xxxxx"  discrete input     10001  -> di:0
                 "0xxxx"/"0xxxxx"  coil               00001  -> coil:0
    bit       := 0..15, a single bit inside a register (hr/ir only; bit 0 = least significant)

Examples: ``hr:100``, ``ir:5``, ``coil:0``, ``co:0``, ``di:3``, ``hr:100.3``, ``40001``,
``400001``, ``30010.15``. Addresses are 0..65535.

``make_point`` turns one tag's fields into a frozen ``RegisterPoint`` (``drivers.modbus.point``,
whose names this module re-exports, with the byte and word orders) and checks everything once,
when the configuration is loaded. Its ``ValueError`` messages are short and self-contained, so a
config error line can carry them as-is (``register 70000 is outside 0..65535``).
"""

from __future__ import annotations

import enum
import math
import re
from typing import cast

from drivers.modbus.limits import MAX_ADDRESS, MAX_STRING_REGISTERS, MAX_UNIT_ID, MAX_WRITABLE_STRING_REGISTERS
from drivers.modbus.point import Area, DataType, Order, RegisterPoint

__all__ = ["Area", "DataType", "Order", "RegisterPoint", "linear_from_ranges", "make_point", "parse_address"]

_PREFIXES = {
    "hr": Area.HOLDING,
    "ir": Area.INPUT,
    "coil": Area.COIL,
    "co": Area.COIL,
    "di": Area.DISCRETE_INPUT,
}
_CLASSIC_DIGITS = {"0": Area.COIL, "1": Area.DISCRETE_INPUT, "3": Area.INPUT, "4": Area.HOLDING}
_PREFIXED_RE = re.compile(r"([a-z]+):(\d+)(?:\.(\d+))?")
_CLASSIC_RE = re.compile(r"(\d{5,6})(?:\.(\d+))?")
_FORMS = "expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"


def parse_address(text: str) -> tuple[Area, int, int | None]:
    """Parse one address (grammar in the module docstring) into (area, zero-based address, bit).

    Raises ValueError with a short reason.
    """
    if not isinstance(text, str):
        raise ValueError(f"address must be a string, not {type(text).__name__}")
    s = text.strip().lower()
    if m := _PREFIXED_RE.fullmatch(s):
        prefix, number, bit_text = m.groups()
        try:
            area = _PREFIXES[prefix]
        except KeyError:
            raise ValueError(f"unknown area {prefix!r} in {text.strip()!r} (use hr, ir, coil/co or di)") from None
        address = int(number)
    elif m := _CLASSIC_RE.fullmatch(s):
        digits, bit_text = m.groups()
        try:
            area = _CLASSIC_DIGITS[digits[0]]
        except KeyError:
            raise ValueError(f"unknown area digit {digits[0]!r} in {digits!r} (use 0 coil, 1 discrete input, 3 input register, 4 holding register)") from None
        number = int(digits[1:])
        if number == 0:
            raise ValueError(f"{digits!r} is not a valid one-based address (numbering starts at 1)")
        address = number - 1
    else:
        raise ValueError(f"cannot parse address {text.strip()!r}; {_FORMS}")
    if address > MAX_ADDRESS:
        raise ValueError(f"{area.noun} {address} is outside 0..{MAX_ADDRESS}")
    bit: int | None = None
    if bit_text is not None:
        if area.is_bit:
            raise ValueError(f"a bit index is only allowed on registers, not on {area.plural}")
        bit = int(bit_text)
        if bit > 15:
            raise ValueError(f"bit {bit} is outside 0..15")
    return area, address, bit


def _enum_value(enum_cls: type[enum.Enum], value: object, what: str) -> enum.Enum:
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        for member in enum_cls:
            if member.value.lower() == value.strip().lower():
                return member
    known = ", ".join(m.value for m in enum_cls)
    raise ValueError(f"unknown {what} {value!r} (known: {known})")


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, not {value}")
    return float(value)


def linear_from_ranges(raw_low: float | None, raw_high: float | None, eng_low: float | None, eng_high: float | None) -> tuple[float, float]:
    """(scale, offset) that maps raw_low..raw_high onto eng_low..eng_high (value = raw * scale + offset).

    The mapping is linear and not clamped: a raw value outside raw_low..raw_high gives an
    engineering value outside eng_low..eng_high.
    """
    names = ("raw_low", "raw_high", "eng_low", "eng_high")
    missing = [n for n, v in zip(names, (raw_low, raw_high, eng_low, eng_high)) if v is None]
    if missing:
        raise ValueError(f"range scaling needs all of raw_low, raw_high, eng_low, eng_high (missing {', '.join(missing)})")
    rl, rh, el, eh = (_finite(v, n) for n, v in zip(names, (raw_low, raw_high, eng_low, eng_high)))
    if rl == rh:
        raise ValueError(f"raw_low and raw_high must differ (both {rl:g})")
    if el == eh:
        raise ValueError(f"eng_low and eng_high must differ (both {el:g})")
    scale = (eh - el) / (rh - rl)
    return scale, el - rl * scale


def make_point(
    *,
    name: str,
    unit_id: int = 1,
    address: str,
    type: str | DataType = "uint16",
    order: str | Order = "ABCD",
    scale: float = 1.0,
    offset: float = 0.0,
    length: int | None = None,
    writable: bool = False,
    low: float | None = None,
    high: float | None = None,
    units: str | None = None,
    raw_low: float | None = None,
    raw_high: float | None = None,
    eng_low: float | None = None,
    eng_high: float | None = None,
) -> RegisterPoint:
    """Validate one tag's fields and return its RegisterPoint.

    Scaling is either ``scale``/``offset`` or the four range keys (``raw_low..raw_high`` maps onto
    ``eng_low..eng_high``), never both. Raises ValueError with a short message that names the
    problem (not the tag: the caller knows where the tag is).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string")
    if isinstance(unit_id, bool) or not isinstance(unit_id, int) or not 0 <= unit_id <= MAX_UNIT_ID:
        raise ValueError(f"unit_id {unit_id!r} is outside 0..{MAX_UNIT_ID}")
    area, start, bit = parse_address(address)
    data_type = cast(DataType, _enum_value(DataType, type, "type"))
    byte_order = cast(Order, _enum_value(Order, order, "order"))
    type_name = data_type.value

    if area.is_bit and data_type is not DataType.BOOL:
        raise ValueError(f"type {type_name!r} is not allowed on {area.plural} (only bool)")
    if bit is not None and data_type is not DataType.BOOL:
        raise ValueError(f"a bit inside a register needs type 'bool', not {type_name!r}")
    if not area.is_bit and bit is None and data_type is DataType.BOOL:
        raise ValueError("type 'bool' on a register needs a bit index, e.g. 'hr:100.0'")

    if data_type is DataType.STRING:
        if length is None:
            raise ValueError("type 'string' needs length (in registers)")
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_STRING_REGISTERS:
            raise ValueError(f"length {length!r} is outside 1..{MAX_STRING_REGISTERS}")
        count = length
    else:
        if length is not None:
            raise ValueError(f"length is only allowed with type 'string', not {type_name!r}")
        count = data_type.registers
    if start + count - 1 > MAX_ADDRESS:
        raise ValueError(f"{type_name} at {area.noun} {start} needs {count} registers and runs past {MAX_ADDRESS}")

    scale_f = _finite(scale, "scale")
    offset_f = _finite(offset, "offset")
    ranges = (raw_low, raw_high, eng_low, eng_high)
    if any(r is not None for r in ranges):
        if not data_type.is_numeric:
            raise ValueError(f"raw_low/raw_high/eng_low/eng_high are not allowed with type {type_name!r}")
        if scale_f != 1.0 or offset_f != 0.0:
            raise ValueError("give either scale/offset or raw_low/raw_high/eng_low/eng_high, not both")
        scale_f, offset_f = linear_from_ranges(*ranges)
    if scale_f == 0.0:
        raise ValueError("scale must not be 0")
    if not data_type.is_numeric and (scale_f != 1.0 or offset_f != 0.0):
        raise ValueError(f"scale and offset are not allowed with type {type_name!r}")

    if not isinstance(writable, bool):
        raise ValueError(f"writable must be true or false, not {writable!r}")
    if writable and not area.can_write:
        raise ValueError(f"{area.plural} are read-only; writable is only allowed on coils and holding registers")
    if writable and bit is not None:
        raise ValueError("a bit inside a register cannot be writable (write the whole register or use a coil)")
    if writable and data_type is DataType.STRING and count > MAX_WRITABLE_STRING_REGISTERS:
        raise ValueError(f"a writable string has at most {MAX_WRITABLE_STRING_REGISTERS} registers (one FC16 write), got length {count}")

    low_f = None if low is None else _finite(low, "low")
    high_f = None if high is None else _finite(high, "high")
    if (low_f is not None or high_f is not None) and not data_type.is_numeric:
        raise ValueError(f"low and high are not allowed with type {type_name!r}")
    if low_f is not None and high_f is not None and low_f > high_f:
        raise ValueError(f"low {low_f:g} is greater than high {high_f:g}")
    if units is not None and not isinstance(units, str):
        raise ValueError(f"units must be a string, not {units!r}")

    return RegisterPoint(
        name=name,
        unit_id=unit_id,
        area=area,
        address=start,
        data_type=data_type,
        order=byte_order,
        count=count,
        bit=bit,
        length=length if data_type is DataType.STRING else None,
        scale=scale_f,
        offset=offset_f,
        writable=writable,
        low=low_f,
        high=high_f,
        units=units,
    )
