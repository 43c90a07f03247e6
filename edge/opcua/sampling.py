"""Monitored items that do what the client asked: sampling interval, queue size, deadbands.

asyncua 2.1 revises every sampling interval to the publishing interval and then reports every
change of the node, turns a queue size of 0 into 10,000, accepts a percent deadband and ignores
it, and compares an absolute deadband with the previous sample instead of the last reported value.
For the gateway's own server (``enable``), ``asyncua_patches.install_monitored_item_policy``
routes the monitored-item service through the functions here (OPC UA Part 4, 7.21 and 7.22.2):

* **Sampling interval**: -1 means the publishing interval; the revised interval is never below the
  node's MinimumSamplingInterval (the tag's poll interval: the source cannot change faster). An item
  sees at most one value per interval: a change that comes sooner is held, and the latest held
  value is reported when the interval has passed (0 is exception-based: every change).
* **Queue size**: 0 is revised to 1; the cap stays the subscription's. ``DiscardOldest = false``
  replaces the newest queued notification instead of dropping the oldest.
* **Deadband**: compared with the last *reported* value. Percent: of the node's EURange
  (High - Low); an item asking for a percent deadband on a node without an EURange is refused with
  BadFilterNotAllowed, a deadband on a non-numeric node with BadFilterNotAllowed too.
* No per-value deep copy: the gateway's published DataValues are never changed after they are
  written to a node, so a monitored item keeps a reference.

The publish loop hands each written value to the items synchronously (``feed``, from
``fastpath.write_value``, with the value's encoding); asyncua's own writes reach them through
``datachange_callback``. Both take the same steps (``_offer``: hold or report; ``_report``: trigger,
deadband, queue), and queue into ``InternalSubscription._triggered_datachanges`` as asyncua's
``_enqueue_event`` does (a publishing interval of 0 is left to asyncua, which publishes at once).

Pure functions first (tested with tables), then the replacements, which take asyncua's objects.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua

from edge.opcua.wire import wire_item

_ENABLED: weakref.WeakSet[Any] = weakref.WeakSet()  # address spaces of the gateway's own servers


def enable(aspace: Any) -> None:
    """Apply the policy to monitored items on nodes of *aspace* (other servers keep asyncua's)."""
    _ENABLED.add(aspace)


def enabled(aspace: Any) -> bool:
    return aspace in _ENABLED


# -- pure ------------------------------------------------------------------------------------
def _is_deadband_filter(flt: Any) -> bool:
    """A DataChangeFilter (by its fields: a decoded filter is not always an instance of
    ``ua.DataChangeFilter`` itself, asyncua may decode it into another class of that name)."""
    return flt is not None and hasattr(flt, "DeadbandType") and hasattr(flt, "Trigger")


def revise_sampling_ms(requested_ms: float, publishing_ms: float, node_min_ms: float) -> float:
    """The revised sampling interval: -1 (any negative) is the publishing interval; never below the
    node's MinimumSamplingInterval."""
    wanted = publishing_ms if requested_ms < 0 else requested_ms
    return float(max(wanted, node_min_ms, 0.0))


def revise_queue_size(requested: int, cap: int) -> int:
    """0 means 1 (the latest value only); otherwise at most the subscription's cap."""
    return 1 if requested <= 0 else min(int(requested), cap)


def filter_problem(flt: Any, numeric: bool, span: float | None) -> int | None:
    """The status refusing data change filter *flt* for a node (numeric or not, EURange span or
    None), or None when it is allowed."""
    if not _is_deadband_filter(flt) or flt.DeadbandType == ua.DeadbandType.None_:
        return None
    if not numeric:
        return ua.StatusCodes.BadFilterNotAllowed
    if flt.DeadbandType == ua.DeadbandType.Percent:
        if span is None or not span > 0:
            return ua.StatusCodes.BadFilterNotAllowed
        if not 0.0 <= flt.DeadbandValue <= 100.0:
            return ua.StatusCodes.BadDeadbandFilterInvalid
    elif flt.DeadbandValue < 0:
        return ua.StatusCodes.BadDeadbandFilterInvalid
    return None


def changed(last: ua.DataValue | None, current: ua.DataValue, trigger: ua.DataChangeTrigger, deadband: float | None) -> bool:
    """Whether *current* is reported, given the last reported value: status, value (beyond the
    absolute *deadband*, when there is one) or source timestamp, per the trigger."""
    if last is None:
        return True
    if last.StatusCode != current.StatusCode:
        return True
    if trigger == ua.DataChangeTrigger.Status:
        return False
    a = last.Value.Value if last.Value is not None else None
    b = current.Value.Value if current.Value is not None else None
    if deadband is not None and isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        value_changed = abs(b - a) > deadband
    else:
        value_changed = a != b
    if value_changed:
        return True
    return trigger == ua.DataChangeTrigger.StatusValueTimestamp and (
        last.SourceTimestamp != current.SourceTimestamp or last.SourcePicoseconds != current.SourcePicoseconds
    )


def absolute_deadband(flt: Any, span: float | None) -> float | None:
    """The deadband of *flt* in engineering units (percent of *span*), or None without one."""
    if not _is_deadband_filter(flt) or flt.DeadbandType == ua.DeadbandType.None_:
        return None
    if flt.DeadbandType == ua.DeadbandType.Percent:
        return None if span is None else flt.DeadbandValue / 100.0 * span
    return float(flt.DeadbandValue)


# -- per item state ------------------------------------------------------------------------------
@dataclass(slots=True)
class ItemState:
    """What the policy keeps per monitored item (on asyncua's MonitoredItemData as ``edgetwin``)."""

    interval_s: float = 0.0
    deadband: float | None = None
    trigger: ua.DataChangeTrigger = ua.DataChangeTrigger.StatusValue
    discard_oldest: bool = True
    last_reported: ua.DataValue | None = None
    last_sample_at: float = float("-inf")  # loop time of the last value taken
    held: ua.DataValue | None = None
    held_wire: bytes | None = None  # the encoding of the held value, when the writer gave one
    timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    column: Any = None  # (ColumnGroup, position) while the item is served as arrays (edge.opcua.column_items)


VERSION = [0]  # bumped when a monitored item is made or deleted: columnar plans are rebuilt (edge.opcua.columnar)
# per address space, the data-change items made since the columnar plans were last rebuilt:
# (MonitoredItemService, monitored item id, MonitoredItemData, NodeId); the columnar writer feeds them
# item by item until its plans include them, then clears the list
RECENT: weakref.WeakKeyDictionary[Any, list[tuple[Any, int, Any, ua.NodeId]]] = weakref.WeakKeyDictionary()


def node_facts(aspace: Any, nodeid: ua.NodeId) -> tuple[float, bool, float | None]:
    """(MinimumSamplingInterval in ms, numeric, EURange span or None) of a variable in *aspace*."""
    msi = aspace.read_attribute_value(nodeid, ua.AttributeIds.MinimumSamplingInterval)
    min_ms = float(msi.Value.Value) if msi.Value is not None and isinstance(msi.Value.Value, int | float) else 0.0
    dtype = aspace.read_attribute_value(nodeid, ua.AttributeIds.DataType)
    numeric = (
        dtype.Value is not None
        and isinstance(dtype.Value.Value, ua.NodeId)
        and dtype.Value.Value.NamespaceIndex == 0
        and 2 <= dtype.Value.Value.Identifier <= 11
    )
    span = None
    node = aspace.get(nodeid)
    for ref in node.references if node is not None else ():
        if ref.IsForward and ref.ReferenceTypeId == _HAS_PROPERTY and ref.BrowseName.Name == "EURange":
            rng = aspace.read_attribute_value(ref.NodeId, ua.AttributeIds.Value)
            value = rng.Value.Value if rng.Value is not None else None
            if isinstance(value, ua.Range):
                span = float(value.High - value.Low)
            break
    return min_ms, numeric, span


_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)


