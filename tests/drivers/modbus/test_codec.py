"""Registers <-> values: known encodings per type and order, round trips, scaling and refusals."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from drivers.modbus.address import DataType, Order, RegisterPoint, make_point
from drivers.modbus.codec import bytes_to_registers, decode, decode_bits, decode_block, encode, registers_to_bytes

ORDERS = list(Order)
NUMERIC = [t for t in DataType if t.is_numeric]

# Each property below is parametrized over every type x order, so a modest number of examples per
# combination keeps the whole module fast while still covering every pair.
few = settings(max_examples=30, deadline=None)


def point(type_: str, order: str = "ABCD", **kw) -> RegisterPoint:
    address = kw.pop("address", "hr:0")
    return make_point(name="t", address=address, type=type_, order=order, **kw)


KNOWN = [
    # (type, order, value, registers)
    ("float32", "ABCD", 1.0, [0x3F80, 0x0000]),
    ("float32", "CDAB", 1.0, [0x0000, 0x3F80]),
    ("float32", "BADC", 1.0, [0x803F, 0x0000]),
    ("float32", "DCBA", 1.0, [0x0000, 0x803F]),
    ("float32", "ABCD", -2.5, [0xC020, 0x0000]),
    ("float32", "ABCD", 123.456001281738, [0x42F6, 0xE979]),
    ("float64", "ABCD", 1.0, [0x3FF0, 0x0000, 0x0000, 0x0000]),
    ("float64", "CDAB", 1.0, [0x0000, 0x0000, 0x0000, 0x3FF0]),
    ("float64", "BADC", 1.0, [0xF03F, 0x0000, 0x0000, 0x0000]),
    ("float64", "DCBA", 1.0, [0x0000, 0x0000, 0x0000, 0xF03F]),
    ("float64", "ABCD", math.pi, [0x4009, 0x21FB, 0x5444, 0x2D18]),
    ("int16", "ABCD", -1, [0xFFFF]),
    ("int16", "ABCD", -32768, [0x8000]),
    ("int16", "ABCD", 32767, [0x7FFF]),
    ("int16", "BADC", 0x0102, [0x0201]),
    ("int16", "CDAB", 0x0102, [0x0102]),  # one register: only the byte swap matters
    ("int16", "DCBA", 0x0102, [0x0201]),
    ("uint16", "ABCD", 65535, [0xFFFF]),
    ("uint16", "ABCD", 0x1234, [0x1234]),
    ("int32", "ABCD", 0x01020304, [0x0102, 0x0304]),
    ("int32", "CDAB", 0x01020304, [0x0304, 0x0102]),
    ("int32", "BADC", 0x01020304, [0x0201, 0x0403]),
    ("int32", "DCBA", 0x01020304, [0x0403, 0x0201]),
    ("int32", "ABCD", -2, [0xFFFF, 0xFFFE]),
    ("uint32", "ABCD", 65536, [0x0001, 0x0000]),
    ("uint32", "CDAB", 65536, [0x0000, 0x0001]),
    ("uint32", "ABCD", 2**32 - 1, [0xFFFF, 0xFFFF]),
    ("int64", "ABCD", 0x0102030405060708, [0x0102, 0x0304, 0x0506, 0x0708]),
    ("int64", "CDAB", 0x0102030405060708, [0x0708, 0x0506, 0x0304, 0x0102]),
    ("int64", "BADC", 0x0102030405060708, [0x0201, 0x0403, 0x0605, 0x0807]),
    ("int64", "DCBA", 0x0102030405060708, [0x0807, 0x0605, 0x0403, 0x0201]),
    ("int64", "ABCD", -3, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFD]),
    ("uint64", "ABCD", 2**64 - 1, [0xFFFF] * 4),
    ("uint64", "ABCD", 2**48, [0x0001, 0x0000, 0x0000, 0x0000]),
    ("uint64", "CDAB", 2**48, [0x0000, 0x0000, 0x0000, 0x0001]),
]


@pytest.mark.parametrize(("type_", "order", "value", "registers"), KNOWN)
def test_known_encodings(type_: str, order: str, value: float, registers: list[int]) -> None:
    """Each order lays the bytes out as documented (ABCD big-endian, CDAB word swap, BADC byte swap, DCBA both)."""
    p = point(type_, order)
    assert encode(value, p) == registers
    decoded = decode(registers, p)
    if type_ == "float32":
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == value
    if p.data_type.is_integer:
        assert type(decoded) is int


STRINGS = [
    # (length, order, text, registers)
    (2, "ABCD", "AB", [0x4142, 0x0000]),
    (2, "ABCD", "ABC", [0x4142, 0x4300]),
    (2, "ABCD", "ABCD", [0x4142, 0x4344]),
    (2, "BADC", "ABC", [0x4241, 0x0043]),
    (2, "DCBA", "ABC", [0x4241, 0x0043]),  # text has no word order; DCBA acts as BADC
    (2, "CDAB", "ABC", [0x4142, 0x4300]),
    (3, "ABCD", "", [0, 0, 0]),
]


@pytest.mark.parametrize(("length", "order", "text", "registers"), STRINGS)
def test_string_encodings(length: int, order: str, text: str, registers: list[int]) -> None:
    p = point("string", order, length=length)
    assert encode(text, p) == registers
    assert decode(registers, p) == text


@pytest.mark.parametrize(
    ("registers", "text"),
    [
        ([0x4142, 0x2020], "AB"),  # trailing blanks trimmed
        ([0x4142, 0x0044], "AB"),  # cut at the first NUL
        ([0x2041, 0x0000], " A"),  # leading blanks kept
        ([0x0000, 0x4142], ""),
    ],
)
def test_string_trimming(registers: list[int], text: str) -> None:
    assert decode(registers, point("string", length=2)) == text


def test_string_refusals() -> None:
    p = point("string", length=2)
    with pytest.raises(ValueError, match=r"string of 5 characters does not fit in 2 registers \(4 characters\)"):
        encode("ABCDE", p)
    with pytest.raises(ValueError, match="string contains non-ASCII characters"):
        encode("Ä", p)
    with pytest.raises(TypeError, match="expected a string"):
        encode(12, p)
    with pytest.raises(ValueError, match="non-ASCII bytes"):
        decode([0xC3A4, 0x0000], p)


@pytest.mark.parametrize(
    ("registers", "bit", "expected"),
    [([0x0001], 0, True), ([0x0001], 1, False), ([0x8000], 15, True), ([0x7FFF], 15, False), ([0x0008], 3, True)],
)
def test_bit_in_register(registers: list[int], bit: int, expected: bool) -> None:
    """Bit 0 is the least significant bit of the register as received; the order does not apply."""
    for order in ORDERS:
        assert decode(registers, point("bool", order.value, address=f"hr:0.{bit}")) is expected


def test_bit_in_register_cannot_be_encoded_alone() -> None:
    with pytest.raises(ValueError, match="cannot be written on its own"):
        encode(True, point("bool", address="hr:0.1"))


@pytest.mark.parametrize("address", ["coil:0", "di:0"])
def test_bits(address: str) -> None:
    """Coils and discrete inputs decode from their single bit; coils encode to [1]/[0]."""
    p = point("bool", address=address)
    assert decode_bits([True], p) is True
    assert decode_bits([0], p) is False
    assert decode([1], p) is True
    assert encode(True, p) == [1]
    assert encode(False, p) == [0]
    assert encode(1, p) == [1]
    with pytest.raises(TypeError):
        encode(2, p)
    with pytest.raises(TypeError):
        encode("on", p)
    with pytest.raises(ValueError, match="expected 1 bit, got 0"):
        decode_bits([], p)


def test_coil_bit_order_matches_pymodbus() -> None:
    """pymodbus 3.10/3.11 changed bit packing; coil 0 is the least significant bit of the first byte."""
    from pymodbus.pdu.utils import pack_bitstring, unpack_bitstring

    bits = [True, False, True] + [False] * 5
    assert pack_bitstring(bits) == b"\x05"
    assert unpack_bitstring(b"\x05")[:3] == [True, False, True]


def test_decode_checks_register_count_and_range() -> None:
    p = point("float32")
    with pytest.raises(ValueError, match="expected 2 registers, got 1"):
        decode([0x3F80], p)
    with pytest.raises(ValueError, match=r"register value 65536 is outside 0..65535"):
        decode([0x10000, 0], p)
    with pytest.raises(ValueError, match=r"register value -1 is outside 0..65535"):
        decode([0, -1], p)


# -- scaling -------------------------------------------------------------------------------------


def test_scaling_decode_and_encode() -> None:
    """value = raw * scale + offset; encode applies the inverse and rounds to the raw integer."""
    p = point("int16", scale=0.1, offset=-40.0)
    assert decode([650], p) == pytest.approx(25.0)
    assert isinstance(decode([650], p), float)
    assert encode(25.0, p) == [650]
    assert encode(25.04, p) == [650]  # 650.4 rounds down
    assert encode(25.06, p) == [651]  # 650.6 rounds up
    assert encode(-45.0, p) == [0xFFCE]  # raw -50
    half = point("int16", scale=0.5)
    assert encode(1.25, half) == [3]  # raw 2.5: halves round away from zero
    assert encode(-1.25, half) == [0xFFFD]  # raw -2.5 -> -3
    q = point("float32", scale=2.0, offset=1.0)
    assert decode([0x3F80, 0x0000], q) == 3.0
    assert encode(3.0, q) == [0x3F80, 0x0000]


def test_unscaled_integers_stay_exact() -> None:
    """Without scaling, 64-bit values never pass through float."""
    p = point("uint64")
    assert decode(encode(2**64 - 1, p), p) == 2**64 - 1
    q = point("int64")
    assert decode(encode(-(2**63) + 1, q), q) == -(2**63) + 1


@pytest.mark.parametrize(
    ("type_", "kw", "value", "message"),
    [
        ("uint16", {}, 65536, r"value 65536 is outside the uint16 range 0..65535"),
        ("uint16", {}, -1, r"value -1 is outside the uint16 range 0..65535"),
        ("int16", {}, 40000.0, r"value 40000.0 is outside the int16 range -32768..32767"),
        ("int16", {"scale": 0.1}, 4000.0, r"value 4000.0 gives raw 40000, outside the int16 range -32768..32767"),
        ("uint16", {"offset": 10.0}, 5.0, r"value 5.0 gives raw -5, outside the uint16 range 0..65535"),
        ("int32", {}, 2**31, r"value 2147483648 is outside the int32 range"),
        ("uint64", {}, 2**64, r"value 18446744073709551616 is outside the uint64 range"),
        ("int16", {}, float("nan"), r"value nan cannot be encoded as int16"),
        ("int16", {}, float("inf"), r"value inf cannot be encoded as int16"),
        ("float32", {}, 1e39, r"value 1e\+39 is outside the float32 range"),
        ("float32", {}, 10**400, r"is outside the float32 range"),
        ("int32", {"scale": 0.5}, 10**400, r"is outside the int32 range"),
    ],
)
def test_encode_refuses_out_of_range(type_: str, kw: dict, value: float, message: str) -> None:
    """Values that do not fit the raw type raise ValueError; nothing is clamped."""
    with pytest.raises(ValueError, match=message):
        encode(value, point(type_, **kw))


@pytest.mark.parametrize("value", [True, "1", None, [1]])
def test_encode_refuses_wrong_kind(value: object) -> None:
    with pytest.raises(TypeError, match="expected a number"):
        encode(value, point("uint16"))  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ORDERS)
def test_nan_passes_through(order: Order) -> None:
    """NaN decodes to NaN (also when scaled) and encodes to the canonical quiet NaN."""
    for type_ in ("float32", "float64"):
        p = point(type_, order.value)
        regs = encode(float("nan"), p)
        assert math.isnan(decode(regs, p))
        assert math.isnan(decode(regs, point(type_, order.value, scale=10.0, offset=1.0)))
    assert math.isnan(decode(bytes_to_registers(b"\x7f\xc0\x00\x01", order), point("float32", order.value)))
    assert decode(encode(float("inf"), point("float32")), point("float32")) == float("inf")


# -- round trips and cross-checks ------------------------------------------------------------------


def _values(data_type: DataType) -> st.SearchStrategy:
    if data_type.is_integer:
        lo, hi = data_type.int_range
        return st.integers(lo, hi)
    if data_type is DataType.FLOAT32:
        return st.floats(width=32, allow_nan=False)
    return st.floats(allow_nan=False)


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.value)
@pytest.mark.parametrize("data_type", NUMERIC, ids=lambda t: t.value)
@few
@given(data=st.data())
def test_round_trip_values(data: st.DataObject, data_type: DataType, order: Order) -> None:
    """decode(encode(v)) == v for every numeric type and order."""
    p = point(data_type.value, order.value)
    value = data.draw(_values(data_type))
    registers = encode(value, p)
    assert len(registers) == p.count
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode(registers, p) == value


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.value)
@pytest.mark.parametrize("data_type", NUMERIC, ids=lambda t: t.value)
@few
@given(data=st.data())
def test_round_trip_registers(data: st.DataObject, data_type: DataType, order: Order) -> None:
    """encode(decode(r)) == r for every register pattern that is not a NaN."""
    p = point(data_type.value, order.value)
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=p.count, max_size=p.count))
    value = decode(registers, p)
    if isinstance(value, float) and math.isnan(value):
        return
    assert encode(value, p) == registers


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.value)
@pytest.mark.parametrize("length", [1, 2, 5])
@few
@given(data=st.data())
def test_round_trip_strings(data: st.DataObject, length: int, order: Order) -> None:
    p = point("string", order.value, length=length)
    alphabet = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    text = data.draw(st.text(alphabet, max_size=2 * length).filter(lambda s: not s.endswith(" ")))
    assert decode(encode(text, p), p) == text


SCALED_TYPES = [DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32]


@pytest.mark.parametrize("data_type", SCALED_TYPES, ids=lambda t: t.value)
@few
@given(data=st.data(), scale=st.sampled_from([0.1, 0.01, 2.5, -0.5, 1e-3]), offset=st.sampled_from([0.0, -40.0, 273.15]))
def test_scaled_raw_round_trip(data: st.DataObject, data_type: DataType, scale: float, offset: float) -> None:
    """A scaled integer survives decode -> encode: rounding recovers the raw value exactly."""
    p = point(data_type.value, scale=scale, offset=offset)
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=p.count, max_size=p.count))
    assert encode(decode(registers, p), p) == registers


_PYMODBUS_TYPES = {
    DataType.INT16: ModbusClientMixin.DATATYPE.INT16,
    DataType.UINT16: ModbusClientMixin.DATATYPE.UINT16,
    DataType.INT32: ModbusClientMixin.DATATYPE.INT32,
    DataType.UINT32: ModbusClientMixin.DATATYPE.UINT32,
    DataType.INT64: ModbusClientMixin.DATATYPE.INT64,
    DataType.UINT64: ModbusClientMixin.DATATYPE.UINT64,
    DataType.FLOAT32: ModbusClientMixin.DATATYPE.FLOAT32,
    DataType.FLOAT64: ModbusClientMixin.DATATYPE.FLOAT64,
}


@pytest.mark.parametrize(("order", "word_order"), [(Order.ABCD, "big"), (Order.CDAB, "little")])
@pytest.mark.parametrize("data_type", NUMERIC, ids=lambda t: t.value)
@few
@given(data=st.data())
def test_agrees_with_pymodbus_convert(data: st.DataObject, data_type: DataType, order: Order, word_order: str) -> None:
    """For the orders pymodbus supports (word order only), our codec matches convert_from/to_registers."""
    p = point(data_type.value, order.value)
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=p.count, max_size=p.count))
    ours = decode(registers, p)
    theirs = ModbusClientMixin.convert_from_registers(registers, _PYMODBUS_TYPES[data_type], word_order=word_order)
    if isinstance(ours, float) and math.isnan(ours):
        assert math.isnan(theirs)
        return
    assert ours == theirs
    assert encode(ours, p) == ModbusClientMixin.convert_to_registers(theirs, _PYMODBUS_TYPES[data_type], word_order=word_order)


def test_bytes_helpers_are_inverse() -> None:
    data = struct.pack(">q", 0x0102030405060708)
    for order in ORDERS:
        assert registers_to_bytes(bytes_to_registers(data, order), order) == data


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.value)
@pytest.mark.parametrize("data_type", SCALED_TYPES, ids=lambda t: t.value)
@few
@given(
    data=st.data(),
    raw=st.sampled_from([(0, 27648), (4000, 20000), (0, 1000), (-100, 100)]),
    eng=st.sampled_from([(0.0, 100.0), (-40.0, 150.0), (10.0, 0.0)]),
)
def test_range_scaled_raw_round_trip(data: st.DataObject, data_type: DataType, order: Order, raw: tuple, eng: tuple) -> None:
    """Range scaling (raw_low..raw_high -> eng_low..eng_high) survives decode -> encode in every order."""
    p = point(data_type.value, order.value, raw_low=raw[0], raw_high=raw[1], eng_low=eng[0], eng_high=eng[1])
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=p.count, max_size=p.count))
    assert encode(decode(registers, p), p) == registers


_BLOCK_POINTS = st.builds(
    lambda t, order, offset, bit, length: make_point(
        name="p",
        address=f"hr:{offset}" + (f".{bit}" if t == "bool" else ""),
        type=t,
        order=order.value,
        length=length if t == "string" else None,
        scale=0.5 if t == "int32" else 1.0,
    ),
    st.sampled_from([t.value for t in DataType]),
    st.sampled_from(ORDERS),
    st.integers(0, 12),
    st.integers(0, 15),
    st.integers(1, 3),
)


@settings(max_examples=150, deadline=None)
@given(points=st.lists(_BLOCK_POINTS, min_size=1, max_size=6), registers=st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=16))
def test_decode_block_agrees_with_decode(points: list[RegisterPoint], registers: list[int]) -> None:
    """The poll hot path gives each point what ``decode`` gives on its own slice, errors included."""
    for p, got in zip(points, decode_block(registers, 0, points), strict=True):
        chunk = registers[p.address : p.address + p.count]
        try:
            want = decode(chunk, p)
        except ValueError:
            assert isinstance(got, ValueError)
            continue
        if isinstance(want, float) and math.isnan(want):
            assert isinstance(got, float) and math.isnan(got)
        else:
            assert got == want and type(got) is type(want)
