"""The MQTT sink: a Sparkplug B edge node (or a plain JSON publisher) fed by the registry.

Two supervised tasks (``edge.core.tasks``), owned by the gateway's TaskGroup:

* ``mqtt:publish`` gathers the registry's changes every ``publish_interval_s``, applies report
  by exception (``edge.mqtt.catalog.ReportFilter``) and device link transitions (DDEATH/DBIRTH),
  and publishes NDATA/DDATA while the session is online, else appends them to the spool
  (``edge.mqtt.buffer``);
* ``mqtt:session`` owns the connection: it tries the brokers in order (failover), registers the
  NDEATH as the Will, waits for the primary host application's STATE when one is configured,
  publishes the births, sends the spool oldest first flagged historical, then goes online and
  serves NCMD (rebirth) and DCMD (writes, ``edge.mqtt.commands``). An outage is logged once
  (``mqtt_unreachable``, or ``mqtt_connect_refused`` for a refused login) and counted in
  ``MqttStats``; reconnection backs off like the devices do.

Both tasks take ``_lock`` around everything that touches the spool or decides online/offline, so
a batch is either published live or spooled before the births, never stuck behind them. On
shutdown the session publishes NDEATH and disconnects; the changes not yet published go to the
spool and are sent, historical, after the next start.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from drivers.sample import TagSample, TagValue
from edge.core.backoff import Backoff
from edge.core.registry import TagRegistry
from edge.core.tasks import cancel_and_wait, start_supervised
from edge.mqtt import jsonfmt, topics
from edge.mqtt.buffer import Spool, spool_path
from edge.mqtt.catalog import CONNECTED, Catalog, MetricDef, ReportFilter
from edge.mqtt.commands import decode, device_command, wants_rebirth
from edge.mqtt.payloads import EdgeNode, add_metric, stored_payload, stored_samples
from edge.mqtt.settings import MqttSection, parse_broker
from edge.mqtt.sparkplug import Payload
from edge.mqtt.stats import MqttStats

log = structlog.get_logger("edge.mqtt.sink")

WriteHandler = Callable[[str, TagValue], Awaitable[int]]
Item = tuple[MetricDef, TagSample, bool]  # (metric, sample, status changed)
_REFUSED = {4: "bad user name or password", 5: "not authorized"}
DRAIN_ROWS = 200


class PrimaryHostOffline(Exception):
    """The primary host application went offline: NDEATH, disconnect, wait for it again."""


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
        self._resolve = resolve
        self._write = write
        self._tasks = tasks
        self.filter = ReportFilter(deadbands)
        self.spool = Spool(spool_path(state_dir), max_bytes=int(settings.buffer_max_mb * 1e6), max_age_s=settings.buffer_max_age_s)
        self.catalog: Catalog | None = None
        self.node: EdgeNode | None = None
        self._pending: list[TagSample] = []
        self._inflight: list[Item] = []
        self._alive: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._online = False  # births done and spool drained: changes go out live
        self._born = False
        self._client: aiomqtt.Client | None = None
        self._link_lost: asyncio.Future[None] | None = None  # done when the current session's link is gone
        self._task_list: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._overflowing = False
        self._host_ts = -1
        self._sessions = 0  # sessions that connected
        self._bd_seq_used = True  # the stored bdSeq belonged to a session (of this or the last run)
        self.json = settings if settings.mode == "json" else None

    # -- lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> MqttSink:
        await asyncio.to_thread(self.spool.open)
        self._unsubscribe = self.registry.subscribe(self._on_samples)
        self.stats.metrics_buffered = self.spool.metrics
        self._task_list = [
            start_supervised(self._publish_loop, name="mqtt:publish", tasks=self._tasks),
            start_supervised(self._session_loop, name="mqtt:session", tasks=self._tasks),
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
            self._ensure_catalog()
            items = self._inflight + self._select(self._take())
            self._inflight = []
            await asyncio.to_thread(self._spool_items, items)
        finally:
            await asyncio.to_thread(self.spool.close)
        log.info("mqtt_stopped", published=self.stats.messages_published, spooled=self.spool.metrics, dropped=self.stats.metrics_dropped)

    def _on_samples(self, batch: Sequence[TagSample]) -> None:
        self._pending.extend(batch)

    def _take(self) -> list[TagSample]:
        batch, self._pending = self._pending, []
        return batch

    def _ensure_catalog(self) -> Catalog:
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
        self._ensure_catalog()
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
                await asyncio.to_thread(self._spool_items, items)
                return
            # until every message of the batch is acknowledged the whole batch counts as in flight:
            # after a failure (or a shutdown) it is spooled whole, so a part may go out twice (as
            # QoS 1 allows) but none is lost
            self._inflight = items
            try:
                await self._publish_items(items)
            except aiomqtt.MqttError as exc:
                self._go_offline(exc)
                await asyncio.to_thread(self._spool_items, items)
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

    async def _publish(self, topic: str, payload: bytes, *, retain: bool = False, metrics: int = 0, qos: int | None = None) -> None:
        """Publish one message; with QoS 1 return once the broker acknowledged it. A lost link ends
        the wait at once (aiomqtt would wait for the acknowledgement until its timeout)."""
        client, lost = self._client, self._link_lost
        if client is None or lost is None or lost.done():
            raise aiomqtt.MqttError("not connected")
        pub = asyncio.ensure_future(client.publish(topic, payload, qos=self.settings.qos if qos is None else qos, retain=retain))
        try:
            await asyncio.wait((pub, lost), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pub.cancel()
            raise
        if not pub.done():
            pub.cancel()
            raise aiomqtt.MqttError("connection lost before the broker acknowledged a message")
        pub.result()
        self.stats.messages_published += 1
        self.stats.metrics_published += metrics

    def _spool_items(self, items: Sequence[Item]) -> None:
        """Append *items* to the spool, one row per device run (runs in the items' order)."""
        if not items:
            return
        rows: list[tuple[int, bytes]] = []
        run: list[Item] = []
        device: str | None = items[0][0].device
        for item in items:
            if item[0].device != device or len(run) >= self.settings.max_metrics_per_message:
                rows.append((len(run), stored_payload(device, run)))
                run, device = [], item[0].device
            run.append(item)
        rows.append((len(run), stored_payload(device, run)))
        dropped = self.spool.append(rows)
        self._count_drops(dropped)

    def _count_drops(self, dropped: int) -> None:
        self.stats.metrics_buffered = self.spool.metrics
        if dropped:
            self.stats.metrics_dropped += dropped
            if not self._overflowing:
                self._overflowing = True
                log.error("mqtt_spool_overflow", dropped=dropped, max_mb=self.settings.buffer_max_mb, max_age_s=self.settings.buffer_max_age_s)
        elif self.spool.metrics == 0:
            self._overflowing = False

    # -- session -----------------------------------------------------------------------------------
    async def _session_loop(self) -> None:
        self._ensure_catalog()
        backoff = Backoff(0.5, self.settings.reconnect_max_s)
        brokers = self.settings.broker
        attempt = 0
        down_since: float | None = None  # start of the current outage (logged once)
        while True:
            url = brokers[attempt % len(brokers)]
            self.stats.broker = url
            self.stats.link_state = "connecting"
            sessions_before = self._sessions
            try:
                await self._session(url, down_since=down_since)
            except PrimaryHostOffline:
                log.warning("mqtt_primary_host_offline", host=self.settings.primary_host, broker=url)
            except (aiomqtt.MqttError, OSError, ssl.SSLError, ValueError) as exc:
                self.stats.last_error = _describe(exc)
                if self._sessions != sessions_before:
                    log.warning("mqtt_disconnected", broker=url, error=self.stats.last_error)
                elif down_since is None:
                    if _refused(exc):
                        user = self.settings.username
                        log.error("mqtt_connect_refused", broker=url, username=user, reason=self.stats.last_error, hint="check username and password_file")
                    else:
                        log.warning("mqtt_unreachable", broker=url, error=self.stats.last_error)
            finally:
                self._client = None
                self._born = False
                async with self._lock:
                    self._online = False
                self.stats.link_state = "disconnected"
            if self._sessions != sessions_before or down_since is None:  # a new outage starts
                backoff.reset()
                down_since = time.monotonic()
            attempt += 1
            # the next broker of the list at once; the first again after a backoff
            await asyncio.sleep(backoff.next_delay() if attempt % len(brokers) == 0 else 0.1)

    def _tls(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.create_default_context(cafile=str(self._resolve(s.ca_file)) if s.ca_file else None)
        if s.cert_file and s.key_file:
            ctx.load_cert_chain(str(self._resolve(s.cert_file)), str(self._resolve(s.key_file)))
        return ctx

    def _password(self) -> str | None:
        if self.settings.password_file is None:
            return None
        text = self._resolve(self.settings.password_file).read_text(encoding="utf-8")
        return text.splitlines()[0] if text else ""

    async def _session(self, url: str, *, down_since: float | None) -> None:
        s = self.settings
        node = self.node
        assert node is not None
        scheme, host, port = parse_broker(url)
        # bdSeq counts sessions: a connect attempt that never got through reuses the last value
        if self._bd_seq_used:
            node.bd_seq = (node.bd_seq + 1) % 256
            self._bd_seq_used = False
            await asyncio.to_thread(self.spool.set_meta, "bdSeq", node.bd_seq)
        will_topic, will_payload = node.ndeath()
        client = aiomqtt.Client(
            host,
            port,
            username=s.username,
            password=self._password(),
            identifier=s.client_id,
            will=aiomqtt.Will(will_topic, will_payload, qos=1, retain=False) if self.json is None else None,
            tls_context=self._tls() if scheme == "mqtts" else None,
            keepalive=s.keepalive_s,
            timeout=s.connect_timeout_s,
            clean_session=True,
            max_inflight_messages=100,
        )
        client.pending_calls_threshold = 10 * DRAIN_ROWS  # the spool is sent pipelined: not a warning
        async with client:
            self._client = client
            # aiomqtt's own future, done when the link is gone: a publish waiting for its
            # acknowledgement stops waiting then (aiomqtt 2.x; pinned in setup.py)
            self._link_lost = client._disconnected
            await self._serve(client, url, down_since)

    async def _serve(self, client: aiomqtt.Client, url: str, down_since: float | None) -> None:
        s = self.settings
        node = self.node
        assert node is not None
        if self._sessions:
            self.stats.reconnects += 1
        self._sessions += 1
        self.stats.link_state = "connected"
        self._bd_seq_used = True
        self.stats.last_error = ""
        log.info("mqtt_connected", broker=url, bd_seq=node.bd_seq, **({"down_for_s": round(time.monotonic() - down_since, 1)} if down_since else {}))
        try:
            if self.json is not None:
                await self._go_online()
                async for _ in client.messages:  # nothing is subscribed: this ends when the link drops
                    pass
                return
            await client.subscribe(node.node_topic("NCMD"), qos=1)
            await client.subscribe(f"{topics.NAMESPACE}/{node.group}/DCMD/{node.node}/+", qos=1)
            if s.primary_host is not None:
                self.stats.link_state = "waiting_for_host"
                await client.subscribe(topics.state_topic(s.primary_host), qos=1)
            else:
                await self._birth()
            async for message in client.messages:
                await self._on_message(message)
        except PrimaryHostOffline:
            await self._say_goodbye()
            raise
        except asyncio.CancelledError:
            await self._say_goodbye()
            raise

    async def _say_goodbye(self) -> None:
        """Publish NDEATH ourselves: a clean disconnect discards the Will."""
        if self._client is None or self.node is None or self.json is not None:
            return
        async with self._lock:
            self._online = False
        try:
            async with asyncio.timeout(2.0):
                await self._client.publish(*self.node.ndeath(), qos=1)
        except (aiomqtt.MqttError, TimeoutError):
            pass

    def _go_offline(self, exc: Exception) -> None:
        self._online = False
        self.stats.last_error = _describe(exc)

    async def _go_online(self) -> None:
        async with self._lock:
            await self._drain()
            self._online = True
            self.stats.link_state = "online"

    async def _birth(self) -> None:
        """NBIRTH, a DBIRTH per device, the spool (historical), DDEATH for dead devices; then online."""
        node, catalog = self.node, self.catalog
        assert node is not None and catalog is not None
        async with self._lock:
            self._online = False
            # changes gathered before the birth are older than its values: they go out historical
            items = self._select(self._take())
            self._track_links(items)
            await asyncio.to_thread(self._spool_items, items)
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
            self._born = True
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
        """Publish the spool oldest first (historical), deleting rows once the broker has them.

        Rows are read in blocks; consecutive rows of one device are merged into messages of up to
        ``max_metrics_per_message`` metrics, the block's messages are published together (in
        order, QoS 1 pipelined), then the block's rows are deleted in one transaction.
        """
        node, catalog = self.node, self.catalog
        assert node is not None and catalog is not None
        sent = 0
        limit = self.settings.max_metrics_per_message
        while True:
            rows = await asyncio.to_thread(self.spool.head, DRAIN_ROWS)
            if not rows:
                break
            sends: list[Awaitable[None]] = []
            unknown_total = 0
            if self.json is not None:
                for _, _, stored in rows:
                    pairs, unknown = stored_samples(catalog, stored)
                    unknown_total += unknown
                    device = pairs[0][0].device if pairs else None
                    metrics = 1 if "{metric}" in self.json.json_topic else len(pairs)
                    for topic, payload in jsonfmt.messages(self.json.json_topic, node.node, device, pairs, historical=True, now_ms=_now_ms()):
                        sends.append(self._publish(topic, payload, retain=self.json.json_retain, metrics=metrics))
            else:
                device: str | None = None
                batch: list[Any] = []
                for _, _, stored in rows:
                    metrics, unknown = node.for_session(stored)
                    unknown_total += unknown
                    if not metrics:
                        continue
                    d = catalog.by_alias[metrics[0].alias].device
                    if batch and (d != device or len(batch) + len(metrics) > limit):
                        sends.append(self._publish(*node.data(device, batch, _now_ms()), metrics=len(batch)))
                        batch = []
                    device = d
                    batch.extend(metrics)
                if batch:
                    sends.append(self._publish(*node.data(device, batch, _now_ms()), metrics=len(batch)))
            # each publish hands its message to the client before its first await, so the order
            # (and the seq numbers assigned above) is the order on the wire
            await asyncio.gather(*sends)
            await asyncio.to_thread(self.spool.delete_rows, rows)
            self.stats.metrics_dropped += unknown_total
            sent += sum(r[1] for r in rows)
            self.stats.metrics_buffered = self.spool.metrics
        if sent:
            log.info("mqtt_spool_sent", metrics=sent)
        self._count_drops(0)

    async def _on_message(self, message: aiomqtt.Message) -> None:
        node, catalog = self.node, self.catalog
        assert node is not None and catalog is not None
        topic = str(message.topic)
        data = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        if self.settings.primary_host is not None and topic == topics.state_topic(self.settings.primary_host):
            state = topics.parse_state(data)
            if state is None:
                log.warning("mqtt_state_undecodable", topic=topic)
                return
            online, ts = state
            if ts < self._host_ts:
                return  # an older STATE than the one acted on
            self._host_ts = ts
            if online and not self._born:
                log.info("mqtt_primary_host_online", host=self.settings.primary_host)
                await self._birth()
            elif not online and self._born:
                raise PrimaryHostOffline
            return
        parts = topics.parse_topic(topic)
        if parts is None:
            return
        payload = decode(data)
        if payload is None:
            return
        if parts.message_type == "NCMD":
            if wants_rebirth(payload) and self._born:
                log.info("mqtt_rebirth_requested")
                await self._birth()
            return
        if parts.message_type == "DCMD" and parts.device is not None:
            results = await device_command(
                payload,
                parts.device,
                topic=topic,
                catalog=catalog,
                registry=self.registry,
                write=self._write,
                allow=self.settings.allow_commands,
            )
            refused = [catalog.by_key[r.key] for r in results if r.status != 0 and r.key is not None]
            if refused and self._online and self._alive.get(parts.device, True):
                # the tag keeps its value: tell the host so
                p = Payload()
                for d in refused:
                    add_metric(p, d, self.registry.latest(d.key))
                async with self._lock:
                    await self._publish(*node.data(parts.device, p.metrics, _now_ms()), metrics=len(refused))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, aiomqtt.MqttError) and cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text


def _refused(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    text = str(exc).lower()
    return value in _REFUSED or "not authorized" in text or "bad user name" in text


def deadbands_of(cfg: Any) -> dict[str, float]:
    """Each device tag's ``deadband`` (registry key -> deadband), for report by exception."""
    from edge.core.names import tag_key

    return {tag_key(d.name, t.name): float(getattr(t, "deadband", 0.0) or 0.0) for d in cfg.devices for t in d.tags}
