"""Supervisor: one named poll task per device, and the only owner of reconnection.

A device task loops: connect -> poll on a monotonic schedule -> on DriverUnavailable mark the
device's tags stale, log ``device_unreachable`` once per outage, close, back off (capped,
jittered) and reconnect. Recovery is logged once as ``device_reconnected``. Per-poll success goes
to counters (Diagnostics), never to the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog

from drivers.base import Driver, DriverUnavailable, LinkState
from drivers.sample import Status, TagSample, TagValue
from edge.backoff import Backoff
from edge.health import DeviceHealth
from edge.registry import TagRegistry

log = structlog.get_logger("edge.supervisor")


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
    ) -> None:
        self.name = name
        self.driver = driver
        self.points = list(points)
        self.keys = [f"{name}.{p.name}" for p in self.points]
        self._by_key = dict(zip(self.keys, self.points, strict=True))
        self.registry = registry
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff
        self.health = DeviceHealth(name)
        self._log = log.bind(device=name, driver=getattr(driver, "kind", "?"))
        self._down_since: float | None = None

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
                    await asyncio.sleep(self.backoff.next_delay())
        finally:
            await self.driver.close()
            self._set_state(LinkState.CLOSED)

    async def _poll_forever(self) -> None:
        next_due = time.monotonic()
        while True:
            started = time.monotonic()
            samples = await self.driver.read(self.points)
            self.health.poll_cycle_s = time.monotonic() - started
            self.health.reads_ok += 1
            self.registry.publish(_rekey(self.keys, samples))
            self.registry.publish(self.health.samples())
            next_due += self.poll_interval_s
            now = time.monotonic()
            if next_due < now:  # overran: skip the missed slots rather than burst
                next_due = now
            await asyncio.sleep(next_due - now)

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
        self.registry.mark_stale(self.keys)
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
