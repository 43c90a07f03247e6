"""Address parsing and point validation: tables of accepted and refused inputs, with exact messages."""

from __future__ import annotations

import dataclasses

import pytest

from drivers.modbus.address import Area, DataType, Order, RegisterPoint, make_point, parse_address

GOOD_ADDRESSES = [
    ("hr:100", (Area.HOLDING, 100, None)),
    ("HR:100", (Area.HOLDING, 100, None)),
    ("  hr:0  ", (Area.HOLDING, 0, None)),
    ("hr:65535", (Area.HOLDING, 65535, None)),
    ("ir:5", (Area.INPUT, 5, None)),
    ("coil:0", (Area.COIL, 0, None)),
    ("co:0", (Area.COIL, 0, None)),
    ("di:3", (Area.DISCRETE_INPUT, 3, None)),
    ("hr:100.3", (Area.HOLDING, 100, 3)),
    ("hr:100.0", (Area.HOLDING, 100, 0)),
    ("ir:7.15", (Area.INPUT, 7, 15)),
    ("hr:007", (Area.HOLDING, 7, None)),
    ("40001", (Area.HOLDING, 0, None)),
    ("49999", (Area.HOLDING, 9998, None)),
    ("30010", (Area.INPUT, 9, None)),
    ("10001", (Area.DISCRETE_INPUT, 0, None)),
    ("00001", (Area.COIL, 0, None)),
    ("400001", (Area.HOLDING, 0, None)),
    ("465536", (Area.HOLDING, 65535, None)),
    ("300100", (Area.INPUT, 99, None)),
    ("40001.15", (Area.HOLDING, 0, 15)),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_ADDRESSES)
def test_parse_good_addresses(text: str, expected: tuple) -> None:
    """Prefixed addresses are zero-based; 5/6-digit classic addresses are one-based."""
    assert parse_address(text) == expected


