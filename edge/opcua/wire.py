"""Data-change notifications encoded in bulk: the same bytes as asyncua's encoder, a fraction of the cost.

asyncua encodes a PublishResponse object by object (a dataclass serializer per
MonitoredItemNotification, DataValue, Variant, StatusCode and timestamp: some 20 µs per
notification). The gateway encodes each published DataValue once, when it is written to its node
(``encode_datavalue``: one ``struct.pack`` for a scalar number or boolean with a status and both
timestamps, asyncua's encoder for anything else), and a monitored item queues a
``WireNotification`` that carries its ClientHandle and those bytes. Before a client subscription's
PublishResult goes to the transport, ``pack_result`` joins the notifications of each
DataChangeNotification into one body and replaces the notification by an ExtensionObject with that
body (TypeId DataChangeNotification_Encoding_DefaultBinary); asyncua writes an ExtensionObject's
body as it is. The bytes are exactly asyncua's (``tests/edge/opcua/test_wire.py`` compares them
over generated values), so every client decodes them as before; a republished message is the same
ExtensionObject.

asyncua's layout of a DataValue (2.1.0): an encoding mask (Value 0x01, StatusCode 0x02,
SourceTimestamp 0x04, ServerTimestamp 0x08, SourcePicoseconds 0x10, ServerPicoseconds 0x20, a bit
for each field that is not None), then the fields in that order. A DataValue with picoseconds, an
array, a string or any other variant type goes through asyncua's own encoder.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.ua.ua_binary import struct_to_binary
from asyncua.ua.uatypes import datetime_to_win_epoch

from edge.opcua.column_wire import ColumnBlock

__all__ = ["WireNotification", "encode_datavalue", "item_count", "pack_result", "wire_item"]

_V = ua.VariantType
# scalar variant types encoded here: the struct format of the value
_FORMATS: dict[int, str] = {
    _V.Boolean: "?", _V.SByte: "b", _V.Byte: "B", _V.Int16: "h", _V.UInt16: "H", _V.Int32: "i",
    _V.UInt32: "I", _V.Int64: "q", _V.UInt64: "Q", _V.Float: "f", _V.Double: "d",
}  # fmt: skip
# the common case in one pack: mask 0x0F (value, status, both timestamps), variant type, value, status, two timestamps
_FULL = {int(t): struct.Struct(f"<BB{f}Iqq") for t, f in _FORMATS.items()}
_VALUE = {int(t): struct.Struct(f"<B{f}") for t, f in _FORMATS.items()}
_NULL_FULL = struct.Struct("<BBIqq")  # mask 0x0F, a Null variant (encoding byte 0), status, two timestamps
_I32 = struct.Struct("<i").pack
_U32 = struct.Struct("<I").pack
_I64 = struct.Struct("<q").pack
_EMPTY_LIST = _I32(0)
_new = object.__new__
_DATA_CHANGE_TYPE: ua.NodeId = ua.typeid_by_extension_objects[ua.DataChangeNotification]

_last_time: list[Any] = [None, 0]  # the datetime encoded last and its ticks (a batch shares one stamp)


def _ticks(dt: datetime) -> int:
    if dt is _last_time[0]:
        return _last_time[1]  # type: ignore[no-any-return]
    ticks = datetime_to_win_epoch(dt)
    _last_time[0], _last_time[1] = dt, ticks
    return ticks


def encode_datavalue(dv: ua.DataValue) -> bytes:
    """*dv* in OPC UA binary, byte for byte as asyncua's ``struct_to_binary``; raises ValueError
    (or asyncua's UaError) when the value cannot be encoded as its variant type."""
    variant = dv.Value
    status = dv.StatusCode
    src = dv.SourceTimestamp
    srv = dv.ServerTimestamp
    if variant is None or status is None or dv.SourcePicoseconds is not None or dv.ServerPicoseconds is not None:
        return struct_to_binary(dv)
    vtype = variant.VariantType
    if variant.is_array or variant.Dimensions is not None:
        return struct_to_binary(dv)
    try:
        if src is not None and srv is not None:
            if vtype is _V.Null:
                return _NULL_FULL.pack(0x0F, 0, status.value, _ticks(src), _ticks(srv))
            full = _FULL.get(vtype)
            if full is not None:
                return full.pack(0x0F, vtype, variant.Value, status.value, _ticks(src), _ticks(srv))
        if vtype is _V.Null:
            body = b"\x00"
        else:
            single = _VALUE.get(vtype)
            if single is None:
                return struct_to_binary(dv)
            body = single.pack(vtype, variant.Value)
    except (struct.error, OverflowError, TypeError) as exc:
        raise ValueError(f"cannot encode {variant.Value!r} as {vtype.name}: {exc}") from None
    mask = 0x03 | (0x04 if src is not None else 0) | (0x08 if srv is not None else 0)
    parts = [bytes((mask,)), body, _U32(status.value)]
    if src is not None:
        parts.append(_I64(_ticks(src)))
    if srv is not None:
        parts.append(_I64(_ticks(srv)))
    return b"".join(parts)


class WireNotification(ua.MonitoredItemNotification):
    """A MonitoredItemNotification that carries its own encoding (ClientHandle and DataValue) in ``wire``."""

    __slots__ = ("wire",)

    wire: bytes


def wire_item(handle: int, value: ua.DataValue, encoded: bytes) -> WireNotification:
    """The notification of *value* (whose encoding is *encoded*) for the item with ClientHandle *handle*."""
    item = _new(WireNotification)  # the two fields and ``wire``: no dataclass __init__ (asyncua_patches.check_fast_path)
    item.ClientHandle = handle
    item.Value = value
    item.wire = _I32(handle) + encoded
    return item


def _item_bytes(item: ua.MonitoredItemNotification) -> bytes:
    kind = type(item)
    if kind is WireNotification:
        return item.wire  # type: ignore[attr-defined,no-any-return]
    if kind is ColumnBlock:
        return item.freeze()  # type: ignore[attr-defined,no-any-return]
    return _I32(item.ClientHandle) + encode_datavalue(item.Value)


def item_count(items: list[ua.MonitoredItemNotification]) -> int:
    """The notifications in *items*: a ``ColumnBlock`` stands for ``count`` of them."""
    n = len(items)
    for item in items:
        if type(item) is ColumnBlock:
            item.freeze()  # type: ignore[attr-defined]
            n += item.count - 1  # type: ignore[attr-defined]
    return n


def pack_data_change(notification: ua.DataChangeNotification) -> ua.ExtensionObject:
    """*notification* as an ExtensionObject holding its encoded body."""
    items = notification.MonitoredItems or []
    diagnostics = notification.DiagnosticInfos
    tail = _EMPTY_LIST if not diagnostics else struct_to_binary(ua.DataChangeNotification(DiagnosticInfos=diagnostics))[4:]
    parts = list(map(_item_bytes, items))  # first: a ColumnBlock knows its count once encoded
    body = b"".join([_I32(item_count(items)), *parts, tail])
    return ua.ExtensionObject(TypeId=_DATA_CHANGE_TYPE, Body=body)


def pack_result(result: ua.PublishResult) -> None:
    """Replace each DataChangeNotification of *result* by its encoded ExtensionObject, in place."""
    data = result.NotificationMessage.NotificationData
    for i, notification in enumerate(data or ()):
        if type(notification) is ua.DataChangeNotification:
            data[i] = pack_data_change(notification)
