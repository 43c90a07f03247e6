"""Fakes for the daemon's own seams (never for asyncua or pymodbus, which tests run for real)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.base import DriverUnavailable, LinkState, ReadResult
from drivers.sample import Status, TagSample, TagValue, utcnow


@dataclass(frozen=True)
class FakePoint:
    name: str


class FakeDriver:
    """A driver that follows a script: each connect/read consumes the next step.

    Steps are ``"ok"`` (read returns Good samples with increasing values), ``"down"`` (the call
    raises DriverUnavailable) or ``"hang"`` (never returns).
    """

    kind: ClassVar[str] = "fake"

    def __init__(self, name: str, script: Sequence[str], *, default: str = "ok") -> None:
        self.name = name
        self.script = list(script)
        self.default = default
        self.reads = 0
        self.connects = 0
        self.closes = 0
        self.writes: list[tuple[str, TagValue]] = []
        self._state = LinkState.DISCONNECTED
        self.step_event = asyncio.Event()

    @property
    def state(self) -> LinkState:
        return self._state

    async def _step(self) -> None:
        step = self.script.pop(0) if self.script else self.default
        self.step_event.set()
        if step == "down":
            self._state = LinkState.DISCONNECTED
            raise DriverUnavailable("connection refused")
        if step == "hang":
            await asyncio.Event().wait()

    async def connect(self) -> None:
        self.connects += 1
        await self._step()
        self._state = LinkState.CONNECTED

    async def read(self, points: Sequence[Any]) -> ReadResult:
        await self._step()
        self.reads += 1
        now = utcnow()
        return ReadResult([TagSample(p.name, float(self.reads), Status.Good, now, now) for p in points])

    async def write(self, point: Any, value: TagValue) -> Status:
        self.writes.append((point.name, value))
        return Status.Good

    async def close(self) -> None:
        self.closes += 1
        self._state = LinkState.CLOSED


class FakeSubscribingDriver(FakeDriver):
    """A pushing driver (``drivers.base.SubscribingDriver``): ``push`` sends a batch to the sink of
    the running subscription; ``lose`` makes it raise DriverUnavailable, as a lost session does.
    Its samples keep the source time they are given (``source_timestamps``)."""

    source_timestamps: ClassVar[bool] = True

    def __init__(self, name: str, script: Sequence[str] = (), *, default: str = "ok") -> None:
        super().__init__(name, script, default=default)
        self.subscriptions = 0  # run_subscription calls
        self.active = 0  # running now
        self._sink: Any = None
        self._lost = asyncio.Event()

    async def run_subscription(self, points: Sequence[Any], sink: Any) -> None:
        self.subscriptions += 1
        self.active += 1
        self._sink, self._lost = sink, asyncio.Event()
        try:
            await self._lost.wait()
            raise DriverUnavailable("session lost")
        finally:
            self.active -= 1
            self._sink = None

    def push(self, samples: list[TagSample]) -> None:
        assert self._sink is not None, "no subscription running"
        self._sink(ReadResult(samples))

    def lose(self) -> None:
        self._lost.set()
