"""Supervisor: one named poll task per device, and the only owner of reconnection.

A device task loops: connect -> poll on a monotonic schedule -> on DriverUnavailable mark the
device's tags stale, log ``device_unreachable`` once per outage, close, back off (capped,
jittered) and reconnect. Recovery is logged once as ``device_reconnected``. Per-poll success goes
to counters (Diagnostics), never to the log.

Scan groups: each point may have its own poll period. Groups that come due together (within a
few milliseconds) are read in one ``driver.read`` call, so their tags share requests.

Subscriptions: a driver that is a ``SubscribingDriver`` is not polled; after each connect its
``run_subscription`` pushes batches of changes, which are published like poll results, until it
raises DriverUnavailable. Reconnection, backoff, staleness and outage logging are the same.

Staleness (one policy for a lost link and for a single unit that stops answering): a tag whose
value could not be fetched (``ReadResult.not_fetched``) keeps its last usable value as
UncertainNoCommunicationLastUsableValue (old source time) until ``stale_after_s`` after that value
was read, then goes Bad (BadNoCommunication, or the driver's BadTimeout); it is Good again on the
first good read. For a driver whose samples carry the device's own source times
(``source_timestamps``: an unchanged upstream value keeps the time it changed), the value counts
as read until the link was lost, so ``stale_after_s`` runs from the start of the outage.

Counters for Diagnostics and metrics (``DeviceHealth``): poll cycles that returned or failed,
reconnects, requests sent (the driver's ``requests_sent`` when it keeps one) and every poll
cycle's duration in a histogram; plain numbers, read by the Prometheus collector at scrape time.

Freshness: a polled value is Good only until it is older than its poll interval plus the driver's
request timeout (``edge.core.freshness``); then it is shown Uncertain until the overdue read
arrives. A driver that can stream (``StreamingDriver``, Modbus) hands each block's samples over
as they arrive, and they are published at once rather than at the end of the poll cycle.

Recovery: the backoff is reset only once data flows again (a device that accepts connections but
does not answer is not retried in a storm); the delay is capped for a device that was healthy a
moment ago, and a driver with a ``probe()`` ends the wait as soon as the port opens again
(``edge.core.reconnect``). A Good write publishes the written value at once (as the device holds
it: ``written_value``), and the next poll confirms it.

Samples are built once, by the driver, already keyed by registry key (each point's ``name`` is its
registry key): the runner hands them to the registry as they are. Health counters are published
at most once per ``HEALTH_INTERVAL_S``, and only those that changed; a link-state change at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog

from drivers.base import Driver, DriverUnavailable, LinkState, ReadResult, StreamingDriver, SubscribingDriver
from drivers.columns import any_good
from drivers.sample import Status, TagSample, TagValue, utcnow
from edge.core.backoff import Backoff
from edge.core.freshness import FreshnessWatch
from edge.core.health import DeviceHealth
from edge.core.reconnect import PROBE_INTERVAL_S, ReconnectPolicy
from edge.core.registry import TagRegistry

log = structlog.get_logger("edge.core.supervisor")

HEALTH_INTERVAL_S = 1.0  # counters (reads, cycle time) are published at most this often


class _ScanGroup:
    """Points polled every *interval_s*; due at ``start + k * interval_s``."""

    __slots__ = ("indexes", "interval_s", "k", "start")

    def __init__(self, interval_s: float, indexes: list[int]) -> None:
        self.interval_s = interval_s
        self.indexes = indexes
        self.start = 0.0
        self.k = 0

    @property
    def next_due(self) -> float:
        return self.start + self.k * self.interval_s

    def advance(self, now: float) -> None:
        """Move to the next slot. A read that overran into a later slot is followed at once by that
        slot's read (late, so no value waits a whole extra period); older missed slots are skipped
        rather than burst."""
        self.k = max(self.k + 1, math.floor((now - self.start) / self.interval_s))


class DeviceRunner:
    """Polls one driver and publishes its samples; routes writes to it.

    Each point's ``name`` is the registry key of its tag (``edge.core.names.tag_key``).
    """

    def __init__(
        self,
        name: str,
        driver: Driver,
        points: Sequence[Any],
        registry: TagRegistry,
        *,
        poll_interval_s: float,
        backoff: Backoff,
        intervals: Sequence[float] | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        self.name = name
        self.driver = driver
        self.points = list(points)
        self.keys = [p.name for p in self.points]
        self._by_key = dict(zip(self.keys, self.points, strict=True))
        self.registry = registry
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff
        self.stale_after_s = stale_after_s
        self.health = DeviceHealth(name)
        # set when the first connect attempt has finished, connected or not (service readiness)
        self.started = asyncio.Event()
        self._log = log.bind(device=name, driver=getattr(driver, "kind", "?"))
        self._down_since: float | None = None
        self._down_at: datetime | None = None  # when the outage began, for source_timestamps drivers
        per_point = list(intervals) if intervals is not None else [poll_interval_s] * len(self.points)
        if len(per_point) != len(self.points):
            raise ValueError(f"{len(per_point)} poll intervals for {len(self.points)} points")
        by_interval: dict[float, list[int]] = {}
        for i, interval in enumerate(per_point):
            by_interval.setdefault(float(interval), []).append(i)
        self.groups = [_ScanGroup(iv, idx) for iv, idx in sorted(by_interval.items())]
        # groups due within this window of each other are read together
        self._together_s = min([0.010] + [0.1 * g.interval_s for g in self.groups])
        self._batches: dict[tuple[int, ...], tuple[Any, ...]] = {}
        self._health_due = 0.0  # monotonic time of the next counters publish
        self._driver_counts_requests = type(getattr(driver, "requests_sent", None)) is int
        # -- lossy links: streaming reads, freshness, recovery (module docstring)
        self.reconnect = ReconnectPolicy(backoff)
        self._subscribing = isinstance(driver, SubscribingDriver)
        self._streaming = not self._subscribing and isinstance(driver, StreamingDriver)
        self._awaiting_data = True  # connected (or connecting) but no data yet on this connection
        self._data_seen = False  # a sample arrived on this connection
        request_timeout_s = float(getattr(driver, "timeout_s", 0.0) or 0.0)
        self._freshness = None if self._subscribing else FreshnessWatch({k: iv + request_timeout_s for k, iv in zip(self.keys, per_point)})
        self._freshness_timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Poll forever; returns only by cancellation (which it never swallows)."""
        try:
            while True:
                self._set_state(LinkState.CONNECTING)
                connecting = True
                try:
                    await self.driver.connect()
                    connecting = False
                    self._on_connected()
                    if isinstance(self.driver, SubscribingDriver):
                        await self.driver.run_subscription(self.points, self._on_changes)
                        raise DriverUnavailable("subscription ended")
                    await self._poll_forever()
                except DriverUnavailable as exc:
                    await self._on_outage(exc, connect_failed=connecting)
                    await self._back_off(self.reconnect.next_delay(time.monotonic()))
        finally:
            if self._freshness_timer is not None:
                self._freshness_timer.cancel()
                self._freshness_timer = None
            await self.driver.close()
            self._set_state(LinkState.CLOSED)

    async def _poll_forever(self) -> None:
        now = time.monotonic()
        for g in self.groups:
            g.start, g.k = now, 0
        while self.groups:
            now = time.monotonic()
            due = tuple(i for i, g in enumerate(self.groups) if g.next_due <= now + self._together_s)
            if due:
                started = time.monotonic()
                if self._streaming:
                    await self.driver.read_streaming(self._batch(due), self._publish)  # type: ignore[attr-defined]
                else:
                    result = await self.driver.read(self._batch(due))
                _stop_if_cancelled()
                after = time.monotonic()
                health = self.health
                health.poll_cycle_s = cycle = after - started
                health.poll_cycles.observe(cycle)
                health.reads_ok += 1
                health.requests = self._requests()
                if not self._streaming:
                    self._publish(result)
                if self._awaiting_data and (self._data_seen or not self.points):
                    self._on_recovered()
                if after >= self._health_due:
                    self._health_due = after + HEALTH_INTERVAL_S
                    self._publish_health()
                for i in due:
                    self.groups[i].advance(after)
            wait = min(g.next_due for g in self.groups) - time.monotonic()
            await asyncio.sleep(max(wait, 0.0))

    def _on_changes(self, result: ReadResult) -> None:
        """The sink of a SubscribingDriver: one batch of pushed changes."""
        self.health.reads_ok += 1
        self.health.requests = self._requests()
        self._publish(result)
        now = time.monotonic()
        if now >= self._health_due:
            self._health_due = now + HEALTH_INTERVAL_S
            self._publish_health()

    def _batch(self, due: tuple[int, ...]) -> tuple[Any, ...]:
        # The same tuple object every time these groups come due: drivers may cache per object.
        batch = self._batches.get(due)
        if batch is None:
            indexes = sorted(i for g in due for i in self.groups[g].indexes)
            batch = tuple(self.points[i] for i in indexes)
            self._batches[due] = batch
        return batch

    def _publish(self, result: ReadResult) -> None:
        """Publish the driver's samples as they are; points it could not fetch go through the stale policy."""
        self.registry.publish(result.samples)
        if result.samples:
            self._data_seen = True
        for status, keys in result.not_fetched.items():
            self.registry.mark_stale(keys, stale_after_s=self.stale_after_s, status=status)
        if self._freshness_timer is None and self._freshness is not None and any_good(result.samples):
            self._check_freshness()

    def _check_freshness(self) -> None:
        """Show overdue Good values as Uncertain; run again when the next Good value expires."""
        self._freshness_timer = None
        assert self._freshness is not None
        now = utcnow()
        expired, next_due = self._freshness.expired(self.registry.latest, now)
        if expired:
            self.registry.mark_stale(expired, at=now, stale_after_s=self.stale_after_s, status=Status.BadTimeout)
        if next_due is not None:
            delay = (next_due - now).total_seconds() + 0.001
            self._freshness_timer = asyncio.get_running_loop().call_later(delay, self._check_freshness)

    def _publish_health(self) -> None:
        changed = self.health.changed_samples()
        if changed:
            self.registry.publish(changed)

    async def _back_off(self, delay: float) -> None:
        """Sleep *delay*, re-applying the stale policy so last values go Bad on time; a driver with a
        ``probe()`` is probed meanwhile and the wait ends when its port opens (``edge.core.reconnect``)."""
        step = delay if self.stale_after_s is None else min(1.0, self.stale_after_s / 4)
        probe = getattr(self.driver, "probe", None)
        if probe is not None:
            step = min(step, PROBE_INTERVAL_S)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, step))
            self.registry.mark_stale(self.keys, stale_after_s=self.stale_after_s, since=self._down_at)
            if probe is not None and deadline - time.monotonic() > 0 and self.reconnect.probe_result(await probe()):
                return

    def _on_connected(self) -> None:
        self.started.set()
        self._awaiting_data = True
        self._data_seen = False
        if self._subscribing:  # a subscription delivers when it has changes: connected is up
            self._on_recovered()
        self._set_state(LinkState.CONNECTED)

    def _on_recovered(self) -> None:
        """Data flows again on this connection: reset the backoff, log the recovery once."""
        self._awaiting_data = False
        self.reconnect.on_data()
        if self._down_since is not None:
            self.health.reconnects += 1
            self._log.info("device_reconnected", down_for_s=round(time.monotonic() - self._down_since, 3))
            self._down_since = self._down_at = None

    def _requests(self) -> int:
        """Requests sent to the device: the driver's own count (``requests_sent``) when it keeps one,
        else the poll cycles and pushed batches so far."""
        if self._driver_counts_requests:
            return self.driver.requests_sent  # type: ignore[attr-defined,no-any-return]
        return self.health.reads_ok + self.health.reads_failed

    async def _on_outage(self, exc: Exception, *, connect_failed: bool = False) -> None:
        self.started.set()
        self.reconnect.on_outage(time.monotonic(), healthy_before=not self._awaiting_data, connect_failed=connect_failed)
        self._awaiting_data = True
        self.health.reads_failed += 1
        self.health.requests = self._requests()
        self.health.last_error = str(exc) or type(exc).__name__
        await self.driver.close()
        self._set_state(LinkState.DISCONNECTED)
        if self._down_since is None and getattr(self.driver, "source_timestamps", False):
            self._down_at = utcnow()
        self.registry.mark_stale(self.keys, stale_after_s=self.stale_after_s, since=self._down_at)
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._log.warning("device_unreachable", error=self.health.last_error)

    def _set_state(self, state: LinkState) -> None:
        if state != self.health.link_state:
            self.health.link_state = state
            self._publish_health()

    async def write(self, key: str, value: TagValue) -> int:
        point = self._by_key[key]
        if self.health.link_state != LinkState.CONNECTED:
            self._log.warning("write_rejected", tag=key, reason="device not connected")
            return Status.BadNoCommunication
        status = int(await self.driver.write(point, value))
        if status == Status.Good:
            # write then read: the node shows the written value as the device now holds it, at
            # once; the next poll confirms it (or shows what the device made of it)
            shown = getattr(self.driver, "written_value", None)
            now = utcnow()
            self.registry.publish([TagSample(key, shown(point, value) if shown is not None else value, Status.Good, now, now)])
        return status


def _stop_if_cancelled() -> None:
    # A driver (or a library below it) may swallow a cancellation: asyncio.wait_for on Python
    # 3.11 returns a result that arrived together with the cancel. The request stays counted on
    # the task; honour it here so shutdown never waits on a poll loop that did not notice.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Supervisor:
    """Owns every device runner; routes northbound writes to the device that owns the tag."""

    def __init__(self, runners: Sequence[DeviceRunner]) -> None:
        self.runners = list(runners)
        self._owner = {key: r for r in self.runners for key in r.keys}

    def replace(self, remove: Sequence[str], add: Sequence[DeviceRunner]) -> list[DeviceRunner]:
        """Swap runners (a config reload): drop those named in *remove* and take *add*; return the
        dropped ones (their tasks are the caller's to stop). Writes route to the new set at once."""
        dropped = [r for r in self.runners if r.name in set(remove)]
        self.runners = [r for r in self.runners if r.name not in set(remove)] + list(add)
        self._owner = {key: r for r in self.runners for key in r.keys}
        return dropped

    async def write(self, key: str, value: TagValue) -> int:
        runner = self._owner.get(key)
        if runner is None:
            return Status.BadNotWritable
        return await runner.write(key, value)