# -- the replacements (installed by asyncua_patches.install_monitored_item_policy) ------------------
def make_common(original: Any) -> Any:
    """``MonitoredItemService._make_monitored_item_common``: revised sampling interval and queue
    size, and the item's ``ItemState``."""

    def make_monitored_item_common(self: Any, params: ua.MonitoredItemCreateRequest) -> Any:
        result, mdata = original(self, params)
        if not enabled(self.aspace) or params.ItemToMonitor.AttributeId != ua.AttributeIds.Value:
            return result, mdata
        req = params.RequestedParameters
        min_ms, _, span = node_facts(self.aspace, params.ItemToMonitor.NodeId)
        revised = revise_sampling_ms(req.SamplingInterval, self.isub.data.RevisedPublishingInterval, min_ms)
        result.RevisedSamplingInterval = revised
        result.RevisedQueueSize = mdata.queue_size = revise_queue_size(req.QueueSize, self.isub.max_queue_size)
        VERSION[0] += 1
        recent = RECENT.get(self.aspace)  # there once a columnar batch was written to this address space
        if recent is not None:
            recent.append((self, result.MonitoredItemId, mdata, params.ItemToMonitor.NodeId))
        flt = req.Filter
        mdata.edgetwin = ItemState(
            interval_s=revised / 1000.0 if revised > min_ms else 0.0,  # at the source's own rate: every change
            deadband=absolute_deadband(flt, span),
            trigger=flt.Trigger if _is_deadband_filter(flt) else ua.DataChangeTrigger.StatusValue,
            discard_oldest=bool(req.DiscardOldest),
        )
        return result, mdata

    return make_monitored_item_common


