"""DataValue <-> TagSample and the type tables (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asyncua import ua

from drivers.opcua_client.mapping import REGISTRY_TYPES, VARIANT_TYPES, ValueProblem, accepts, coerce, to_sample, to_variant, variant_type_of
from drivers.opcua_client.points import TAG_TYPES
from drivers.sample import Status
from edge.core.registry import DATA_TYPES
from edge.opcua import model

NOW = datetime(2025, 1, 1, tzinfo=UTC)
THEN = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
VT = ua.VariantType


def test_tag_types_are_registry_types_with_the_same_node_types_as_the_gateway() -> None:
    assert set(TAG_TYPES) == set(VARIANT_TYPES) <= DATA_TYPES
    assert {t: VARIANT_TYPES[t] for t in TAG_TYPES} == {t: model.VARIANT_TYPES[t] for t in TAG_TYPES}
    assert REGISTRY_TYPES[VT.SByte] == "int8" and REGISTRY_TYPES[VT.Byte] == "uint8"


def test_status_and_source_time_are_kept_server_time_is_ours() -> None:
    dv = ua.DataValue(ua.Variant(1.5, VT.Double), StatusCode=ua.StatusCode(0x40950000 | 0x400), SourceTimestamp=THEN)  # Uncertain + overflow bit
    s = to_sample("k", dv, "float64", False, NOW)
    assert (s.tag, s.value, s.status, s.source_time, s.server_time) == ("k", 1.5, 0x40950400, THEN, NOW)


def test_a_bad_status_carries_no_value_and_missing_timestamps_fall_back() -> None:
    failed = ua.DataValue(ua.Variant(3.0, VT.Double), StatusCode=ua.StatusCode(Status.BadSensorFailure), ServerTimestamp=THEN)
    bad = to_sample("k", failed, "float64", False, NOW)
    assert (bad.value, bad.status, bad.source_time) == (None, Status.BadSensorFailure, THEN)
    naive = to_sample("k", ua.DataValue(ua.Variant(True, VT.Boolean), SourceTimestamp=datetime(2024, 6, 1, 12, 0)), "bool", False, NOW)
    assert naive.source_time == THEN  # asyncua may decode naive UTC
    bare = to_sample("k", ua.DataValue(ua.Variant(1, VT.Int32)), "int32", False, NOW)
    assert bare.source_time == NOW


@pytest.mark.parametrize(
    ("value", "dtype", "array", "expected"),
    [
        (True, "bool", False, True),
        (-128, "int8", False, -128),
        (255, "uint8", False, 255),
        (2**64 - 1, "uint64", False, 2**64 - 1),
        (3, "float64", False, 3.0),
        (ua.LocalizedText("hi"), "string", False, "hi"),
        (datetime(2024, 6, 1, 12, 0), "datetime", False, THEN),
        (bytearray(b"ab"), "bytes", False, b"ab"),
        ([1, 2], "float32", True, [1.0, 2.0]),
        ((True, False), "bool", True, [True, False]),
    ],
)
def test_values_that_fit(value: object, dtype: str, array: bool, expected: object) -> None:
    got = coerce(value, dtype, array)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "dtype", "array", "status"),
    [
        (1, "bool", False, Status.BadTypeMismatch),
        (True, "int32", False, Status.BadTypeMismatch),
        (1.5, "int32", False, Status.BadTypeMismatch),
        (256, "uint8", False, Status.BadOutOfRange),
        (-1, "uint64", False, Status.BadOutOfRange),
        ("1.5", "float64", False, Status.BadTypeMismatch),
        ([1.0], "float64", False, Status.BadTypeMismatch),
        (1.0, "float64", True, Status.BadTypeMismatch),
        ([1, "x"], "int32", True, Status.BadTypeMismatch),
    ],
)
def test_values_that_do_not_fit(value: object, dtype: str, array: bool, status: int) -> None:
    with pytest.raises(ValueProblem) as info:
        coerce(value, dtype, array)
    assert info.value.status == status
    assert to_sample("k", ua.DataValue(ua.Variant(value)), dtype, array, NOW).status == status


def test_data_types() -> None:
    assert variant_type_of(ua.NodeId(11)) == VT.Double
    assert variant_type_of(ua.NodeId(3)) == VT.Byte
    assert variant_type_of(ua.NodeId(290)) == VT.Double  # Duration
    assert variant_type_of(ua.NodeId(294)) == VT.DateTime  # UtcTime
    assert variant_type_of(ua.NodeId(26)) is None  # Number (abstract)
    assert variant_type_of(ua.NodeId(3002, 2)) is None  # a vendor type
    assert accepts("float64", VT.Int16) and accepts("int16", VT.Int64) and not accepts("float64", VT.String)
    assert not accepts("int32", VT.Double) and accepts("string", VT.LocalizedText)


def test_writes_take_the_upstream_type() -> None:
    assert to_variant(2.0, VT.Float, False) == ua.Variant(2.0, VT.Float)
    assert to_variant(7.0, VT.Int16, False) == ua.Variant(7, VT.Int16)
    assert to_variant([1, 2], VT.Double, True) == ua.Variant([1.0, 2.0], VT.Double, is_array=True)
    assert to_variant("x", VT.LocalizedText, False).Value == ua.LocalizedText("x")
    for value, vtype, array, status in (
        (7.5, VT.Int16, False, Status.BadTypeMismatch),
        (40000, VT.Int16, False, Status.BadOutOfRange),
        (1e39, VT.Float, False, Status.BadOutOfRange),
        (True, VT.Double, False, Status.BadTypeMismatch),
        (1.0, VT.Double, True, Status.BadTypeMismatch),
        ([1.0], VT.Double, False, Status.BadTypeMismatch),
        ("x", VT.Guid, False, Status.BadTypeMismatch),
        (1, VT.String, False, Status.BadTypeMismatch),
    ):
        with pytest.raises(ValueProblem) as info:
            to_variant(value, vtype, array)
        assert info.value.status == status, (value, vtype)
