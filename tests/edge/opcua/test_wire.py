"""Notifications encoded in bulk (edge.opcua.wire) and DataValues built directly (edge.opcua.fastpath)
are byte for byte and field for field what asyncua produces."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import extensionobject_from_binary, extensionobject_to_binary, struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sample import Status, TagSample
from edge.opcua import fastpath, wire
from edge.opcua.values import to_datavalue

V = ua.VariantType
RANGES = {
    V.SByte: (-(2**7), 2**7 - 1), V.Byte: (0, 2**8 - 1), V.Int16: (-(2**15), 2**15 - 1), V.UInt16: (0, 2**16 - 1),
    V.Int32: (-(2**31), 2**31 - 1), V.UInt32: (0, 2**32 - 1), V.Int64: (-(2**63), 2**63 - 1), V.UInt64: (0, 2**64 - 1),
}  # fmt: skip
STATUSES = [Status.Good, Status.UncertainLastUsableValue, Status.BadCommunicationError, Status.BadTypeMismatch]
stamps = st.one_of(st.none(), st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))


@st.composite
def samples(draw: st.DrawFn) -> tuple[ua.VariantType, object]:
    vtype = draw(st.sampled_from([V.Boolean, V.Float, V.Double, *RANGES]))
    if vtype is V.Boolean:
        return vtype, draw(st.booleans())
    if vtype is V.Double:
        return vtype, draw(st.floats(allow_nan=False))
    if vtype is V.Float:
        return vtype, draw(st.floats(width=32, allow_nan=False))
    low, high = RANGES[vtype]
    return vtype, draw(st.integers(low, high))


@settings(max_examples=300, deadline=None)
@given(samples(), st.sampled_from(STATUSES), stamps, stamps)
def test_datavalues_are_built_and_encoded_as_asyncua_does(typed, status, source, server) -> None:
    """A scalar sample: the DataValue equals ``to_datavalue``'s (a Bad one null, as asyncua's write
    makes it) and its encoding equals asyncua's ``struct_to_binary``."""
    vtype, value = typed
    sample = TagSample("t", value, status, source, server)  # type: ignore[arg-type]
    fast = fastpath.datavalue(sample.value, vtype, sample.status, sample.source_time, sample.server_time)
    expected = to_datavalue(sample, vtype)
    if status & 0x80000000:
        expected.Value = ua.Variant(None, V.Null)
    assert fast == expected
    assert wire.encode_datavalue(fast) == struct_to_binary(expected)


@pytest.mark.parametrize(
    ("vtype", "value"),
    [(V.UInt16, 70000), (V.Int16, -40000), (V.Byte, -1), (V.Float, 1e39), (V.Int32, 2**31)],
)
def test_a_value_its_type_cannot_carry_is_refused_like_asyncua(vtype: ua.VariantType, value: object) -> None:
    now = datetime.now(UTC)
    dv = ua.DataValue(ua.Variant(value, vtype), StatusCode=ua.StatusCode(0), SourceTimestamp=now, ServerTimestamp=now)
    with pytest.raises(ValueError):
        wire.encode_datavalue(dv)
    with pytest.raises((ua.UaError, struct.error, OverflowError)):
        struct_to_binary(dv)


@pytest.mark.parametrize(
    "variant",
    [ua.Variant("text", V.String), ua.Variant([1.0, 2.0], V.Double), ua.Variant(datetime(2026, 1, 1, tzinfo=UTC), V.DateTime), ua.Variant(None, V.Null)],
)
def test_other_values_fall_back_to_asyncuas_encoder(variant: ua.Variant) -> None:
    now = datetime.now(UTC)
    for dv in (
        ua.DataValue(variant, StatusCode=ua.StatusCode(0), SourceTimestamp=now, ServerTimestamp=now),
        ua.DataValue(variant, StatusCode=ua.StatusCode(0), SourceTimestamp=now, SourcePicoseconds=5),
        ua.DataValue(variant),
    ):
        assert wire.encode_datavalue(dv) == struct_to_binary(dv)
    assert fastpath.datavalue(variant.Value, variant.VariantType, 0, now, now) is None or variant.VariantType is V.Null


def test_a_data_change_notification_packed_in_bulk_is_what_asyncua_writes_and_reads() -> None:
    """Notifications with their own encoding, plain ones and diagnostics: the ExtensionObject's
    bytes equal asyncua's encoding of the DataChangeNotification, and decode to it."""
    now = datetime.now(UTC)
    values = [
        ua.DataValue(ua.Variant(float(i), V.Double), StatusCode=ua.StatusCode(0), SourceTimestamp=now - timedelta(seconds=i), ServerTimestamp=now)
        for i in range(5)
    ]
    items = [wire.wire_item(10 + i, dv, wire.encode_datavalue(dv)) if i % 2 else ua.MonitoredItemNotification(10 + i, dv) for i, dv in enumerate(values)]
    for diagnostics in ([], [ua.DiagnosticInfo(SymbolicId=3)]):
        notification = ua.DataChangeNotification(MonitoredItems=items, DiagnosticInfos=diagnostics)
        packed = wire.pack_data_change(notification)
        assert extensionobject_to_binary(packed) == extensionobject_to_binary(notification)
        decoded = extensionobject_from_binary(Buffer(extensionobject_to_binary(packed)))
        assert [(n.ClientHandle, n.Value) for n in decoded.MonitoredItems] == [(10 + i, dv) for i, dv in enumerate(values)]


def test_pack_result_replaces_only_data_changes() -> None:
    now = datetime.now(UTC)
    dv = ua.DataValue(ua.Variant(1.0, V.Double), StatusCode=ua.StatusCode(0), SourceTimestamp=now, ServerTimestamp=now)
    result = ua.PublishResult()
    events = ua.EventNotificationList(Events=[ua.EventFieldList(ClientHandle=1, EventFields=[ua.Variant(1, V.Int32)])])
    status = ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    result.NotificationMessage.NotificationData = [ua.DataChangeNotification(MonitoredItems=[ua.MonitoredItemNotification(1, dv)]), events, status]
    before = struct_to_binary(result)
    wire.pack_result(result)
    data = result.NotificationMessage.NotificationData
    assert isinstance(data[0], ua.ExtensionObject) and data[1] is events and data[2] is status
    assert struct_to_binary(result) == before
