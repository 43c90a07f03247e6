"""A DeviceRunner of one opcua device on a task, against a test upstream server (test helper)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from drivers.sample import Status, TagSample
from edge.core.backoff import Backoff
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner
from tests.drivers.opcua_client.conftest import make_driver, settings
from tests.drivers.opcua_client.upstream import Upstream

UNCERTAIN = Status.UncertainNoCommunicationLastUsableValue


class Running:
    """A DeviceRunner of one opcua device on a task, with every published sample recorded."""

    def __init__(self, upstream: Upstream, tmp_path: Path, tags: list[dict[str, Any]], **kw: Any) -> None:
        fast = {"publishing_interval_s": 0.05, "sampling_interval_s": 0.0} if kw.get("mode") != "poll" else {}
        self.settings = settings(upstream.endpoint, tags, watchdog_s=0.2, **fast, **kw)
        self.driver = make_driver(self.settings, tmp_path)
        self.registry = TagRegistry()
        self.points = self.settings.points()
        for p in self.points:
            self.registry.add(TagInfo(p.name, ("Devices", "boiler", p.name), p.value_type, device="boiler", writable=p.writable, array=p.array))
        self.runner = DeviceRunner(
            "boiler",
            self.driver,
            self.points,
            self.registry,
            poll_interval_s=self.settings.poll_interval_s,
            backoff=Backoff(0.05, 0.2, jitter=0.0),
            stale_after_s=self.settings.stale_after_s,
        )
        for info in self.runner.health.infos():
            self.registry.add(info)
        self.seen: list[TagSample] = []
        self.registry.subscribe(self.seen.extend)
        self.task: asyncio.Task[None] | None = None

    def history(self, key: str) -> list[TagSample]:
        return [s for s in self.seen if s.tag == key]

    def latest(self, key: str) -> TagSample:
        return self.registry.latest(key)

    async def until(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(upstream: Upstream, tmp_path: Path, tags: list[dict[str, Any]], **kw: Any) -> AsyncIterator[Running]:
    r = Running(upstream, tmp_path, tags, **kw)
    r.task = asyncio.create_task(r.runner.run(), name="poll:boiler")
    try:
        yield r
    finally:
        r.task.cancel()
        await asyncio.gather(r.task, return_exceptions=True)
