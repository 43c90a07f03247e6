"""Store and forward between the sink and its spool: what goes into a spool row, and how the spool
is sent after a reconnect (``edge.mqtt.buffer`` is the storage itself).

``spool_items`` (called from a worker thread) stores reported items as one row per device run.
``drain`` sends the spool oldest first: rows are read in blocks; consecutive rows of one device
are merged into messages of up to ``max_metrics_per_message`` metrics flagged historical (Sparkplug)
or ``"historical": true`` (JSON); the block's messages are published together (QoS 1 pipelined, in
order) and its rows deleted in one transaction once every message was acknowledged. A failure
leaves the block in the spool, to be sent again by the next session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from drivers.sample import TagSample
from edge.mqtt import jsonfmt
from edge.mqtt.buffer import Spool
from edge.mqtt.catalog import Catalog, MetricDef
from edge.mqtt.payloads import EdgeNode, stored_payload, stored_samples, to_ms_now
from edge.mqtt.settings import MqttSection
from edge.mqtt.stats import MqttStats

log = structlog.get_logger("edge.mqtt.forward")

Item = tuple[MetricDef, TagSample, bool]  # (metric, sample, status changed)
Publish = Callable[..., Awaitable[None]]  # publish(topic, payload, *, retain=..., metrics=...)
DRAIN_ROWS = 200


class Forwarder:
    """The sink's spool with its counters (``stats.metrics_buffered`` and ``metrics_dropped``)."""

    def __init__(self, spool: Spool, settings: MqttSection, stats: MqttStats) -> None:
        self.spool = spool
        self.settings = settings
        self.stats = stats
        self._overflowing = False

    def spool_items(self, items: Sequence[Item]) -> None:
        """Append *items* to the spool, one row per device run (runs in the items' order). Blocking."""
        if not items:
            return
        limit = self.settings.max_metrics_per_message
        rows: list[tuple[int, bytes]] = []
        run: list[Item] = []
        device: str | None = items[0][0].device
        for item in items:
            if item[0].device != device or len(run) >= limit:
                rows.append((len(run), stored_payload(device, run)))
                run, device = [], item[0].device
            run.append(item)
        rows.append((len(run), stored_payload(device, run)))
        self.count_drops(self.spool.append(rows))

    def count_drops(self, dropped: int) -> None:
        """Count metrics the spool's bounds dropped; log the first drop of an overflow episode."""
        self.stats.metrics_buffered = self.spool.metrics
        if dropped:
            self.stats.metrics_dropped += dropped
            if not self._overflowing:
                self._overflowing = True
                s = self.settings
                log.error("mqtt_spool_overflow", dropped=dropped, max_mb=s.buffer_max_mb, max_age_s=s.buffer_max_age_s)
        elif self.spool.metrics == 0:
            self._overflowing = False

    async def drain(self, publish: Publish, node: EdgeNode, catalog: Catalog) -> int:
        """Send the whole spool (see the module docstring); return the metrics sent."""
        sent = 0
        while True:
            rows = await asyncio.to_thread(self.spool.head, DRAIN_ROWS)
            if not rows:
                break
            sends, unknown = self._messages(rows, publish, node, catalog)
            results = await asyncio.gather(*sends, return_exceptions=True)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
            await asyncio.to_thread(self.spool.delete_rows, rows)
            self.stats.metrics_dropped += unknown  # metrics the current config no longer has
            sent += sum(r[1] for r in rows)
            self.stats.metrics_buffered = self.spool.metrics
        if sent:
            log.info("mqtt_spool_sent", metrics=sent)
        self.count_drops(0)
        return sent

    def _messages(self, rows: Sequence[tuple[int, int, bytes]], publish: Publish, node: EdgeNode, catalog: Catalog) -> tuple[list[Awaitable[None]], int]:
        """The publishes of one block of rows (not started yet), and the count of unknown metrics."""
        s = self.settings
        sends: list[Awaitable[None]] = []
        unknown_total = 0
        if s.mode == "json":
            per_tag = "{metric}" in s.json_topic
            for _, _, stored in rows:
                pairs, unknown = stored_samples(catalog, stored)
                unknown_total += unknown
                device = pairs[0][0].device if pairs else None
                for topic, payload in jsonfmt.messages(s.json_topic, node.node, device, pairs, historical=True, now_ms=to_ms_now()):
                    sends.append(publish(topic, payload, retain=s.json_retain, metrics=1 if per_tag else len(pairs)))
            return sends, unknown_total
        device: str | None = None
        batch: list[Any] = []
        for _, _, stored in rows:
            metrics, unknown = node.for_session(stored)
            unknown_total += unknown
            if not metrics:
                continue
            d = catalog.by_alias[metrics[0].alias].device
            if batch and (d != device or len(batch) + len(metrics) > s.max_metrics_per_message):
                sends.append(publish(*node.data(device, batch, to_ms_now()), metrics=len(batch)))
                batch = []
            device = d
            batch.extend(metrics)
        if batch:
            sends.append(publish(*node.data(device, batch, to_ms_now()), metrics=len(batch)))
        return sends, unknown_total
