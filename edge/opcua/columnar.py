"""A columnar batch (``drivers.columns.SampleColumns``) into the address space and its monitored items.

The per-sample fast path (``fastpath.write_value``) builds a DataValue per node and hands it to each
monitored item in turn: some 20 µs of Python per value. For a batch that comes as columns,
``ColumnWriter.write`` does the work per batch instead:

* **Node values on demand.** Each Double node of the batch's tags holds a ``ColumnValue`` as its
  Value attribute (same fields as asyncua's ``AttributeValue``): a reference to the key tuple's
  ``Cursor`` (the latest batch) and the node's row. A batch moves the cursor, one assignment for
  all nodes; the DataValue is built when something reads the attribute (a Read, a new monitored
  item, asyncua's own paths) and kept for that batch. A write to the node (a client's write, a
  sample published alone) is the node's own value until the next batch (``Cursor.gen`` orders them).
* **Monitored items as arrays.** The items that need no per-item work (``column_items.eligible``)
  are grouped per subscription (``ColumnGroup``): trigger, deadband (absolute and percent) and
  queue are decided for the whole batch with NumPy, and the notifications are encoded in one call
  at publish time. Every other item on those nodes (a sampling interval slower than the source, a
  queue longer than 1, an internal subscription) gets the node's DataValue through
  ``sampling.feed``, as on the per-sample path.
* **Everything else per sample.** A tag with several nodes of which one cannot hold a Double, a
  tag with a ValueAsText, a node with a value callback or setter: those rows go through
  ``NodeWriter.write_batch`` as ``TagSample``s.

The plan (which rows are columnar, the groups) is built per key tuple, and built again when tags
are removed (``NodeWriter.forget``) or monitored items are made or deleted (``sampling.VERSION``);
the groups at most every ``REBUILD_MIN_S`` (and five times as long as a rebuild took), so a client
subscribing to 50,000 items 1,000 at a time does not rebuild them 50 times. Meanwhile a new item
takes each batch through the per-item path (``sampling.RECENT``), and a deleted item gets nothing
more (``ColumnGroup.offer`` checks the items still exist).
Status travels as on the other paths: a Bad row is a null value with its status code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from asyncua import ua

from drivers.columns import SampleColumns, from_ticks
from edge.opcua import asyncua_patches, sampling
from edge.opcua.column_items import ColumnGroup, eligible
from edge.opcua.fastpath import _null_of_type, datavalue
from edge.opcua.wire import encode_datavalue

if TYPE_CHECKING:
    from edge.opcua.publish import NodeWriter

__all__ = ["ColumnValue", "ColumnWriter", "Cursor"]

_DOUBLE = ua.VariantType.Double
_VALUE = ua.AttributeIds.Value
log = structlog.get_logger("edge.opcua.server")
REBUILD_MIN_S = 0.5  # monitored items made or deleted: the groups are rebuilt at most this often,
REBUILD_FACTOR = 5.0  # and at most a fifth of the CPU goes to rebuilding them while a client subscribes
_GEN = [0]  # orders batches (Cursor.gen) and a node's own writes (ColumnValue._own_gen)


class Cursor:
    """The latest batch of one key tuple."""

    __slots__ = ("batch", "gen")

    def __init__(self) -> None:
        self.batch: SampleColumns | None = None
        self.gen = -1


class ColumnValue:
    """The Value attribute of a columnar node, as asyncua's ``AttributeValue`` (same fields)."""

    __slots__ = ("_built", "_built_for", "_own", "_own_gen", "cursor", "datachange_callbacks", "row", "value_callback", "value_setter")

    def __init__(self, cursor: Cursor, row: int, current: ua.DataValue | None, callbacks: dict[int, Any]) -> None:
        self.cursor = cursor
        self.row = row
        self._own = current
        self._own_gen = _GEN[0]
        self._built: ua.DataValue | None = None
        self._built_for: SampleColumns | None = None
        self.value_callback: Any = None
        self.value_setter: Any = None
        self.datachange_callbacks = callbacks

    @property
    def value(self) -> ua.DataValue | None:
        cursor = self.cursor
        batch = cursor.batch
        if batch is None or self._own_gen >= cursor.gen:
            return self._own
        if self._built_for is not batch:
            row = self.row
            when = from_ticks(int(batch.source[row]))
            server = when if batch.server[row] == batch.source[row] else from_ticks(int(batch.server[row]))
            self._built = datavalue(float(batch.values[row]), _DOUBLE, int(batch.status[row]), when, server)
            self._built_for = batch
        return self._built

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._own, self._own_gen = value, _GEN[0]

    def __repr__(self) -> str:
        return f"AttributeValue({self.value})"


