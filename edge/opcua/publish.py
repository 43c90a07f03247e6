"""Samples into the address space: the server's publish loop writes each batch through ``NodeWriter``.

Each registry key has its target nodes (the variable and any mirror of it, ``ModelBuilder.targets``)
and, for a tag with named states, the ValueAsText property to keep current
(``ModelBuilder.value_texts``). A sample a node cannot take (a string for a Double, an integer out of
range) leaves that node Bad with a null value and is logged once per tag as ``publish_failed``
(counted in ``failures``); the other tags keep flowing.

When the loop falls behind (``COALESCE_AFTER`` or more batches waiting behind the one it takes),
``next_batch`` takes them all at once and keeps the latest sample of each tag (for columnar batches,
``drivers.columns``: the latest batch of each key tuple, kept as columns): memory stays bounded
and clients get the newest values, at the cost of the superseded ones (counted in ``coalesced``,
logged once as ``publish_behind``), as a server sampling at its own pace would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from asyncua import ua
from asyncua.ua.ua_binary import variant_to_binary
from asyncua.ua.uaerrors import UaError

from drivers.columns import SampleColumns
from drivers.sample import Status, TagSample, is_bad
from edge.opcua.columnar import ColumnWriter
from edge.opcua.fastpath import write_value
from edge.opcua.values import to_datavalue

log = structlog.get_logger("edge.opcua.server")

SLICE_S = 0.01  # longest run of samples written before the event loop is given back
CHECK_EVERY = 64  # samples written between two looks at the clock
COALESCE_AFTER = 3  # batches waiting behind the one taken before they are merged (latest sample per tag)

Targets = Mapping[str, Sequence[tuple[ua.NodeId, ua.VariantType]]]
ValueTexts = Mapping[str, Sequence[tuple[ua.NodeId, dict[int, str]]]]


class NodeWriter:
    """Writes samples to their nodes in an asyncua address space (*targets* and *value_texts* are
    the model builder's maps, read at each batch, so nodes added or removed later are followed)."""

    def __init__(self, aspace: Any, targets: Targets, value_texts: ValueTexts) -> None:
        self.aspace = aspace
        self.targets = targets
        self.value_texts = value_texts
        self.failures = 0
        self.fast_writes = 0  # samples written by fastpath.write_value (the rest went through asyncua)
        self.coalesced = 0  # samples superseded by a newer one of their tag before they were written
        self._failed_tags: set[str] = set()  # tags whose publish failure is logged already
        self.columns = ColumnWriter()  # batches that come as columns (edge.opcua.columnar)
        self._keysets: dict[int, tuple[tuple[str, ...], frozenset[str]]] = {}  # id(key tuple) -> (it, its keys as a set)

    async def next_batch(self, queue: asyncio.Queue[Sequence[TagSample]]) -> tuple[list[Sequence[TagSample]], int]:
        """The next batches to write from *queue*, in order, and how many queue items they took
        (each needs a ``task_done``); see the module docstring. Merged batches keep columnar ones as
        columns (the latest batch of each key tuple), then the latest sample of each other tag."""
        batch = await queue.get()
        if queue.qsize() < COALESCE_AFTER:
            return [batch], 1
        batches = [batch]
        while not queue.empty():
            batches.append(queue.get_nowait())
        merged = self._merge(batches)
        dropped = sum(map(len, batches)) - sum(map(len, merged))
        if dropped and not self.coalesced:
            log.warning("publish_behind", batches=len(batches), superseded=dropped, hint="the server publishes the latest value of each tag")
        self.coalesced += dropped
        return merged, len(batches)

    def _merge(self, batches: list[Sequence[TagSample]]) -> list[Sequence[TagSample]]:
        last: dict[int, int] = {}  # id(key tuple) -> position of its latest columnar batch
        for i, b in enumerate(batches):
            if type(b) is SampleColumns:
                last[id(b.keys)] = i
        if not last:
            return [latest_per_tag(batches)]
        kept: list[Sequence[TagSample]] = [batches[i] for i in sorted(last.values())]
        keysets = {i: self._keyset(batches[i]) for i in last.values()}  # type: ignore[arg-type]
        rows: list[Sequence[TagSample]] = []
        for i, b in enumerate(batches):
            if type(b) is SampleColumns:
                continue
            later = [keys for j, keys in keysets.items() if j > i]  # a later columnar batch of a tag supersedes its sample here
            rows.append([s for s in b if not any(s.tag in keys for keys in later)] if later else b)
        merged_rows = latest_per_tag(rows)
        return [*kept, merged_rows] if merged_rows else kept

    def _keyset(self, batch: SampleColumns) -> frozenset[str]:
        cached = self._keysets.get(id(batch.keys))
        if cached is None or cached[0] is not batch.keys:
            cached = self._keysets[id(batch.keys)] = (batch.keys, frozenset(batch.keys))
        return cached[1]

    async def write_batch(self, batch: Sequence[TagSample]) -> None:
        """Write *batch* to the nodes: each sample in one synchronous step where it can
        (``fastpath.write_value``), through asyncua's write otherwise; the loop is given back once
        ``SLICE_S`` has passed (looked at every ``CHECK_EVERY`` samples), so a large batch does not
        hold it, however much each sample costs."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if type(batch) is SampleColumns:
            await self.columns.write(self, batch, now)
            return
        targets, value_texts, aspace = self.targets, self.value_texts, self.aspace
        for i, sample in enumerate(batch, 1):
            for nid, vtype in targets.get(sample.tag, ()):
                done = write_value(aspace, nid, vtype, sample, now)
                if done is None:
                    await self.write_sample(nid, vtype, sample)
                    continue
                self.fast_writes += 1
                dv, pending = done
                for callback in pending:
                    try:
                        await callback(dv)
                    except Exception:  # as asyncua's write_attribute_value: one item's failure does not stop the others
                        log.exception("datachange_callback_failed", tag=sample.tag)
            for text_nid, states in value_texts.get(sample.tag, ()):
                await self.write_value_text(text_nid, states, sample)
            if i % CHECK_EVERY == 0 and loop.time() - now >= SLICE_S and i < len(batch):
                await asyncio.sleep(0)
                now = loop.time()

    async def write_sample(self, nid: ua.NodeId, vtype: ua.VariantType, sample: TagSample) -> None:
        """Write one sample to one node; one the node cannot take leaves it Bad with a null value."""
        try:
            dv = encodable_datavalue(sample, vtype)
        except (TypeError, ValueError, OverflowError, UaError) as exc:
            self._failed(sample, str(exc) or type(exc).__name__)
            await self.aspace.write_attribute_value(nid, ua.AttributeIds.Value, bad_datavalue(sample, Status.BadTypeMismatch))
            return
        try:
            result = await self.aspace.write_attribute_value(nid, ua.AttributeIds.Value, dv)
        except Exception as exc:
            self._failed(sample, repr(exc))
            result = ua.StatusCode(Status.BadInternalError)
        if not result.is_good():
            self._failed(sample, result.name)
            status = result.value if result.is_bad() else Status.BadInternalError
            await self.aspace.write_attribute_value(nid, ua.AttributeIds.Value, bad_datavalue(sample, status))

    async def write_value_text(self, nid: ua.NodeId, states: dict[int, str], sample: TagSample) -> None:
        """ValueAsText of a state variable: the name of its code (the code itself when it has
        none), with the sample's status and timestamps; null when Bad."""
        value = sample.value
        if value is None or is_bad(sample.status):
            variant = ua.Variant(None, ua.VariantType.Null)
        else:
            variant = ua.Variant(ua.LocalizedText(states.get(value, str(value)) if isinstance(value, int) else str(value)), ua.VariantType.LocalizedText)
        dv = ua.DataValue(variant, StatusCode=ua.StatusCode(sample.status), SourceTimestamp=sample.source_time, ServerTimestamp=sample.server_time)
        await self.aspace.write_attribute_value(nid, ua.AttributeIds.Value, dv)

    def forget(self, keys: Sequence[str]) -> None:
        """Tags whose nodes are gone (a reload): a later failure of a new node of that name is logged again."""
        self._failed_tags.difference_update(keys)
        self.columns.forget()

    def _failed(self, sample: TagSample, error: str) -> None:
        self.failures += 1
        if sample.tag not in self._failed_tags:
            self._failed_tags.add(sample.tag)
            log.error("publish_failed", tag=sample.tag, value=repr(sample.value)[:200], error=error)


def encodable_datavalue(sample: TagSample, vtype: ua.VariantType) -> ua.DataValue:
    """``to_datavalue``, refused when *vtype* cannot carry the value: asyncua would store it and
    then fail to encode it for every client that reads or subscribes to the node."""
    dv = to_datavalue(sample, vtype)
    variant_to_binary(dv.Value)
    return dv


def bad_datavalue(sample: TagSample, status: int) -> ua.DataValue:
    return ua.DataValue(
        Value=ua.Variant(None, ua.VariantType.Null),
        StatusCode=ua.StatusCode(status),
        SourceTimestamp=sample.source_time,
        ServerTimestamp=sample.server_time,
    )


def latest_per_tag(batches: Sequence[Sequence[TagSample]]) -> list[TagSample]:
    """The samples of *batches* (oldest first), keeping only the newest of each tag, in the
    order each tag first appeared. Pure."""
    latest: dict[str, TagSample] = {}
    for batch in batches:
        for sample in batch:
            latest[sample.tag] = sample
    return list(latest.values())
