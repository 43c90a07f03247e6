"""The synthetic driver: no transport; after ``connect`` it pushes every tag's new value each
``interval_s`` (a ``SubscribingDriver``), on a fixed schedule that does not drift. A batch that is
late (a busy loop) is sent at once and the schedule goes on from the next tick."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import structlog

from drivers import columns
from drivers.base import DriverContext, LinkState, ReadResult
from drivers.columns import SampleColumns
from drivers.sample import Status, TagSample, TagValue, utcnow
from drivers.synthetic.patterns import Generator
from drivers.synthetic.settings import SyntheticPoint, SyntheticSettings

INT_LIMITS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class SyntheticDriver:
    kind: ClassVar[str] = "synthetic"
    Settings: ClassVar[type[SyntheticSettings]] = SyntheticSettings
    source_timestamps = False

    def __init__(self, settings: SyntheticSettings, *, log: Any = None) -> None:
        self.name = settings.name
        self.settings = settings
        self._log = log or structlog.get_logger("drivers.synthetic").bind(device=settings.name)
        self._state = LinkState.DISCONNECTED
        self._gen: Generator | None = None
        self._index: dict[str, int] = {}
        self._points: Sequence[SyntheticPoint] = ()
        self._t0 = 0.0
        self._keys: tuple[str, ...] | None = None  # the points' names when every point is float64: batches as columns

    @classmethod
    def from_settings(cls, settings: SyntheticSettings, *, log: Any = None, context: DriverContext | None = None) -> SyntheticDriver:
        return cls(settings, log=log)

    @property
    def state(self) -> LinkState:
        return self._state

    async def connect(self) -> None:
        self._state = LinkState.CONNECTED

    async def close(self) -> None:
        self._state = LinkState.CLOSED

    def _generator(self, points: Sequence[SyntheticPoint]) -> Generator:
        if self._gen is None or self._points is not points:
            self._gen = Generator(points, seed=self.settings.seed)
            self._index = {p.name: i for i, p in enumerate(points)}
            self._points = points
            self._keys = tuple(p.name for p in points) if columns.ENABLED and all(p.value_type == "float64" for p in points) else None
            self._t0 = asyncio.get_running_loop().time()
        return self._gen

    def _samples(self, points: Sequence[SyntheticPoint], values: np.ndarray) -> Sequence[TagSample]:
        """The batch of *values*: columns (``drivers.columns``) when every point is float64, samples otherwise."""
        now = utcnow()
        if self._keys is not None and points is self._points:
            return SampleColumns.stamped(self._keys, values, Status.Good, now)
        return [TagSample(p.name, typed(p.value_type, v, p.offset), Status.Good, now, now) for p, v in zip(points, values.tolist())]

    async def read(self, points: Sequence[Any]) -> ReadResult:
        """The current values (the gateway pushes instead of polling; used by tools and tests)."""
        gen = self._generator(points)
        return ReadResult(self._samples(points, gen.values(asyncio.get_running_loop().time() - self._t0)))

    async def run_subscription(self, points: Sequence[Any], sink: Callable[[ReadResult], None]) -> None:
        loop = asyncio.get_running_loop()
        gen = self._generator(points)
        interval = self.settings.interval_s
        sink(ReadResult(self._samples(points, gen.values(0.0))))
        tick = 0
        while True:
            tick += 1
            delay = self._t0 + tick * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:  # late: skip the ticks already missed rather than bursting to catch up
                tick = max(tick, int((loop.time() - self._t0) / interval))
            sink(ReadResult(self._samples(points, gen.step(tick * interval))))

    async def write(self, point: Any, value: TagValue) -> int:
        if not point.writable:
            return Status.BadNotWritable
        if self._gen is None or point.name not in self._index:
            return Status.BadNotConnected
        if isinstance(value, bool) != (point.value_type == "bool") or not isinstance(value, int | float):
            return Status.BadTypeMismatch
        self._gen.set(self._index[point.name], float(value))
        return Status.Good


def typed(value_type: str, v: float, offset: float) -> TagValue:
    """A generated float as the tag's type (integers rounded and kept in range; a bool is true above the offset)."""
    if value_type == "float64":
        return v
    if value_type == "float32":
        return float(np.float32(v))
    if value_type == "bool":
        return v > offset
    low, high = INT_LIMITS[value_type]
    return min(max(round(v), low), high)
