"""The data types added for upstream OPC UA servers: int8, uint8, datetime, bytes and 1-D arrays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asyncua import ua

from drivers.sample import Status, TagSample
from edge.core.registry import DATA_TYPES, TagInfo
from edge.opcua.model import NUMERIC, VARIANT_TYPES, to_datavalue
from edge.opcua.writes import check_value

T = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_every_registry_type_has_a_node_type() -> None:
    assert set(VARIANT_TYPES) == DATA_TYPES
    assert (VARIANT_TYPES["int8"], VARIANT_TYPES["uint8"]) == (ua.VariantType.SByte, ua.VariantType.Byte)
    assert {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"} == NUMERIC
    with pytest.raises(ValueError, match="unknown data type"):
        TagInfo("k", ("k",), "decimal")


@pytest.mark.parametrize(
    ("value", "vtype"),
    [(T, ua.VariantType.DateTime), (b"\x00\xff", ua.VariantType.ByteString), ([1, 2], ua.VariantType.Float), ([True], ua.VariantType.Boolean)],
)
def test_samples_become_data_values(value: object, vtype: ua.VariantType) -> None:
    dv = to_datavalue(TagSample("k", value, Status.Good, T, T), vtype)
    assert dv.Value.VariantType == vtype and dv.SourceTimestamp == T
    assert dv.Value.Value == ([float(v) for v in value] if vtype == ua.VariantType.Float else value)  # type: ignore[union-attr]
    assert bool(dv.Value.is_array) == isinstance(value, list)


def test_writes_check_arrays_and_element_ranges() -> None:
    arr = TagInfo("k", ("k",), "float64", low=0.0, high=10.0, writable=True, array=True)
    assert check_value(arr, ua.Variant([1.0, 2.0], ua.VariantType.Double))[0] == Status.Good
    assert check_value(arr, ua.Variant([1.0, 11.0], ua.VariantType.Double)) == (Status.BadOutOfRange, "11.0 is above the high limit 10")
    assert check_value(arr, ua.Variant(1.0, ua.VariantType.Double)) == (Status.BadTypeMismatch, "expected an array of Double, got a scalar Double")
    scalar = TagInfo("s", ("s",), "int8", writable=True)
    assert check_value(scalar, ua.Variant([1], ua.VariantType.SByte)) == (Status.BadTypeMismatch, "expected SByte, got an array of SByte")
    assert check_value(scalar, ua.Variant(1, ua.VariantType.SByte))[0] == Status.Good
    when = TagInfo("w", ("w",), "datetime", writable=True)
    assert check_value(when, ua.Variant(T, ua.VariantType.DateTime))[0] == Status.Good
    assert check_value(when, ua.Variant(1.0, ua.VariantType.Double))[0] == Status.BadTypeMismatch
