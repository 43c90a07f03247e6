"""The Sparkplug B payload schema and value mapping: hand-computed wire bytes and round trips."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sample import Status
from edge.mqtt.sparkplug import (
    QUALITY_BAD,
    QUALITY_GOOD,
    QUALITY_STALE,
    DataType,
    Payload,
    datatype_of,
    get_value,
    pack_array,
    properties,
    quality,
    set_property,
    set_value,
    unpack_array,
)


def test_payload_bytes_by_hand() -> None:
    """timestamp (field 1), one metric (field 2: alias 3, timestamp, datatype Double, double_value 13) and seq (field 3)."""
    p = Payload(timestamp=1000, seq=5)
    p.metrics.add(alias=3, timestamp=1000, datatype=DataType.Double, double_value=1.5)
    expected = bytes.fromhex("08e8071210100318e807200a69000000000000f83f1805")
    assert p.SerializeToString() == expected
    assert Payload.FromString(expected) == p


def test_negative_int8_is_twos_complement_in_uint32() -> None:
    """Int8 -1 travels as int_value 0xFFFFFFFF (field 10, varint) and reads back as -1."""
    p = Payload()
    m = p.metrics.add(name="a", datatype=DataType.Int8)
    set_value(m, DataType.Int8, -1)
    assert p.SerializeToString() == bytes.fromhex("120b0a0161200150ffffffff0f")
    assert get_value(Payload.FromString(p.SerializeToString()).metrics[0]) == -1


def test_property_set_bytes_by_hand() -> None:
    """PropertySet keys (field 1) and values (field 2: type Int32 = 3, int_value 192 in field 3)."""
    p = Payload()
    m = p.metrics.add()
    set_property(m.properties, "Quality", DataType.Int32, 192)
    assert p.SerializeToString() == bytes.fromhex("12124a100a075175616c6974791205080318c001")
    assert properties(Payload.FromString(p.SerializeToString()).metrics[0]) == {"Quality": 192}


def test_datatype_numbers_are_the_specification_s() -> None:
    assert (DataType.Int8, DataType.UInt64, DataType.Double, DataType.Boolean, DataType.String, DataType.DateTime) == (1, 8, 10, 11, 12, 13)
    assert (DataType.Bytes, DataType.Int8Array, DataType.DoubleArray, DataType.StringArray, DataType.DateTimeArray) == (17, 22, 31, 33, 34)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(Status.Good, QUALITY_GOOD), (Status.UncertainNoCommunicationLastUsableValue, QUALITY_STALE), (Status.BadNoCommunication, QUALITY_BAD)],
)
def test_quality_from_status(status: int, expected: int) -> None:
    assert quality(status) == expected


RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 255),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def _roundtrip(dt: DataType, value: object) -> object:
    p = Payload()
    m = p.metrics.add(datatype=dt)
    set_value(m, dt, value)  # type: ignore[arg-type]
    return get_value(Payload.FromString(p.SerializeToString()).metrics[0])


@given(st.sampled_from(sorted(RANGES)).flatmap(lambda t: st.tuples(st.just(t), st.integers(*RANGES[t]))))
def test_integers_round_trip(case: tuple[str, int]) -> None:
    data_type, value = case
    assert _roundtrip(datatype_of(data_type), value) == value


@given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20))
def test_int32_arrays_round_trip(values: list[int]) -> None:
    assert _roundtrip(DataType.Int32Array, values) == values


@given(st.floats(allow_nan=False), st.text(), st.binary(), st.booleans())
def test_scalars_round_trip(x: float, text: str, data: bytes, flag: bool) -> None:
    assert _roundtrip(DataType.Double, x) == x
    assert _roundtrip(DataType.String, text) == text
    assert _roundtrip(DataType.Bytes, data) == data
    assert _roundtrip(DataType.Boolean, flag) is flag


def test_nan_null_and_datetime() -> None:
    assert math.isnan(_roundtrip(DataType.Double, math.nan))  # type: ignore[arg-type]
    assert _roundtrip(DataType.Double, None) is None
    t = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert _roundtrip(DataType.DateTime, t) == t


def test_array_packing_by_the_specification() -> None:
    """Little-endian packed arrays (the specification's Int32 example); booleans as a count then MSB-first bits."""
    assert pack_array(DataType.Int32Array, [123456789, 987654321]) == bytes([0x15, 0xCD, 0x5B, 0x07, 0xB1, 0x68, 0xDE, 0x3A])
    assert pack_array(DataType.Int8Array, [-23, 123]) == bytes([0xE9, 0x7B])
    assert pack_array(DataType.BooleanArray, [True, False, True]) == bytes([3, 0, 0, 0, 0b1010_0000])
    assert pack_array(DataType.StringArray, ["ab", "c"]) == b"ab\x00c\x00"
    assert unpack_array(DataType.StringArray, b"ab\x00c\x00") == ["ab", "c"]
    assert unpack_array(DataType.BooleanArray, bytes([3, 0, 0, 0, 0b1010_0000])) == [True, False, True]


def test_datatype_of_every_gateway_type() -> None:
    from edge.core.registry import DATA_TYPES

    assert {t: datatype_of(t) for t in DATA_TYPES}["float32"] == DataType.Float
    assert datatype_of("float64", array=True) == DataType.DoubleArray
    with pytest.raises(ValueError, match="no Sparkplug array type for bytes"):
        datatype_of("bytes", array=True)
