"""The MQTT sink: a Sparkplug B edge node (or a plain JSON publisher) fed by the registry.

Two supervised tasks (``edge.core.tasks``), owned by the gateway's TaskGroup:

* ``mqtt:publish`` gathers the registry's changes every ``publish_interval_s``, applies report
  by exception (``edge.mqtt.catalog.ReportFilter``) and device link transitions (DDEATH/DBIRTH),
  and publishes NDATA/DDATA while the session is online, else appends them to the spool
  (``edge.mqtt.buffer``);
* ``mqtt:session`` (``edge.mqtt.session``) owns the connection: failover, the Will, STATE,
  commands; it asks this sink for the births (``birth``: NBIRTH, DBIRTHs, the spool sent
  historical by ``edge.mqtt.forward``, DDEATH for dead devices, then online) and hands it DCMDs
  (``command``).

Both tasks take ``_lock`` around everything that touches the spool or decides online/offline, so
a batch is either published live or spooled before the births, never stuck behind them. On
shutdown the session publishes NDEATH and disconnects; the changes not yet published go to the
spool and are sent, historical, after the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from drivers.sample import TagSample, TagValue
from edge.core.registry import TagRegistry
from edge.core.tasks import cancel_and_wait, start_supervised
from edge.mqtt import jsonfmt
from edge.mqtt.buffer import Spool, spool_path
from edge.mqtt.catalog import CONNECTED, Catalog, ReportFilter
from edge.mqtt.client import describe
from edge.mqtt.commands import device_command
from edge.mqtt.forward import Forwarder, Item
from edge.mqtt.payloads import EdgeNode, add_metric
from edge.mqtt.session import Session
from edge.mqtt.settings import MqttSection
from edge.mqtt.sparkplug import Payload
from edge.mqtt.stats import MqttStats

log = structlog.get_logger("edge.mqtt.sink")

WriteHandler = Callable[[str, TagValue], Awaitable[int]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class MqttSink:
    """Publish *registry* to MQTT as configured by *settings*. Use as ``async with``."""

    def __init__(
        self,
        settings: MqttSection,
        registry: TagRegistry,
        *,
        state_dir: Path,  # the MQTT state folder, <state_dir>/mqtt
        resolve: Callable[[str], Path] = Path,
        write: WriteHandler | None = None,
        deadbands: Mapping[str, float] | None = None,
        tasks: asyncio.TaskGroup | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.stats = MqttStats()
        for info in self.stats.infos():
            if info.key not in registry:
                registry.add(info)
        self.resolve = resolve
        self._write = write
        self._tasks = tasks
        self.filter = ReportFilter(deadbands)
        self.spool = Spool(spool_path(state_dir), max_bytes=int(settings.buffer_max_mb * 1e6), max_age_s=settings.buffer_max_age_s)
        self.forward = Forwarder(self.spool, settings, self.stats)
        self.catalog: Catalog | None = None
        self.node: EdgeNode | None = None
        self._pending: list[TagSample] = []
        self._inflight: list[Item] = []
        self._alive: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._online = False  # births done and spool drained: changes go out live
        self._task_list: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self.json = settings if settings.mode == "json" else None
        self.session = Session(self)
        self._publish = self.session.publish

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> MqttSink:
        await asyncio.to_thread(self.spool.open)
        self._unsubscribe = self.registry.subscribe(self._on_samples)
        self.stats.metrics_buffered = self.spool.metrics
        self._task_list = [
            start_supervised(self._publish_loop, name="mqtt:publish", tasks=self._tasks),
            start_supervised(self.session.run, name="mqtt:session", tasks=self._tasks),
        ]
        log.info("mqtt_started", brokers=self.settings.broker, mode=self.settings.mode, spooled=self.spool.metrics)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._task_list:
            await cancel_and_wait(task)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        try:
            # what was not published yet is sent, historical, after the next start
            self.ensure_catalog()
            items = self._inflight + self._select(self._take())
            self._inflight = []
            await asyncio.to_thread(self.forward.spool_items, items)
        finally:
            await asyncio.to_thread(self.spool.close)
        log.info("mqtt_stopped", published=self.stats.messages_published, spooled=self.spool.metrics, dropped=self.stats.metrics_dropped)

    def _on_samples(self, batch: Sequence[TagSample]) -> None:
        self._pending.extend(batch)

    def _take(self) -> list[TagSample]:
        batch, self._pending = self._pending, []
        return batch

    def ensure_catalog(self) -> Catalog:
        if self.catalog is None:
            self.catalog = Catalog(self.registry.infos())
            bd_seq = self.spool.get_meta("bdSeq", 255) if self.spool._db is not None else 255
            self.node = EdgeNode(self.catalog, self.settings.sparkplug_group, self.settings.sparkplug_node, bd_seq=bd_seq)
            for key, device in self.catalog.link_keys.items():
                self._alive[device] = self.registry.latest(key).value == CONNECTED
        return self.catalog

    # -- selection (pure apart from the filter) ----------------------------------------------------
    def _select(self, batch: Sequence[TagSample]) -> list[Item]:
        catalog = self.catalog
        assert catalog is not None
        out = []
        by_key = catalog.by_key
        for s in batch:
            d = by_key.get(s.tag)
            if d is None:
                continue
            report, changed = self.filter.report(s)
            if report:
                out.append((d, s, changed))
        return out

    # -- publishing --------------------------------------------------------------------------------
    async def _publish_loop(self) -> None:
        self.ensure_catalog()
        next_stats = 0.0
        while True:
            await asyncio.sleep(self.settings.publish_interval_s)
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + 1.0
                self.stats.metrics_buffered = self.spool.metrics
                self.registry.publish(self.stats.changed_samples())
            await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            items = self._select(self._take())
            if not items:
                return
            if not self._online:
                self._track_links(items)
                await asyncio.to_thread(self.forward.spool_items, items)
                return
            # until every message of the batch is acknowledged the whole batch counts as in flight:
            # after a failure (or a shutdown) it is spooled whole, so a part may go out twice (as
            # QoS 1 allows) but none is lost
            self._inflight = items
            try:
                await self._publish_items(items)
            except aiomqtt.MqttError as exc:
                self._go_offline(exc)
                await asyncio.to_thread(self.forward.spool_items, items)
            self._inflight = []

    def _track_links(self, items: Sequence[Item]) -> None:
        links = self.catalog.link_keys if self.catalog is not None else {}
        for d, s, _ in items:
            device = links.get(d.key)
            if device is not None:
                self._alive[device] = s.value == CONNECTED

    async def _publish_items(self, items: list[Item]) -> None:
        """Publish *items* in order, with DDEATH/DBIRTH at device link transitions."""
        assert self.catalog is not None
        links = self.catalog.link_keys
        runs: dict[str | None, list[Item]] = {}
        reborn: set[str] = set()
        for d, s, changed in items:
            device = links.get(d.key)
            if device is not None and self.json is None:
                alive = s.value == CONNECTED
                if alive != self._alive.get(device, True):
                    await self._send_runs(runs)
                    self._alive[device] = alive
                    if alive:
                        await self._dbirth(device)
                        reborn.add(device)
                    else:
                        await self._publish(*self.node.ddeath(device, _now_ms()))  # type: ignore[union-attr]
                        reborn.discard(device)
            if d.device is not None and (d.device in reborn or not self._alive.get(d.device, True)) and self.json is None:
                continue  # superseded by the DBIRTH just sent, or the device is dead
            runs.setdefault(d.device, []).append((d, s, changed))
        await self._send_runs(runs)

    async def _send_runs(self, runs: dict[str | None, list[Item]]) -> None:
        node = self.node
        assert node is not None
        limit = self.settings.max_metrics_per_message
        for device, run in list(runs.items()):
            for start in range(0, len(run), limit):
                chunk = run[start : start + limit]
                if self.json is not None:
                    for topic, payload in jsonfmt.messages(
                        self.json.json_topic, node.node, device, [(d, s) for d, s, _ in chunk], historical=False, now_ms=_now_ms()
                    ):
                        await self._publish(topic, payload, retain=self.json.json_retain, metrics=1 if "{metric}" in self.json.json_topic else len(chunk))
                else:
                    p = Payload()
                    for d, s, changed in chunk:
                        add_metric(p, d, s, with_quality=changed)
                    await self._publish(*node.data(device, p.metrics, _now_ms()), metrics=len(chunk))
            del runs[device]

    def _go_offline(self, exc: Exception) -> None:
        self._online = False
        self.stats.last_error = describe(exc)

    async def set_offline(self) -> None:
        """From now on changes go to the spool (the session ended or is about to)."""
        async with self._lock:
            self._online = False

    async def go_online(self) -> None:
        """Plain JSON mode: send the spool, then publish live."""
        async with self._lock:
            await self._drain()
            self._online = True
            self.stats.link_state = "online"

    async def birth(self) -> None:
        """NBIRTH, a DBIRTH per device, the spool (historical), DDEATH for dead devices; then online."""
        node, catalog = self.node, self.catalog
        assert node is not None and catalog is not None
        async with self._lock:
            self._online = False
            # changes gathered before the birth are older than its values: they go out historical
            items = self._select(self._take())
            self._track_links(items)
            await asyncio.to_thread(self.forward.spool_items, items)
            latest = self.registry.latest
            now = _now_ms()
            await self._publish(*node.nbirth([latest(d.key) for d in catalog.node_metrics], now))
            for device in catalog.devices:
                await self._dbirth(device, now)
            for key, device in catalog.link_keys.items():
                self._alive[device] = latest(key).value == CONNECTED
            await self._drain()
            for device, alive in self._alive.items():
                if not alive:
                    await self._publish(*node.ddeath(device, _now_ms()))
            self._online = True
            self.stats.link_state = "online"
        log.info("mqtt_birth", devices=len(catalog.devices), metrics=len(catalog.by_key), bd_seq=node.bd_seq)

    async def _dbirth(self, device: str, now: int | None = None) -> None:
        node, catalog = self.node, self.catalog
        assert node is not None and catalog is not None
        metrics = catalog.devices[device]
        latest = [self.registry.latest(d.key) for d in metrics]
        self.filter.reset(latest)
        await self._publish(*node.dbirth(device, latest, now or _now_ms()), metrics=len(metrics))

    async def _drain(self) -> None:
        assert self.node is not None and self.catalog is not None
        await self.forward.drain(self._publish, self.node, self.catalog)

    async def command(self, topic: str, device: str, payload: Any) -> None:
        """Carry out a DCMD (``edge.mqtt.commands``); republish the current value of each refused metric."""
        catalog, node = self.catalog, self.node
        assert catalog is not None and node is not None
        results = await device_command(
            payload, device, topic=topic, catalog=catalog, registry=self.registry, write=self._write, allow=self.settings.allow_commands
        )
        kept = [catalog.by_key[r.key] for r in results if r.status != 0 and r.key is not None]
        if kept and self._online and self._alive.get(device, True):
            # the tag keeps its value: tell the host so
            p = Payload()
            for d in kept:
                add_metric(p, d, self.registry.latest(d.key))
            async with self._lock:
                await self._publish(*node.data(device, p.metrics, _now_ms()), metrics=len(kept))


def deadbands_of(cfg: Any) -> dict[str, float]:
    """Each device tag's ``deadband`` (registry key -> deadband), for report by exception."""
    from edge.core.names import tag_key

    return {tag_key(d.name, t.name): float(getattr(t, "deadband", 0.0) or 0.0) for d in cfg.devices for t in d.tags}
