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

The plan (which rows are columnar, the groups) is built per key tuple, and built again when a
monitored item is made or deleted (``sampling.VERSION``) or tags are removed (``NodeWriter.forget``).
Status travels as on the other paths: a Bad row is a null value with its status code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from asyncua import ua

from drivers.columns import SampleColumns, from_ticks
from edge.opcua import sampling
from edge.opcua.column_items import ColumnGroup, eligible
from edge.opcua.fastpath import _null_of_type, datavalue
from edge.opcua.wire import encode_datavalue

if TYPE_CHECKING:
    from edge.opcua.publish import NodeWriter

__all__ = ["ColumnValue", "ColumnWriter", "Cursor"]

_DOUBLE = ua.VariantType.Double
_VALUE = ua.AttributeIds.Value
log = structlog.get_logger("edge.opcua.server")
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
class _Plan:
    version: tuple[int, int]
    cursor: Cursor
    nodes: int  # columnar nodes
    groups: list[ColumnGroup] = field(default_factory=list)
    items: list[tuple[int, Any, int, Any]] = field(default_factory=list)  # per-item: (row, ColumnValue, handle, callback)
    rows: list[int] = field(default_factory=list)  # rows written per sample (NodeWriter)


class ColumnWriter:
    """Writes columnar batches for one ``NodeWriter`` (its address space and target maps)."""

    def __init__(self) -> None:
        self._plans: dict[int, tuple[tuple[str, ...], _Plan]] = {}  # id(key tuple) -> (the tuple, its plan)
        self._cursors: dict[int, Cursor] = {}
        self.forgotten = 0  # bumped by NodeWriter.forget: plans are rebuilt
        self.notifications = 0  # notifications decided by the groups

    async def write(self, writer: NodeWriter, batch: SampleColumns, now: float) -> None:
        plan = self._plan(writer, batch)
        _GEN[0] += 1
        plan.cursor.batch, plan.cursor.gen = batch, _GEN[0]
        writer.fast_writes += plan.nodes
        for group in plan.groups:
            self.notifications += group.offer(batch)
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

    def _plan(self, writer: NodeWriter, batch: SampleColumns) -> _Plan:
        keys = batch.keys
        version = (sampling.VERSION[0], self.forgotten)
        known = self._plans.get(id(keys))
        if known is not None and known[0] is keys and known[1].version == version:
            return known[1]
        if known is not None:
            for group in known[1].groups:
                group.release()
        cursor = self._cursors.setdefault(id(keys), Cursor())
        plan = self._build(writer, keys, cursor, version)
        self._plans[id(keys)] = (keys, plan)
        return plan

    def _build(self, writer: NodeWriter, keys: tuple[str, ...], cursor: Cursor, version: tuple[int, int]) -> _Plan:
        plan = _Plan(version, cursor, 0)
        aspace, targets, value_texts = writer.aspace, writer.targets, writer.value_texts
        per_service: dict[int, tuple[Any, list[tuple[int, Any, int]]]] = {}
        policy = sampling.POLICY[0] if sampling.POLICY else None
        for row, key in enumerate(keys):
            nodes = [(nid, aspace.get(nid)) for nid, vtype in targets.get(key, ()) if vtype is _DOUBLE]
            if not nodes or len(nodes) != len(targets.get(key, ())) or key in value_texts or not all(_columnar(node) for _, node in nodes):
                plan.rows.append(row)
                continue
            for _, node in nodes:
                attval = node.attributes[_VALUE]
                if type(attval) is not ColumnValue or attval.cursor is not cursor:
                    current = attval.value
                    attval = node.attributes[_VALUE] = ColumnValue(cursor, row, current, attval.datachange_callbacks)
                attval.row = row
                plan.nodes += 1
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
