"""Registers <-> engineering values (pure; no I/O).

``decode`` turns the registers a point occupies into its engineering value
(``raw * scale + offset``); ``encode`` does the inverse for writes. Byte/word orders are described
in ``drivers.modbus.address``. Integer types decode to ``int`` when the point is not scaled and to
``float`` otherwise; float types always decode to ``float`` (NaN and infinities pass through).
Strings are ASCII, cut at the first NUL and stripped of trailing blanks.

Encoding never clamps: a value whose raw form does not fit the raw type raises ValueError, and a
value of the wrong kind (a string for a float point, a bool for an integer point) raises
TypeError. The driver maps both to a status before anything is sent.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from drivers.modbus.address import DataType, Order, RegisterPoint
from drivers.sample import TagValue

_STRUCT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}

_FORMAT = {t.value: f for t, f in _STRUCT.items()}  # keyed by name: str hashes are cached, enum hashes are not


def registers_to_bytes(registers: Sequence[int], order: Order) -> bytes:
    """Bytes of the value in big-endian (ABCD) order, undoing *order*."""
    words = list(registers)
    if order.word_swap:
        words.reverse()
    data = bytearray(struct.pack(f">{len(words)}H", *words))
    if order.byte_swap:
        data[0::2], data[1::2] = data[1::2], data[0::2]
    return bytes(data)


def bytes_to_registers(data: bytes, order: Order) -> list[int]:
    """Registers holding big-endian *data* (even length) laid out in *order*."""
    buf = bytearray(data)
    if order.byte_swap:
        buf[0::2], buf[1::2] = buf[1::2], buf[0::2]
    words = [int.from_bytes(buf[i : i + 2], "big") for i in range(0, len(buf), 2)]
    if order.word_swap:
        words.reverse()
    return words


def _check_registers(registers: Sequence[int], point: RegisterPoint) -> None:
    if len(registers) != point.count:
        raise ValueError(f"expected {point.count} registers, got {len(registers)}")
    for r in registers:
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 0xFFFF:
            raise ValueError(f"register value {r!r} is outside 0..65535")


def decode_bits(bits: Sequence[bool | int], point: RegisterPoint) -> bool:
    """Value of a coil or discrete input point from the bits it occupies (exactly one)."""
    if len(bits) != 1:
        raise ValueError(f"expected 1 bit, got {len(bits)}")
    return bool(bits[0])


def decode(registers: Sequence[int], point: RegisterPoint) -> TagValue:
    """Engineering value of *point* from exactly the ``point.count`` registers it occupies.

    For coils and discrete inputs, *registers* holds the point's single bit (0/1 or bool).
    Raises ValueError when the registers do not decode (wrong count, non-ASCII text).
    """
    if point.area.is_bit:
        return decode_bits(registers, point)
    _check_registers(registers, point)
    data_type = point.data_type
    if data_type is DataType.BOOL:
        assert point.bit is not None  # make_point guarantees a bit index for bool on registers
        return bool((registers[0] >> point.bit) & 1)
    if data_type is DataType.STRING:
        return _decode_string(registers, point.order)
    raw: int | float
    (raw,) = struct.unpack(_FORMAT[data_type.value], registers_to_bytes(registers, point.order))
    if not point.is_scaled:
        return raw
    return raw * point.scale + point.offset


def _decode_string(registers: Sequence[int], order: Order) -> str:
    # Text has no word order: only the byte swap inside each register applies.
    swap = Order.BADC if order.byte_swap else Order.ABCD
    data = registers_to_bytes(registers, swap)
    data = data.split(b"\x00", 1)[0].rstrip(b" ")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"string registers hold non-ASCII bytes: {data!r}") from None


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def encode(value: TagValue, point: RegisterPoint) -> list[int]:
    """Registers to write for *value* (for coils: ``[1]`` or ``[0]``).

    Integer types round the raw value to the nearest integer (halves away from zero).
    Raises ValueError when the raw value does not fit the raw type, and TypeError when *value*
    is not of the point's kind.
    """
    data_type = point.data_type
    if point.area.is_bit:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return [int(value)]
        raise TypeError(f"expected a bool for {point.area.noun}, got {value!r}")
    if data_type is DataType.BOOL:
        raise ValueError("a bit inside a register cannot be written on its own")
    if data_type is DataType.STRING:
        return _encode_string(value, point)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number for type {data_type.value!r}, got {value!r}")
    if data_type.is_integer:
        raw_int = _raw_integer(value, point)
        data = struct.pack(_STRUCT[data_type], raw_int)
    else:
        try:
            raw = float(value) if not point.is_scaled else (value - point.offset) / point.scale
            data = struct.pack(_STRUCT[data_type], raw)
        except OverflowError:
            raise ValueError(f"value {value!r} is outside the {data_type.value} range") from None
    return bytes_to_registers(data, point.order)


def _raw_integer(value: int | float, point: RegisterPoint) -> int:
    data_type = point.data_type
    lo, hi = data_type.int_range
    if not point.is_scaled and isinstance(value, int):
        raw = value
    else:
        try:
            x = float(value) if not point.is_scaled else (value - point.offset) / point.scale
        except OverflowError:
            raise ValueError(f"value {value!r} is outside the {data_type.value} range {lo}..{hi}") from None
        if not math.isfinite(x):
            raise ValueError(f"value {value!r} cannot be encoded as {data_type.value}")
        raw = _round_half_away(x)
    if not lo <= raw <= hi:
        if point.is_scaled:
            raise ValueError(f"value {value!r} gives raw {raw}, outside the {data_type.value} range {lo}..{hi}")
        raise ValueError(f"value {value!r} is outside the {data_type.value} range {lo}..{hi}")
    return raw


def _encode_string(value: TagValue, point: RegisterPoint) -> list[int]:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("string contains non-ASCII characters") from None
    size = 2 * point.count
    if len(data) > size:
        raise ValueError(f"string of {len(data)} characters does not fit in {point.count} registers ({size} characters)")
    swap = Order.BADC if point.order.byte_swap else Order.ABCD
    return bytes_to_registers(data.ljust(size, b"\x00"), swap)


def decode_block(registers: Sequence[int], start: int, points: Sequence[RegisterPoint]) -> list[TagValue | ValueError]:
    """Values of *points* from one register block read from address *start* (the poll hot path).

    Same results as ``decode`` on each point's slice (a test checks the two agree), but the block
    is packed to bytes once and ABCD/DCBA numbers are unpacked in place. A point whose value does
    not decode (a short block, non-ASCII text) gets the ValueError instead of a value. *registers*
    must be 0..65535 (as a response's are).
    """
    n = len(registers)
    data = struct.pack(f">{n}H", *registers)
    out: list[TagValue | ValueError] = []
    for p in points:
        first = p.address - start
        if first < 0 or first + p.count > n:
            out.append(ValueError(f"expected {p.count} registers, got {max(0, min(n - first, p.count))}"))
            continue
        data_type = p.data_type
        if data_type is DataType.BOOL:
            out.append(bool((registers[first] >> p.bit) & 1) if p.bit is not None else bool(registers[first]))
            continue
        if data_type is DataType.STRING:
            try:
                out.append(_decode_string(registers[first : first + p.count], p.order))
            except ValueError as exc:
                out.append(exc)
            continue
        order = p.order
        if order is Order.ABCD:
            (raw,) = struct.unpack_from(_FORMAT[data_type.value], data, 2 * first)
        elif order is Order.DCBA:
            (raw,) = struct.unpack_from(_LITTLE[data_type.value], data, 2 * first)
        else:
            (raw,) = struct.unpack(_FORMAT[data_type.value], registers_to_bytes(registers[first : first + p.count], order))
        out.append(raw * p.scale + p.offset if p.is_scaled else raw)
    return out


_LITTLE = {name: "<" + f[1:] for name, f in _FORMAT.items()}