def create_data_change(original: Any) -> Any:
    """``MonitoredItemService._create_data_change_monitored_item``: refuse a filter the node cannot have."""

    async def create_data_change_monitored_item(self: Any, params: ua.MonitoredItemCreateRequest) -> ua.MonitoredItemCreateResult:
        if enabled(self.aspace) and params.ItemToMonitor.AttributeId == ua.AttributeIds.Value and self.aspace.get(params.ItemToMonitor.NodeId) is not None:
            _, numeric, span = node_facts(self.aspace, params.ItemToMonitor.NodeId)
            problem = filter_problem(params.RequestedParameters.Filter, numeric, span)
            if problem is not None:
                return ua.MonitoredItemCreateResult(StatusCode=ua.StatusCode(problem))
        return await original(self, params)

    return create_data_change_monitored_item


def datachange(original: Any) -> Any:
    """``MonitoredItemService.datachange_callback``: sampling at the item's interval, deadbands
    against the last reported value, no deep copy."""

    async def datachange_callback(self: Any, handle: int, value: ua.DataValue, error: ua.StatusCode | None = None) -> None:
        mid = self._monitored_datachange.get(handle)
        mdata = self._monitored_items.get(mid) if mid is not None else None
        state = getattr(mdata, "edgetwin", None)
        if error or state is None:
            return await original(self, handle, value, error)
        if _offer(self, mid, mdata, state, value, None, asyncio.get_running_loop().time()):
            await self.isub.enqueue_datachange_event(mid, _notification(mdata, value, None), mdata.queue_size)
        return None

    POLICY[:] = [datachange_callback]
    return datachange_callback


POLICY: list[Any] = []  # the installed datachange_callback (the function; a bound method's __func__), once installed


def feed(service: Any, handle: int, value: ua.DataValue, encoded: bytes, now: float) -> bool:
    """Give *value* (its encoding *encoded*) to the monitored item of *handle* in *service*
    synchronously, at loop time *now*, as ``datachange_callback`` would; False when the item must
    take it through the coroutine (not under the policy, or a subscription that publishes at once)."""
    mid = service._monitored_datachange.get(handle)
    mdata = service._monitored_items.get(mid) if mid is not None else None
    state = getattr(mdata, "edgetwin", None)
    if state is None or service.isub.data.RevisedPublishingInterval <= 0:
        return False
    _offer(service, mid, mdata, state, value, encoded, now)
    return True