@dataclass(slots=True)
class _Nodes:
    values: list[tuple[int, ColumnValue]] = field(default_factory=list)  # (row, the Value of a columnar node)
    rows: list[int] = field(default_factory=list)  # rows written per sample (NodeWriter)
    recent_from: int = 0  # sampling.RECENT[aspace][recent_from:]: items made since the groups were built
    rebuild_after: float = 0.0  # loop time before which a change of monitored items waits for the next rebuild


@dataclass(slots=True)
class _Plan:
    version: tuple[int, int]
    cursor: Cursor
    nodes: int  # columnar nodes
    nodes_plan: _Nodes
    groups: list[ColumnGroup] = field(default_factory=list)
    items: list[tuple[int, Any, int, Any]] = field(default_factory=list)  # per-item: (row, ColumnValue, handle, callback)
    rows: list[int] = field(default_factory=list)  # rows written per sample (NodeWriter)
    recent_from: int = 0  # sampling.RECENT[aspace][recent_from:]: items made since the groups were built
    rebuild_after: float = 0.0  # loop time before which a change of monitored items waits for the next rebuild


class ColumnWriter:
    """Writes columnar batches for one ``NodeWriter`` (its address space and target maps)."""

    def __init__(self) -> None:
        asyncua_patches.check_columnar()
        self._plans: dict[int, tuple[tuple[str, ...], _Plan]] = {}  # id(key tuple) -> (the tuple, its plan)
        self._cursors: dict[int, Cursor] = {}
        self.forgotten = 0  # bumped by NodeWriter.forget: plans are rebuilt
        self.notifications = 0  # notifications decided by the groups

    async def write(self, writer: NodeWriter, batch: SampleColumns, now: float) -> None:
        plan = self._plan(writer, batch, now)
        _GEN[0] += 1
        plan.cursor.batch, plan.cursor.gen = batch, _GEN[0]
        writer.fast_writes += plan.nodes
        stale = plan.version[0] != sampling.VERSION[0]  # items made or deleted since the groups were built
        for group in plan.groups:
            self.notifications += group.offer(batch, stale)
        if stale:
            self._feed_recent(writer, plan, now)
        built: dict[int, tuple[ua.DataValue, bytes]] = {}
        policy = sampling.POLICY[0] if sampling.POLICY else None
        for row, attval, handle, callback in plan.items:
            got = built.get(row)
            if got is None:
                dv = attval.value
                got = built[row] = (dv, encode_datavalue(dv))
            if policy is not None and getattr(callback, "__func__", None) is policy and sampling.feed(callback.__self__, handle, got[0], got[1], now):
                continue
            try:
                await callback(handle, got[0])
            except Exception:  # as asyncua's write_attribute_value: one item's failure does not stop the others
                log.exception("datachange_callback_failed", tag=batch.keys[row])
        if plan.rows:
            await writer.write_batch([batch[i] for i in plan.rows])

    def _feed_recent(self, writer: NodeWriter, plan: _Plan, now: float) -> None:
        """Items made since the groups were built, on this plan's nodes: each value through the per-item path."""
        recent = sampling.RECENT.get(writer.aspace, ())
        for service, mid, mdata, nodeid in recent[plan.recent_from :]:
            node = writer.aspace.get(nodeid)
            attval = node.attributes.get(_VALUE) if node is not None else None
            state = getattr(mdata, "edgetwin", None)
            if type(attval) is not ColumnValue or attval.cursor is not plan.cursor or state is None or mid not in service._monitored_items:
                continue
            dv = attval.value
            if dv is not None and service.isub.data.RevisedPublishingInterval > 0:
                sampling._offer(service, mid, mdata, state, dv, encode_datavalue(dv), now)

    def _plan(self, writer: NodeWriter, batch: SampleColumns, now: float) -> _Plan:
        keys = batch.keys
        version = (sampling.VERSION[0], self.forgotten)
        known = self._plans.get(id(keys))
        if known is not None and known[0] is keys:
            old = known[1]
            if old.version == version:
                return old
            if old.version[1] == self.forgotten and now < old.rebuild_after:
                return old  # items come and go (a client subscribing 1,000 at a time): the groups are rebuilt at most this often
        started = time.process_time()
        recent = sampling.RECENT.setdefault(writer.aspace, [])
        if all(p.recent_from == len(recent) for k, p in self._plans.values() if k is not keys):
            recent.clear()  # every plan includes them now (this one once built)
            for _, other in self._plans.values():
                other.recent_from = 0
        cursor = self._cursors.setdefault(id(keys), Cursor())
        if known is not None and known[0] is keys and known[1].version[1] == self.forgotten:
            plan = self._items(known[1].nodes_plan, cursor, version)  # only monitored items changed: the nodes stay
        else:
            plan = self._items(self._nodes(writer, keys, cursor), cursor, version)
        if known is not None:
            for group in known[1].groups:
                group.release()  # after the new groups took over their items
        plan.recent_from = len(recent)
        plan.rebuild_after = now + max(REBUILD_MIN_S, REBUILD_FACTOR * (time.process_time() - started))
        self._plans[id(keys)] = (keys, plan)
        return plan

    def _nodes(self, writer: NodeWriter, keys: tuple[str, ...], cursor: Cursor) -> _Nodes:
        """Which rows are columnar (their nodes now hold a ColumnValue) and which go per sample."""
        nodes = _Nodes()
        aspace, targets, value_texts = writer.aspace, writer.targets, writer.value_texts
        for row, key in enumerate(keys):
            wanted = targets.get(key, ())
            found = [aspace.get(nid) for nid, vtype in wanted if vtype is _DOUBLE]
            if not found or len(found) != len(wanted) or key in value_texts or not all(_columnar(node) for node in found):
                nodes.rows.append(row)
                continue
            for node in found:
                attval = node.attributes[_VALUE]
                if type(attval) is not ColumnValue or attval.cursor is not cursor:
                    current = attval.value
                    attval = node.attributes[_VALUE] = ColumnValue(cursor, row, current, attval.datachange_callbacks)
                attval.row = row
                nodes.values.append((row, attval))
        return nodes

    def _items(self, nodes: _Nodes, cursor: Cursor, version: tuple[int, int]) -> _Plan:
        """The monitored items of the columnar nodes: in groups where ``eligible``, per item otherwise."""
        plan = _Plan(version, cursor, len(nodes.values), nodes, rows=nodes.rows)
        per_service: dict[int, tuple[Any, list[tuple[int, Any, int]]]] = {}
        policy = sampling.POLICY[0] if sampling.POLICY else None
        for row, attval in nodes.values:
            for handle, callback in attval.datachange_callbacks.items():
                service = getattr(callback, "__self__", None)
                mid = service._monitored_datachange.get(handle) if service is not None else None
                mdata = service._monitored_items.get(mid) if mid is not None else None
                if policy is not None and getattr(callback, "__func__", None) is policy and mdata is not None and eligible(service, mdata):
                    per_service.setdefault(id(service), (service, []))[1].append((mid, mdata, row))
                else:
                    plan.items.append((row, attval, handle, callback))
        plan.groups = [ColumnGroup(service, items) for service, items in per_service.values()]
        return plan

    def forget(self) -> None:
        self.forgotten += 1


def _columnar(node: Any) -> bool:
    """A node whose Value can be a ColumnValue: no callback or setter, holding a Double (or a null
    value of a node whose DataType is Double)."""
    if node is None:
        return False
    attval = node.attributes.get(_VALUE)
    if attval is None or attval.value_setter is not None or attval.value_callback is not None:
        return False
    if type(attval) is ColumnValue:
        return True
    dv = attval.value
    if dv is None or dv.Value is None:
        return False
    return dv.Value.VariantType is _DOUBLE or _null_of_type(node, dv.Value, _DOUBLE)
