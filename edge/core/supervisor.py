"""Supervisor: one named poll task per device, and the only owner of reconnection.

A device task loops: connect -> poll on a monotonic schedule -> on DriverUnavailable mark the
device's tags stale, log ``device_unreachable`` once per outage, close, back off (capped,
jittered) and reconnect. Recovery is logged once as ``device_reconnected``. Per-poll success goes
to counters (Diagnostics), never to the log.

Scan groups: each point may have its own poll period. Groups that come due together (within a
few milliseconds) are read in one ``driver.read`` call, so their tags share requests.

Staleness (one policy for a lost link and for a single unit that stops answering): a tag whose
value could not be fetched keeps its last usable value as UncertainNoCommunicationLastUsableValue
(old source time) until ``stale_after_s`` after that value was read, then goes Bad
(BadNoCommunication, or the driver's BadTimeout); it is Good again on the first good read.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

import structlog

from drivers.base import COMMUNICATION_FAILURES, Driver, DriverUnavailable, LinkState
from drivers.sample import Status, TagSample, TagValue
from edge.core.backoff import Backoff
from edge.core.health import DeviceHealth
from edge.core.names import tag_key
from edge.core.registry import TagRegistry

log = structlog.get_logger("edge.core.supervisor")


class _ScanGroup:
    """Points polled every *interval_s*; due at ``start + k * interval_s``."""

    __slots__ = ("interval_s", "indexes", "start", "k")

    def __init__(self, interval_s: float, indexes: list[int]) -> None:
        self.interval_s = interval_s
        self.indexes = indexes
        self.start = 0.0
        self.k = 0

    @property
    def next_due(self) -> float:
        return self.start + self.k * self.interval_s

    def advance(self, now: float) -> None:
        """Move to the next slot after *now* (missed slots are skipped rather than burst)."""
        self.k = max(self.k + 1, math.floor((now - self.start) / self.interval_s) + 1)


class DeviceRunner:
    """Polls one driver and publishes its samples; routes writes to it."""

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
        self.keys = [tag_key(name, p.name) for p in self.points]
        self._by_key = dict(zip(self.keys, self.points, strict=True))
        self.registry = registry
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff
        self.stale_after_s = stale_after_s
        self.health = DeviceHealth(name)
        self._log = log.bind(device=name, driver=getattr(driver, "kind", "?"))
        self._down_since: float | None = None
        per_point = list(intervals) if intervals is not None else [poll_interval_s] * len(self.points)
        if len(per_point) != len(self.points):
            raise ValueError(f"{len(per_point)} poll intervals for {len(self.points)} points")
        by_interval: dict[float, list[int]] = {}
        for i, interval in enumerate(per_point):
            by_interval.setdefault(float(interval), []).append(i)
        self.groups = [_ScanGroup(iv, idx) for iv, idx in sorted(by_interval.items())]
        # groups due within this window of each other are read together
        self._together_s = min([0.010] + [0.1 * g.interval_s for g in self.groups])
        self._batches: dict[tuple[int, ...], tuple[tuple[Any, ...], list[str]]] = {}

    async def run(self) -> None:
        """Poll forever; returns only by cancellation (which it never swallows)."""
        try:
            while True:
                self._set_state(LinkState.CONNECTING)
                try:
                    await self.driver.connect()
                    self._on_connected()
                    await self._poll_forever()
                except DriverUnavailable as exc:
                    await self._on_outage(exc)
                    await self._back_off(self.backoff.next_delay())
        finally:
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
                points, keys = self._batch(due)
                started = time.monotonic()
                samples = await self.driver.read(points)
                _stop_if_cancelled()
                self.health.poll_cycle_s = time.monotonic() - started
                self.health.reads_ok += 1
                self._publish(keys, samples)
                self.registry.publish(self.health.samples())
                after = time.monotonic()
                for i in due:
                    self.groups[i].advance(after)
            wait = min(g.next_due for g in self.groups) - time.monotonic()
            await asyncio.sleep(max(wait, 0.0))

    def _batch(self, due: tuple[int, ...]) -> tuple[tuple[Any, ...], list[str]]:
        # The same tuple object every time these groups come due: drivers may cache per object.
        batch = self._batches.get(due)
        if batch is None:
            indexes = sorted(i for g in due for i in self.groups[g].indexes)
            batch = (tuple(self.points[i] for i in indexes), [self.keys[i] for i in indexes])
            self._batches[due] = batch
        return batch

    def _publish(self, keys: Sequence[str], samples: Sequence[TagSample]) -> None:
        """Publish fresh samples; points the driver could not fetch go through the stale policy."""
        fresh = []
        missing: dict[int, list[str]] = {}
        for s in _rekey(keys, samples):
            if s.status in COMMUNICATION_FAILURES:
                missing.setdefault(s.status, []).append(s.tag)
            else:
                fresh.append(s)
        self.registry.publish(fresh)
        for status, stale in missing.items():
            self.registry.mark_stale(stale, stale_after_s=self.stale_after_s, status=status)

    async def _back_off(self, delay: float) -> None:
        """Sleep *delay*, re-applying the stale policy so last values go Bad on time."""
        step = delay if self.stale_after_s is None else min(1.0, self.stale_after_s / 4)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, step))
            self.registry.mark_stale(self.keys, stale_after_s=self.stale_after_s)

    def _on_connected(self) -> None:
        self.backoff.reset()
        if self._down_since is not None:
            self.health.reconnects += 1
            self._log.info("device_reconnected", down_for_s=round(time.monotonic() - self._down_since, 3))
            self._down_since = None
        self._set_state(LinkState.CONNECTED)

    async def _on_outage(self, exc: Exception) -> None:
        self.health.reads_failed += 1
        self.health.last_error = str(exc) or type(exc).__name__
        await self.driver.close()
        self._set_state(LinkState.DISCONNECTED)
        self.registry.mark_stale(self.keys, stale_after_s=self.stale_after_s)
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._log.warning("device_unreachable", error=self.health.last_error)

    def _set_state(self, state: LinkState) -> None:
        if state != self.health.link_state:
            self.health.link_state = state
            self.registry.publish(self.health.samples())

    async def write(self, key: str, value: TagValue) -> int:
        point = self._by_key[key]
        if self.health.link_state != LinkState.CONNECTED:
            self._log.warning("write_rejected", tag=key, reason="device not connected")
            return Status.BadNoCommunication
        return int(await self.driver.write(point, value))


def _stop_if_cancelled() -> None:
    # A driver (or a library below it) may swallow a cancellation: asyncio.wait_for on Python
    # 3.11 returns a result that arrived together with the cancel. The request stays counted on
    # the task; honour it here so shutdown never waits on a poll loop that did not notice.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _rekey(keys: Sequence[str], samples: Sequence[TagSample]) -> list[TagSample]:
    if len(samples) != len(keys):
        raise RuntimeError(f"driver returned {len(samples)} samples for {len(keys)} points")
    return [TagSample(k, s.value, s.status, s.source_time, s.server_time) for k, s in zip(keys, samples)]


class Supervisor:
    """Owns every device runner; routes northbound writes to the device that owns the tag."""

    def __init__(self, runners: Sequence[DeviceRunner]) -> None:
        self.runners = list(runners)
        self._owner = {key: r for r in self.runners for key in r.keys}

    async def write(self, key: str, value: TagValue) -> int:
        runner = self._owner.get(key)
        if runner is None:
            return Status.BadNotWritable
        return await runner.write(key, value)

    def start(self, tg: asyncio.TaskGroup) -> None:
        for r in self.runners:
            tg.create_task(r.run(), name=f"poll:{r.name}")