def _offer(service: Any, mid: int, mdata: Any, state: ItemState, value: ua.DataValue, encoded: bytes | None, now: float) -> bool:
    """Sample *value* for one item: hold it until the item's interval ends, or report it. True
    when the notification is left to asyncua's ``enqueue_datachange_event`` (publishing interval
    0: asyncua publishes at once, which needs an await)."""
    if mdata.mode == ua.MonitoringMode.Disabled:
        return False
    due = state.last_sample_at + state.interval_s
    if state.interval_s > 0 and now < due:
        state.held, state.held_wire = value, encoded  # the latest value of this interval, taken when it ends
        if state.timer is None:
            state.timer = asyncio.get_running_loop().call_later(due - now, _take_held, service, mid, state)
        return False
    state.last_sample_at = now
    return _report(service, mid, mdata, state, value, encoded)


def _take_held(service: Any, mid: int, state: ItemState) -> None:
    """The sampling interval ended with a value held: report it."""
    state.timer = None
    value, encoded, state.held, state.held_wire = state.held, state.held_wire, None, None
    mdata = service._monitored_items.get(mid)
    if value is None or mdata is None:
        return
    state.last_sample_at = asyncio.get_running_loop().time()
    if _report(service, mid, mdata, state, value, encoded):  # publishing interval 0: a task owned by the item's state
        coro = service.isub.enqueue_datachange_event(mid, _notification(mdata, value, encoded), mdata.queue_size)
        task = asyncio.get_running_loop().create_task(coro, name=f"opcua:sample:{mid}")
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)


def _notification(mdata: Any, value: ua.DataValue, encoded: bytes | None) -> ua.MonitoredItemNotification:
    if encoded is None:
        return ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=value)
    return wire_item(mdata.client_handle, value, encoded)


def _report(service: Any, mid: int, mdata: Any, state: ItemState, value: ua.DataValue, encoded: bytes | None) -> bool:
    """Queue the notification of *value* unless the trigger or deadband holds it back; True when
    it is left to the caller to enqueue through asyncua (publishing interval 0)."""
    mdata.mvalue.old_dvalue, mdata.mvalue.current_dvalue = mdata.mvalue.current_dvalue, value
    column = state.column
    if column is not None:  # served as arrays too: the group holds the last reported value
        state.last_reported = column[0].last_datavalue(column[1])
    if not changed(state.last_reported, value, state.trigger, state.deadband):
        return False
    state.last_reported = value
    if column is not None:
        column[0].reported_elsewhere(column[1], value)
    isub = service.isub
    queue = isub._triggered_datachanges
    queued = queue.get(mid)
    if not state.discard_oldest and mdata.queue_size > 0 and queued is not None and len(queued) >= mdata.queue_size:
        queued[-1] = _notification(mdata, value, encoded)  # DiscardOldest = false: the newest queued notification is replaced
        return False
    if isub.data.RevisedPublishingInterval <= 0:
        return True
    # InternalSubscription._enqueue_event without its publish trigger (a no-op at a publishing interval > 0)
    event = _notification(mdata, value, encoded)
    if queued is None:
        queue[mid] = [event]
    else:
        if mdata.queue_size != 0 and len(queued) >= mdata.queue_size:
            queued.pop(0)
        queued.append(event)
    return False


def delete_item(original: Any) -> Any:
    """``MonitoredItemService._delete_monitored_items``: a deleted item's held value and timer go too."""

    def delete_monitored_items(self: Any, mid: int) -> ua.StatusCode:
        state = getattr(self._monitored_items.get(mid), "edgetwin", None)
        VERSION[0] += 1
        if state is not None:
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            for task in list(state.tasks):
                task.cancel()
        return original(self, mid)

    return delete_monitored_items
