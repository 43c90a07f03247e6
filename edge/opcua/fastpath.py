"""A sample into its node and the node's monitored items in one synchronous step.

asyncua's ``AddressSpace.write_attribute_value`` is a coroutine per value that awaits each
monitored item's coroutine callback, and ``ua.Variant`` / ``ua.DataValue`` check and guess types
in ``__post_init__``; together that was most of the gateway's cost per published value.
``write_value`` does what ``write_attribute_value`` does for the common case, without an await:

* the DataValue is built directly (``datavalue``): the writer knows the variant type, the status
  codes are shared objects, and a Bad status gets a null value (as asyncua does, OPC UA Part 4, 7.7.1);
* it is encoded once (``wire.encode_datavalue``), which is also the check that the node's type can
  carry it;
* it replaces the node's value (``AttributeValue.value``) when the node holds a value of the same
  variant type, or a null value and has that built-in DataType, as asyncua's type check requires;
* each monitored item of the gateway's policy takes it synchronously (``sampling.feed``) with its
  encoding, so the notification needs no encoding of its own when published.

Anything else (a value of another type or shape, a node with a value setter or callback, a
monitored item asyncua handles itself) returns None and goes through asyncua's own write (``publish.NodeWriter``), with its checks. The asyncua internals used
here are checked by ``asyncua_patches.check_fast_path`` and pinned by tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.ua.uaerrors import UaError

from drivers.sample import TagSample
from edge.opcua import sampling
from edge.opcua.wire import encode_datavalue

_V = ua.VariantType
_FLOATS = (_V.Float, _V.Double)
_SCALARS = frozenset({_V.Boolean, _V.SByte, _V.Byte, _V.Int16, _V.UInt16, _V.Int32, _V.UInt32, _V.Int64, _V.UInt64, _V.Float, _V.Double})
_VALUE = ua.AttributeIds.Value
_STATUS: dict[int, ua.StatusCode] = {}
_new = object.__new__
_Variant = ua.Variant
_DataValue = ua.DataValue
_NULL = ua.Variant(None, ua.VariantType.Null)

Pending = list[Callable[..., Any]]


def status_code(code: int) -> ua.StatusCode:
    """One shared StatusCode per code (a published DataValue is never changed)."""
    sc = _STATUS.get(code)
    if sc is None:
        sc = _STATUS[code] = ua.StatusCode(code)
    return sc


def _is_bad(code: int) -> bool:
    return code & 0x80000000 != 0


def datavalue(value: Any, vtype: ua.VariantType, status: int, source: datetime | None, server: datetime | None) -> ua.DataValue | None:
    """The DataValue ``values.to_datavalue`` builds for a scalar number or boolean of variant
    type *vtype* (a null value when *status* is Bad), or None for anything else."""
    if _is_bad(status):
        variant = _NULL
    else:
        kind = type(value)
        if vtype in _FLOATS:
            if kind is not float:
                if kind is not int:
                    return None
                value = float(value)
        elif vtype not in _SCALARS or (kind is not int and kind is not bool):
            return None
        variant = _new(_Variant)
        variant.Value = value
        variant.VariantType = vtype
        variant.Dimensions = None
        variant.is_array = False
    dv = _new(_DataValue)
    dv.Encoding = 0
    dv.Value = variant
    dv.StatusCode = status_code(status)
    dv.SourceTimestamp = source
    dv.ServerTimestamp = server
    dv.SourcePicoseconds = None
    dv.ServerPicoseconds = None
    return dv


def write_value(aspace: Any, nid: ua.NodeId, vtype: ua.VariantType, sample: TagSample, now: float) -> tuple[ua.DataValue, Pending] | None:
    """Write *sample* to the Value of *nid* and hand it to the node's monitored items (*now*: the
    loop time of the batch); return the DataValue and the callbacks still to be awaited with it
    (monitored items outside the gateway's policy), or None when asyncua's own write must do it."""
    node = aspace.get(nid)
    if node is None:
        return None
    attval = node.attributes.get(_VALUE)
    if attval is None or attval.value_setter is not None or attval.value is None:
        return None
    current = attval.value.Value
    status = int(sample.status)
    if not status & 0x80000000 and (current is None or (current.VariantType is not vtype and not _null_of_type(node, current, vtype))):
        return None
    dv = datavalue(sample.value, vtype, status, sample.source_time, sample.server_time)
    if dv is None:
        return None
    try:
        encoded = encode_datavalue(dv)
    except (ValueError, OverflowError, TypeError, UaError):
        return None
    attval.value = dv
    attval.value_callback = None
    pending: Pending = []
    callbacks = attval.datachange_callbacks
    if callbacks:
        policy = sampling.POLICY[0] if sampling.POLICY else None
        for handle, callback in callbacks.items():
            if getattr(callback, "__func__", None) is not policy or not sampling.feed(callback.__self__, handle, dv, encoded, now):
                pending.append(_bind(callback, handle))
    return dv, pending


def _null_of_type(node: Any, current: ua.Variant, vtype: ua.VariantType) -> bool:
    """A null value (after a Bad sample) on a node whose DataType is *vtype*'s built-in type: what
    asyncua's type check accepts."""
    if current.VariantType is not _V.Null:
        return False
    dtype = node.attributes.get(ua.AttributeIds.DataType)
    nid = dtype.value.Value.Value if dtype is not None and dtype.value is not None and dtype.value.Value is not None else None
    return isinstance(nid, ua.NodeId) and nid.NamespaceIndex == 0 and nid.Identifier == vtype.value


def _bind(callback: Callable[..., Any], handle: int) -> Callable[..., Any]:
    return lambda value: callback(handle, value)
