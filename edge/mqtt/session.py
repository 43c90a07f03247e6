"""The MQTT session loop of the sink (task ``mqtt:session``): the one owner of the connection.

It tries the brokers in order (failover: the next one at once, the first again after a backoff of
0.5 s up to ``reconnect_max_s``), registers the NDEATH as the Will, counts ``bdSeq``, subscribes
to NCMD, DCMD and the primary host's STATE, asks the sink for the births (at once, or once the
primary host is online), and serves incoming messages: STATE, rebirth requests, and DCMD (handed
to the sink). An outage is logged once (``mqtt_unreachable``, ``mqtt_connect_refused`` for a
refused login, ``mqtt_disconnected`` when a session ends) and its error kept in the stats. When
the primary host goes offline, or on shutdown, the session publishes NDEATH itself before it
disconnects (a clean disconnect discards the Will).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog

from edge.core.backoff import Backoff
from edge.mqtt import topics
from edge.mqtt.client import describe, link_lost, make_client, publish_acked, refused
from edge.mqtt.commands import decode, wants_rebirth

if TYPE_CHECKING:
    from edge.mqtt.sink import MqttSink

log = structlog.get_logger("edge.mqtt.session")


class PrimaryHostOffline(Exception):
    """The primary host application went offline: NDEATH, disconnect, wait for it again."""


class Session:
    def __init__(self, sink: MqttSink) -> None:
        self.sink = sink
        self.settings = sink.settings
        self.stats = sink.stats
        self.client: aiomqtt.Client | None = None
        self.lost: asyncio.Future[Any] | None = None  # done when the current session's link is gone
        self.born = False  # births published in this session
        self.sessions = 0  # sessions that connected
        self._bd_seq_used = True  # the stored bdSeq belonged to a session (of this or the last run)
        self._host_ts = -1

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False, metrics: int = 0, qos: int | None = None) -> None:
        """Publish one message (acknowledged with QoS 1) in the current session, and count it."""
        client, lost = self.client, self.lost
        if client is None or lost is None:
            raise aiomqtt.MqttError("not connected")
        await publish_acked(client, lost, topic, payload, qos=self.settings.qos if qos is None else qos, retain=retain)
        self.stats.messages_published += 1
        self.stats.metrics_published += metrics

    async def run(self) -> None:
        self.sink.ensure_catalog()
        backoff = Backoff(0.5, self.settings.reconnect_max_s)
        brokers = self.settings.broker
        attempt = 0
        down_since: float | None = None  # start of the current outage (logged once)
        while True:
            url = brokers[attempt % len(brokers)]
            self.stats.broker = url
            self.stats.link_state = "connecting"
            sessions_before = self.sessions
            try:
                await self._connect(url, down_since)
            except PrimaryHostOffline:
                log.warning("mqtt_primary_host_offline", host=self.settings.primary_host, broker=url)
            except (aiomqtt.MqttError, OSError, ssl.SSLError, ValueError) as exc:
                self.stats.last_error = describe(exc)
                if self.sessions != sessions_before:
                    log.warning("mqtt_disconnected", broker=url, error=self.stats.last_error)
                elif down_since is None:
                    if refused(exc):
                        user = self.settings.username
                        log.error("mqtt_connect_refused", broker=url, username=user, reason=self.stats.last_error, hint="check username and password_file")
                    else:
                        log.warning("mqtt_unreachable", broker=url, error=self.stats.last_error)
            finally:
                self.client = None
                self.born = False
                await self.sink.set_offline()
                self.stats.link_state = "disconnected"
            if self.sessions != sessions_before or down_since is None:  # a new outage starts
                backoff.reset()
                down_since = time.monotonic()
            attempt += 1
            # the next broker of the list at once; the first again after a backoff
            await asyncio.sleep(backoff.next_delay() if attempt % len(brokers) == 0 else 0.1)

    async def _connect(self, url: str, down_since: float | None) -> None:
        node = self.sink.node
        assert node is not None
        # bdSeq counts sessions: a connect attempt that never got through reuses the last value
        if self._bd_seq_used:
            node.bd_seq = (node.bd_seq + 1) % 256
            self._bd_seq_used = False
            await asyncio.to_thread(self.sink.spool.set_meta, "bdSeq", node.bd_seq)
        sparkplug = self.settings.mode == "sparkplug"
        client = make_client(self.settings, url, self.sink.resolve, node.ndeath() if sparkplug else None)
        async with client:
            self.client = client
            self.lost = link_lost(client)
            if self.sessions:
                self.stats.reconnects += 1
            self.sessions += 1
            self._bd_seq_used = True
            self.stats.link_state = "connected"
            self.stats.last_error = ""
            log.info("mqtt_connected", broker=url, bd_seq=node.bd_seq, **({"down_for_s": round(time.monotonic() - down_since, 1)} if down_since else {}))
            try:
                await (self._serve(client) if sparkplug else self._serve_json(client))
            except (PrimaryHostOffline, asyncio.CancelledError):
                await self._say_goodbye()
                raise

    async def _serve_json(self, client: aiomqtt.Client) -> None:
        await self.sink.go_online()
        async for _ in client.messages:  # nothing is subscribed: this ends when the link drops
            pass

    async def _serve(self, client: aiomqtt.Client) -> None:
        node = self.sink.node
        assert node is not None
        await client.subscribe(node.node_topic("NCMD"), qos=1)
        await client.subscribe(f"{topics.NAMESPACE}/{node.group}/DCMD/{node.node}/+", qos=1)
        if self.settings.primary_host is not None:
            self.stats.link_state = "waiting_for_host"
            await client.subscribe(topics.state_topic(self.settings.primary_host), qos=1)
        else:
            await self._birth()
        async for message in client.messages:
            await self._on_message(message)

    async def _birth(self) -> None:
        await self.sink.birth()
        self.born = True

    async def _say_goodbye(self) -> None:
        """Publish NDEATH ourselves: a clean disconnect discards the Will."""
        node = self.sink.node
        if self.client is None or node is None or self.settings.mode != "sparkplug":
            return
        await self.sink.set_offline()
        try:
            async with asyncio.timeout(2.0):
                await self.client.publish(*node.ndeath(), qos=1)
        except (aiomqtt.MqttError, TimeoutError):
            pass

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        data = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        host = self.settings.primary_host
        if host is not None and topic == topics.state_topic(host):
            state = topics.parse_state(data)
            if state is None:
                log.warning("mqtt_state_undecodable", topic=topic)
                return
            online, ts = state
            if ts < self._host_ts:
                return  # an older STATE than the one acted on
            self._host_ts = ts
            if online and not self.born:
                log.info("mqtt_primary_host_online", host=host)
                await self._birth()
            elif not online and self.born:
                raise PrimaryHostOffline
            return
        parts = topics.parse_topic(topic)
        if parts is None:
            return
        payload = decode(data)
        if payload is None:
            return
        if parts.message_type == "NCMD":
            if wants_rebirth(payload) and self.born:
                log.info("mqtt_rebirth_requested")
                await self._birth()
        elif parts.message_type == "DCMD" and parts.device is not None:
            await self.sink.command(topic, parts.device, payload)
