"""The monitored items of one subscription on columnar nodes, taken as arrays.

``ColumnGroup`` holds, for the items of one client subscription that watch nodes written from one
key tuple (``edge.opcua.columnar``), what ``sampling.ItemState`` holds per item, as arrays: the
batch row each item watches, its ClientHandle, trigger, absolute deadband (percent already
converted, ``sampling.absolute_deadband``), and the last *reported* status, value and source
timestamp. ``offer`` takes a whole batch with NumPy: the same decision as ``sampling.changed`` for
every item at once (status, value beyond the deadband, source timestamp per trigger; a Bad value
is null), and keeps what is reported as the item's pending notification (queue size 1: a newer one
replaces it, which is what both DiscardOldest settings do with one slot).

The pending notifications of the group stand in the subscription's queue as one ``ColumnBlock``
(``column_wire``); asyncua pops it with the rest when it publishes, and the publish callback
encodes it (``ColumnBlock.freeze`` -> ``take``) in one call.

Only items the columnar path can honour join a group (``eligible``): under the gateway's
monitored-item policy, a client subscription publishing at an interval > 0, queue size 1, sampling
at the source's rate (interval 0 after revision). The others take each value through
``sampling.feed`` as before. An item in a group keeps its ``ItemState`` in step: the per-item path
(a sample published alone, e.g. a stale mark) compares with the group's last reported value and
clears the group's pending notification when it reports (``sync_before`` / ``sync_after``).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from asyncua import ua

from drivers.columns import SampleColumns, from_ticks, ticks
from edge.opcua import sampling
from edge.opcua.column_wire import ColumnBlock, encode_rows

__all__ = ["ColumnGroup", "eligible"]

_BAD = np.uint32(0x80000000)
_DISABLED = ua.MonitoringMode.Disabled
_keys = itertools.count(1)  # queue keys of the groups' blocks: -1, -2, ... (monitored item ids are positive)


def eligible(service: Any, mdata: Any) -> bool:
    """Whether the columnar path honours this monitored item exactly (see the module docstring)."""
    state = getattr(mdata, "edgetwin", None)
    isub = service.isub
    return (
        state is not None
        and isub.pub_request_callback is not None
        and isub.data.RevisedPublishingInterval > 0
        and mdata.queue_size == 1
        and state.interval_s == 0
        and state.held is None
    )


class ColumnGroup:
    """The columnar items of one subscription (``service``: its MonitoredItemService)."""

    def __init__(self, service: Any, items: list[tuple[int, Any, int]]) -> None:
        """*items*: (monitored item id, its MonitoredItemData, the batch row it watches)."""
        n = len(items)
        self.service = service
        self.isub = service.isub
        self.key = -next(_keys)
        self.mids = [mid for mid, _, _ in items]
        self.mdatas = [mdata for _, mdata, _ in items]
        self.states = [mdata.edgetwin for mdata in self.mdatas]
        self.pos = {mid: i for i, mid in enumerate(self.mids)}
        self.rows = np.fromiter((row for _, _, row in items), dtype=np.intp, count=n)
        self.handles = np.fromiter((m.client_handle for m in self.mdatas), dtype=np.uint32, count=n)
        self.has_deadband = np.fromiter((s.deadband is not None for s in self.states), dtype=bool, count=n)
        self.deadband = np.fromiter((s.deadband or 0.0 for s in self.states), dtype=np.float64, count=n)
        self.trigger = np.fromiter((int(s.trigger) for s in self.states), dtype=np.int8, count=n)
        self.ever = np.zeros(n, dtype=bool)  # a value was reported (last_* hold it)
        self.last_status = np.zeros(n, dtype=np.uint32)
        self.last_value = np.zeros(n, dtype=np.float64)
        self.last_has = np.zeros(n, dtype=bool)  # the last reported value was not null
        self.last_source = np.zeros(n, dtype=np.int64)
        self.pending = np.zeros(n, dtype=bool)
        self.p_value = np.zeros(n, dtype=np.float64)
        self.p_status = np.zeros(n, dtype=np.uint32)
        self.p_source = np.zeros(n, dtype=np.int64)
        self.p_server = np.zeros(n, dtype=np.int64)
        self.block: ColumnBlock | None = None
        self.resized = False  # an item's queue size is no longer 1: the groups are rebuilt
        moved: dict[int, tuple[ColumnGroup, list[int], list[int]]] = {}  # items of a group built before: its arrays carry over
        for i, state in enumerate(self.states):
            if state.column is not None:
                old = moved.setdefault(id(state.column[0]), (state.column[0], [], []))
                old[1].append(i)
                old[2].append(state.column[1])
            elif state.last_reported is not None:
                self._set_last(i, state.last_reported)
            state.column = (self, i)
        for old, new_at, old_at in moved.values():
            self._take_over(old, np.asarray(new_at, dtype=np.intp), np.asarray(old_at, dtype=np.intp))

    def __len__(self) -> int:
        return len(self.mids)

    # -- the batch ---------------------------------------------------------------------------
    def offer(self, batch: SampleColumns, stale: bool = False) -> int:
        """Decide for every item at once; keep what is reported as pending. Returns how many.
        *stale*: items were made or deleted since the group was built (only those that still exist report)."""
        rows = self.rows
        st = batch.status[rows]
        v = batch.values[rows]
        src = batch.source[rows]
        has_v = (st & _BAD) == 0
        both = has_v & self.last_has
        with np.errstate(invalid="ignore"):
            beyond = np.where(self.has_deadband, np.abs(v - self.last_value) > self.deadband, v != self.last_value)
        value_changed = np.where(both, beyond, has_v != self.last_has)
        trig = self.trigger
        changed = (st != self.last_status) | ((trig >= 1) & value_changed) | ((trig == 2) & (src != self.last_source)) | ~self.ever
        sizes = [m.queue_size for m in self.mdatas]
        if sizes.count(1) != len(sizes) and not self.resized:  # ModifyMonitoredItems changed a queue: the item leaves the group
            self.resized = True
            sampling.VERSION[0] += 1
        modes = [m.mode for m in self.mdatas]
        if _DISABLED in modes:
            changed &= np.fromiter((m != _DISABLED for m in modes), dtype=bool, count=len(modes))
        if stale:
            items = self.service._monitored_items
            changed &= np.fromiter((mid in items for mid in self.mids), dtype=bool, count=len(self.mids))
        rep = np.flatnonzero(changed)
        if not rep.size:
            return 0
        self.ever[rep] = True
        self.last_status[rep] = st[rep]
        self.last_value[rep] = v[rep]
        self.last_has[rep] = has_v[rep]
        self.last_source[rep] = src[rep]
        self._open_block()
        self.pending[rep] = True
        self.p_value[rep] = v[rep]
        self.p_status[rep] = st[rep]
        self.p_source[rep] = src[rep]
        self.p_server[rep] = batch.server[rows[rep]]
        queue = self.isub._triggered_datachanges
        if len(queue) > 1:  # an item's own notification queued by the per-item path: the newer one here replaces it
            pos, pending = self.pos, self.pending
            for mid in [k for k in queue if k > 0 and k in pos and pending[pos[k]]]:
                del queue[mid]
        return int(rep.size)

    def _open_block(self) -> None:
        queue = self.isub._triggered_datachanges
        block = self.block
        if block is not None and queue.get(self.key, (None,))[0] is block:
            return
        if block is not None:
            block.freeze()  # published meanwhile: its notifications are encoded before the next ones
        self.block = ColumnBlock.open(self)
        queue[self.key] = [self.block]

    def take(self, block: ColumnBlock) -> tuple[bytes, int]:
        """The encoded pending notifications of *block* (the group's current one); they are no longer pending."""
        if block is not self.block:
            return b"", 0
        self.block = None
        sel = np.flatnonzero(self.pending)
        self.pending[:] = False
        return encode_rows(self.handles[sel], self.p_value[sel], self.p_status[sel], self.p_source[sel], self.p_server[sel]), int(sel.size)

    # -- the per-item path on the same items -------------------------------------------------
    def last_datavalue(self, i: int) -> ua.DataValue | None:
        """Item *i*'s last reported value as the DataValue ``sampling.changed`` compares with."""
        if not self.ever[i]:
            return None
        variant = ua.Variant(float(self.last_value[i]), ua.VariantType.Double) if self.last_has[i] else ua.Variant(None, ua.VariantType.Null)
        return ua.DataValue(variant, StatusCode=ua.StatusCode(int(self.last_status[i])), SourceTimestamp=from_ticks(int(self.last_source[i])))

    def reported_elsewhere(self, i: int, value: ua.DataValue) -> None:
        """The per-item path reported *value* for item *i*: it is the last reported, and replaces any pending one."""
        self._set_last(i, value)
        self.pending[i] = False

    def _set_last(self, i: int, dv: ua.DataValue) -> None:
        variant = dv.Value.Value if dv.Value is not None else None
        self.ever[i] = True
        self.last_status[i] = dv.StatusCode.value if dv.StatusCode is not None else 0
        self.last_has[i] = isinstance(variant, int | float) and not isinstance(variant, bool)
        self.last_value[i] = float(variant) if self.last_has[i] else 0.0
        self.last_source[i] = ticks(dv.SourceTimestamp) if dv.SourceTimestamp is not None else -1

    def _take_over(self, old: ColumnGroup, new_at: np.ndarray, old_at: np.ndarray) -> None:
        """Items of *old* (at *old_at*) are this group's now (at *new_at*): their last reported
        values and pending notifications move here (the pending ones leave *old*'s block)."""
        for name in ("ever", "last_status", "last_value", "last_has", "last_source", "pending", "p_value", "p_status", "p_source", "p_server"):
            getattr(self, name)[new_at] = getattr(old, name)[old_at]
        old.pending[old_at] = False
        if self.pending.any():
            self._open_block()

    def release(self) -> None:
        """The group is rebuilt: the states of the items no other group took take back their last reported value."""
        for i, state in enumerate(self.states):
            if state.column is not None and state.column[0] is self:
                state.column = None
                state.last_reported = self.last_datavalue(i)