BAD_ADDRESSES = [
    ("hr:70000", "register 70000 is outside 0..65535"),
    ("coil:65536", "coil 65536 is outside 0..65535"),
    ("di:99999", "discrete input 99999 is outside 0..65535"),
    ("465537", "register 65536 is outside 0..65535"),
    ("xx:1", "unknown area 'xx' in 'xx:1' (use hr, ir, coil/co or di)"),
    ("hr:100.16", "bit 16 is outside 0..15"),
    ("coil:3.1", "a bit index is only allowed on registers, not on coils"),
    ("di:3.1", "a bit index is only allowed on registers, not on discrete inputs"),
    ("40000", "'40000' is not a valid one-based address (numbering starts at 1)"),
    ("400000", "'400000' is not a valid one-based address (numbering starts at 1)"),
    (
        "20001",
        "unknown area digit '2' in '20001' (use 0 coil, 1 discrete input, 3 input register, 4 holding register)",
    ),
    ("4001", "cannot parse address '4001'; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
    ("4000001", "cannot parse address '4000001'; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
    ("hr:-1", "cannot parse address 'hr:-1'; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
    ("hr:", "cannot parse address 'hr:'; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
    ("hr 100", "cannot parse address 'hr 100'; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
    ("", "cannot parse address ''; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
    ("hr:0x10", "cannot parse address 'hr:0x10'; expected e.g. 'hr:100', 'hr:100.3', 'ir:5', 'coil:0', 'di:3' or '40001'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_ADDRESSES)
def test_parse_bad_addresses(text: str, message: str) -> None:
    """A refused address raises ValueError with a message a config error line can carry as-is."""
    with pytest.raises(ValueError) as info:
        parse_address(text)
    assert str(info.value) == message


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="address must be a string, not int"):
        parse_address(40001)  # type: ignore[arg-type]


def test_make_point_defaults() -> None:
    """A bare holding register is an unscaled, read-only uint16 on unit 1."""
    p = make_point(name="level", address="hr:10")
    assert p == RegisterPoint(
        name="level",
        unit_id=1,
        area=Area.HOLDING,
        address=10,
        data_type=DataType.UINT16,
        order=Order.ABCD,
        count=1,
        bit=None,
        length=None,
        scale=1.0,
        offset=0.0,
        writable=False,
        low=None,
        high=None,
        units=None,
    )
    assert p.end == 11
    assert not p.is_scaled


def test_point_is_frozen_and_hashable() -> None:
    p = make_point(name="a", address="hr:1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.address = 2  # type: ignore[misc]
    assert len({p, make_point(name="a", address="hr:1")}) == 1
    assert not hasattr(p, "__dict__")  # slotted


@pytest.mark.parametrize(
    ("kwargs", "count"),
    [
        ({"address": "hr:0", "type": "int16"}, 1),
        ({"address": "hr:0", "type": "uint16"}, 1),
        ({"address": "hr:0", "type": "int32"}, 2),
        ({"address": "hr:0", "type": "uint32"}, 2),
        ({"address": "hr:0", "type": "float32"}, 2),
        ({"address": "hr:0", "type": "int64"}, 4),
        ({"address": "hr:0", "type": "uint64"}, 4),
        ({"address": "hr:0", "type": "float64"}, 4),
        ({"address": "hr:0", "type": "string", "length": 10}, 10),
        ({"address": "hr:0", "type": "string", "length": 125}, 125),  # one FC3 read
        ({"address": "hr:0", "type": "string", "length": 123, "writable": True}, 123),  # one FC16 write
        ({"address": "hr:0.4", "type": "bool"}, 1),
        ({"address": "coil:0", "type": "bool"}, 1),
        ({"address": "di:0", "type": "bool"}, 1),
        ({"address": "ir:65532", "type": "float64"}, 4),
        ({"address": "hr:65535", "type": "uint16"}, 1),
    ],
)
def test_count_per_type(kwargs: dict, count: int) -> None:
    """count is the number of registers (or the single bit) the point occupies."""
    assert make_point(name="t", **kwargs).count == count


def test_make_point_accepts_enums_and_any_case() -> None:
    p = make_point(name="t", address="hr:0", type=DataType.FLOAT32, order="cdab")
    assert (p.data_type, p.order) == (DataType.FLOAT32, Order.CDAB)
    assert make_point(name="t", address="hr:0", type="Float32", order=Order.DCBA).order is Order.DCBA


def test_make_point_keeps_fields() -> None:
    p = make_point(
        name="sp",
        unit_id=7,
        address="40011",
        type="float32",
        order="BADC",
        scale=2.0,
        offset=-1,
        writable=True,
        low=-5,
        high=5.5,
        units="bar",
    )
    assert (p.unit_id, p.area, p.address, p.order, p.scale, p.offset) == (7, Area.HOLDING, 10, Order.BADC, 2.0, -1.0)
    assert (p.writable, p.low, p.high, p.units) == (True, -5.0, 5.5, "bar")
    assert p.is_scaled


def test_value_type_is_float64_for_scaled_numbers() -> None:
    """The gateway publishes a point with the type of the values read delivers."""
    assert make_point(name="a", address="hr:0", type="int16").value_type == "int16"
    assert make_point(name="a", address="hr:0", type="int16", scale=0.1).value_type == "float64"
    assert make_point(name="a", address="hr:0", type="float32", offset=1).value_type == "float64"
    assert make_point(name="a", address="hr:0.1", type="bool").value_type == "bool"
    assert make_point(name="a", address="hr:0", type="string", length=2).value_type == "string"


def test_device_order_applies_harmlessly_to_bits_and_strings() -> None:
    """A device-wide order is accepted on every tag; bits ignore it, strings use only the byte swap."""
    assert make_point(name="b", address="coil:1", type="bool", order="DCBA").order is Order.DCBA
    assert make_point(name="s", address="hr:1", type="string", length=2, order="CDAB").order is Order.CDAB


def test_writable_coil_and_holding() -> None:
    assert make_point(name="c", address="coil:1", type="bool", writable=True).writable
    assert make_point(name="h", address="hr:1", writable=True).writable


BAD_POINTS = [
    ({"address": "hr:70000"}, "register 70000 is outside 0..65535"),
    ({"address": "coil:0", "type": "float32"}, "type 'float32' is not allowed on coils (only bool)"),
    ({"address": "di:0", "type": "uint16"}, "type 'uint16' is not allowed on discrete inputs (only bool)"),
    ({"address": "hr:100.3", "type": "uint16"}, "a bit inside a register needs type 'bool', not 'uint16'"),
    ({"address": "hr:100", "type": "bool"}, "type 'bool' on a register needs a bit index, e.g. 'hr:100.0'"),
    ({"address": "hr:0", "type": "flot32"}, "unknown type 'flot32' (known: bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string)"),
    ({"address": "hr:0", "type": "float32", "order": "ABDC"}, "unknown order 'ABDC' (known: ABCD, CDAB, BADC, DCBA)"),
    ({"address": "hr:0", "type": "string"}, "type 'string' needs length (in registers)"),
    ({"address": "hr:0", "type": "string", "length": 0}, "length 0 is outside 1..125"),
    ({"address": "hr:0", "type": "string", "length": 126}, "length 126 is outside 1..125"),
    ({"address": "hr:0", "type": "uint16", "length": 2}, "length is only allowed with type 'string', not 'uint16'"),
    ({"address": "hr:65535", "type": "float32"}, "float32 at register 65535 needs 2 registers and runs past 65535"),
    ({"address": "ir:65533", "type": "uint64"}, "uint64 at register 65533 needs 4 registers and runs past 65535"),
    ({"address": "hr:65530", "type": "string", "length": 10}, "string at register 65530 needs 10 registers and runs past 65535"),
    ({"address": "ir:0", "writable": True}, "input registers are read-only; writable is only allowed on coils and holding registers"),
    ({"address": "di:0", "type": "bool", "writable": True}, "discrete inputs are read-only; writable is only allowed on coils and holding registers"),
    ({"address": "hr:3.1", "type": "bool", "writable": True}, "a bit inside a register cannot be writable (write the whole register or use a coil)"),
    ({"address": "hr:0", "type": "string", "length": 124, "writable": True}, "a writable string has at most 123 registers (one FC16 write), got length 124"),
    ({"address": "hr:0", "writable": "yes"}, "writable must be true or false, not 'yes'"),
    ({"address": "hr:0", "low": 10, "high": 5}, "low 10 is greater than high 5"),
    ({"address": "hr:0", "scale": 0}, "scale must not be 0"),
    ({"address": "hr:0", "scale": float("nan")}, "scale must be finite, not nan"),
    ({"address": "hr:0", "offset": float("inf")}, "offset must be finite, not inf"),
    ({"address": "hr:0", "scale": "2"}, "scale must be a number, not str"),
    ({"address": "hr:0", "low": True}, "low must be a number, not bool"),
    ({"address": "coil:0", "type": "bool", "scale": 2.0}, "scale and offset are not allowed with type 'bool'"),
    ({"address": "hr:0", "type": "string", "length": 2, "offset": 1.0}, "scale and offset are not allowed with type 'string'"),
    ({"address": "hr:0", "type": "string", "length": 2, "low": 0}, "low and high are not allowed with type 'string'"),
    ({"address": "coil:0", "type": "bool", "high": 1}, "low and high are not allowed with type 'bool'"),
    ({"address": "hr:0", "unit_id": 256}, "unit_id 256 is outside 0..255"),
    ({"address": "hr:0", "unit_id": -1}, "unit_id -1 is outside 0..255"),
    ({"address": "hr:0", "units": 5}, "units must be a string, not 5"),
    ({"address": "xx:1"}, "unknown area 'xx' in 'xx:1' (use hr, ir, coil/co or di)"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_POINTS)
def test_make_point_refusals(kwargs: dict, message: str) -> None:
    """Every refusal is a ValueError with a short, exact message."""
    with pytest.raises(ValueError) as info:
        make_point(name="t", **kwargs)
    assert str(info.value) == message


def test_make_point_requires_name() -> None:
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        make_point(name=" ", address="hr:0")


def test_area_and_type_helpers() -> None:
    assert [a for a in Area if a.is_bit] == [Area.COIL, Area.DISCRETE_INPUT]
    assert [a for a in Area if a.can_write] == [Area.COIL, Area.HOLDING]
    assert DataType.UINT64.int_range == (0, 2**64 - 1)
    assert DataType.INT16.int_range == (-32768, 32767)
    assert [o for o in Order if o.word_swap] == [Order.CDAB, Order.DCBA]
    assert [o for o in Order if o.byte_swap] == [Order.BADC, Order.DCBA]


# -- scaling by ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ranges", "scale", "offset"),
    [
        ((0, 27648, 0, 100), 100 / 27648, 0.0),  # S7 analog input, 0..100 %
        ((4000, 20000, 0, 10), 10 / 16000, -2.5),  # 4..20 mA in uA -> 0..10 bar
        ((0, 100, 100, 0), -1.0, 100.0),  # inverted
        ((-32768, 32767, -1, 1), 2 / 65535, -1 + 32768 * 2 / 65535),
    ],
)
def test_range_scaling_is_linear(ranges: tuple, scale: float, offset: float) -> None:
    raw_low, raw_high, eng_low, eng_high = ranges
    p = make_point(name="t", address="hr:0", type="int32", raw_low=raw_low, raw_high=raw_high, eng_low=eng_low, eng_high=eng_high)
    assert (p.scale, p.offset) == (pytest.approx(scale), pytest.approx(offset))
    assert raw_low * p.scale + p.offset == pytest.approx(eng_low)
    assert raw_high * p.scale + p.offset == pytest.approx(eng_high)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"raw_low": 0, "raw_high": 10}, r"needs all of .* \(missing eng_low, eng_high\)"),
        ({"raw_low": 0, "raw_high": 0, "eng_low": 0, "eng_high": 1}, "raw_low and raw_high must differ"),
        ({"raw_low": 0, "raw_high": 1, "eng_low": 2, "eng_high": 2}, "eng_low and eng_high must differ"),
        ({"raw_low": 0, "raw_high": 1, "eng_low": 0, "eng_high": 1, "scale": 2.0}, "not both"),
        ({"raw_low": 0, "raw_high": float("inf"), "eng_low": 0, "eng_high": 1}, "raw_high must be finite"),
        ({"raw_low": 0, "raw_high": 1, "eng_low": 0, "eng_high": 1, "type": "string", "length": 2}, "not allowed with type 'string'"),
    ],
)
def test_range_scaling_refusals(kwargs: dict, message: str) -> None:
    fields = {"name": "t", "address": "hr:0", "type": "uint16", **kwargs}
    with pytest.raises(ValueError, match=message):
        make_point(**fields)
