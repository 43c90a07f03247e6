"""The gateway's garbage-collection policy: short full collections while it serves, leaks still reclaimed.

Why: CPython's cyclic collector runs a full (generation 2) collection over every object that
survived two younger collections. While the OPC UA server serves, that is the monitored items'
state (about ten objects per item) and every value alive for a publishing interval (the
registry's latest ``TagSample``, each node's DataValue and Variant): 100,000-200,000 objects at
10,000 monitored tags, and a full collection over them held the event loop for 100-550 ms about
once a second, while collecting almost nothing (nearly all of it dies by reference counting).

The policy (``GcPolicy``; the daemon enters ``gateway_gc`` first thing in ``run_gateway``, which
holds automatic full collections off while the gateway is built, and calls ``serve`` once ready,
``edge.app``):

1. **Freeze at ready.** Everything alive then (asyncua's standard nodes, the address space, the
   registry) goes to the permanent generation (``gc.freeze()``, constant time); collections
   never scan it again.
2. **No automatic full collections.** The thresholds become ``GcSettings.thresholds``: young
   collections about as CPython makes them (every 2,000 net allocations instead of 700: a young
   pause scans at most some 20,000 objects, 25-48 ms at the worst on a heavily loaded machine)
   and a full one practically never.
3. **Settle the old generation, every ``check_s``.** The loop counts the objects that are not
   frozen; from ``freeze_at`` on it runs a full collection over them (at most ``collect_limit``:
   a pause of a few ms) and then freezes what survived. More than ``collect_limit`` (a client just
   subscribed to thousands of items, or 100,000 values a second each alive for a publishing
   interval): the young generations are collected and everything freezes without a full pass, so
   no pause grows with the load or a subscription's size. A frozen object that is released (the
   previous value of a node) is freed by reference counting as before.
4. **Sweep, rarely.** A frozen object is never collected: one that later becomes part of
   unreachable reference cycles (a closed session's subscription and its monitored items form such
   cycles in asyncua) would stay in memory for good. Every ``sweep_check_s`` the loop reads the
   interpreter's allocated memory blocks (``sys.getallocatedblocks``: about 1 ms; counting the
   frozen objects instead walks all of them, 156 ms at 50,000 tags on a loaded machine); when
   they grew by more than ``sweep_growth`` (a share of the count after the last sweep, at least
   ``sweep_min_blocks``) and the last sweep is at least ``sweep_min_interval_s`` ago, it
   unfreezes, collects everything once (a pause that grows with the whole heap: 0.25 s at 10,000
   tags, 1.5 s at 50,000 on a loaded machine) and freezes again (``gc_sweep`` in the log). So
   memory stays bounded under session churn, at the price of one long pause per
   ``sweep_min_interval_s`` at most, and only when memory grew.

``GcStats`` records every collection from ``gc.callbacks`` (count, total and longest pause per
generation, full pauses above ``pause_budget_s``, sweeps, frozen objects); the metrics endpoint
exports it (``edgetwin_gc_*``, docs/metrics.md) and the first full pause above the budget is
logged once (``gc_pause_over_budget``; the counter counts the rest). ``decide`` and ``sweep_due``
are the pure decisions; ``GcStats`` is pure too (it is given the durations).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from edge.core.stats import Histogram
from edge.core.tasks import cancel_and_wait, start_supervised

__all__ = ["Action", "GcPolicy", "GcSettings", "GcStats", "decide", "gateway_gc", "paused_gc", "serving_gc", "sweep_due"]

log = structlog.get_logger("edge.core.gcpolicy")

# upper bounds of the full-collection pause histogram, in seconds: 1 ms .. 2.5 s
PAUSE_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True, slots=True)
class GcSettings:
    """The policy's limits (see the module docstring); the defaults are what the daemon uses."""

    thresholds: tuple[int, int, int] = (2_000, 10, 1_000_000)  # gen 0 net allocations, gen-0 runs per gen 1, gen-1 runs per gen 2
    check_s: float = 1.0  # how often the old generation is counted
    freeze_at: int = 5_000  # unfrozen objects from which they are settled (collected if few enough, then frozen)
    collect_limit: int = 25_000  # at most this many unfrozen objects are collected in one full pass
    sweep_check_s: float = 60.0  # how often the allocated blocks are read
    sweep_growth: float = 0.25  # growth of the allocated blocks since the last sweep (share of that count) that calls for a sweep
    sweep_min_blocks: int = 200_000  # ... and at least this many blocks
    sweep_min_interval_s: float = 600.0  # at most one sweep in this time
    pause_budget_s: float = 0.020  # a full pause above this is counted (and the first one logged)

    def __post_init__(self) -> None:
        if any(t < 1 for t in self.thresholds):
            raise ValueError(f"gc thresholds must be at least 1, got {self.thresholds}")
        if not 0 < self.freeze_at <= self.collect_limit:
            raise ValueError(f"need 0 < freeze_at <= collect_limit, got {self.freeze_at} and {self.collect_limit}")
        if self.check_s <= 0 or self.sweep_check_s <= 0 or self.sweep_min_interval_s < 0 or self.sweep_growth <= 0:
            raise ValueError("gc check periods and the sweep growth must be positive")


class Action(enum.Enum):
    """What one check of the old generation does."""

    NOTHING = "nothing"
    COLLECT_AND_FREEZE = "collect_and_freeze"  # a full pass over the (small) unfrozen set, then freeze the survivors
    FREEZE = "freeze"  # collect the young generations, freeze everything without a full pass


def decide(unfrozen: int, settings: GcSettings) -> Action:
    """The action for *unfrozen* objects (all generations but the permanent one)."""
    if unfrozen < settings.freeze_at:
        return Action.NOTHING
    if unfrozen <= settings.collect_limit:
        return Action.COLLECT_AND_FREEZE
    return Action.FREEZE


def sweep_due(blocks: int, after_last_sweep: int, since_last_sweep_s: float, settings: GcSettings) -> bool:
    """Whether *blocks* allocated now, against *after_last_sweep* right after the last sweep (or
    the install) *since_last_sweep_s* seconds ago, call for a sweep."""
    grown = blocks - after_last_sweep
    return since_last_sweep_s >= settings.sweep_min_interval_s and grown >= max(settings.sweep_min_blocks, settings.sweep_growth * after_last_sweep)


@dataclass
class GcStats:
    """Every collection of the process since ``GcPolicy.install``: counts, pause times, the full
    pauses above the budget, sweeps and freezes. Plain numbers, read at scrape time."""

    pause_budget_s: float = 0.020
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])  # per generation
    pause_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # total per generation
    longest_s: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    collected: list[int] = field(default_factory=lambda: [0, 0, 0])  # unreachable objects found per generation
    full_pauses: Histogram = field(default_factory=lambda: Histogram(PAUSE_BUCKETS_S))
    over_budget: int = 0  # full pauses longer than pause_budget_s
    sweeps: int = 0
    freezes: int = 0
    frozen: int = 0  # objects in the permanent generation when last counted (at ready, after each sweep)
    blocks: int = 0  # the interpreter's allocated memory blocks when last read

    def record(self, generation: int, seconds: float, collected: int) -> bool:
        """Count one collection; True for the first full pause above the budget (to log it once)."""
        g = min(max(generation, 0), 2)
        self.collections[g] += 1
        self.pause_s[g] += seconds
        self.collected[g] += collected
        self.longest_s[g] = max(self.longest_s[g], seconds)
        if g != 2:
            return False
        self.full_pauses.observe(seconds)
        if seconds <= self.pause_budget_s:
            return False
        self.over_budget += 1
        return self.over_budget == 1


class GcPolicy:
    """The policy of one process (the daemon's): ``install`` once it is ready, ``run`` as a
    supervised task, ``uninstall`` when it stops (thresholds and callbacks back as they were;
    the frozen objects stay frozen)."""

    def __init__(self, settings: GcSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or GcSettings()
        self.stats = GcStats(self.settings.pause_budget_s)
        self._clock = clock
        self._started = 0.0
        self._saved: tuple[int, int, int] | None = None  # the thresholds before hold/install
        self._installed = False
        self._task: asyncio.Task[None] | None = None
        self._after_sweep = 0
        self._last_sweep = 0.0
        self._last_count = 0.0

    # -- gc.callbacks ------------------------------------------------------------------------
    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        if self.stats.record(info.get("generation", 0), pause, info.get("collected", 0)):
            log.warning(
                "gc_pause_over_budget",
                pause_ms=round(pause * 1e3, 1),
                budget_ms=self.settings.pause_budget_s * 1e3,
                hint="counted from now on in edgetwin_gc_full_pauses_over_budget_total",
            )

    @property
    def installed(self) -> bool:
        return self._installed

    def hold(self) -> None:
        """Set the thresholds now (no automatic full collection), before the gateway is ready: at
        start-up every object made lives on, and full collections over the growing heap only
        scanned it (about a second of CPU at 50,000 tags)."""
        if self._saved is None:
            self._saved = gc.get_threshold()
        gc.set_threshold(*self.settings.thresholds)

    def install(self) -> None:
        """Freeze everything alive now, set the thresholds, start recording collections."""
        if self._installed:
            return
        self.hold()
        self._installed = True
        gc.callbacks.append(self._callback)
        gc.collect(1)  # young garbage of the start-up is not frozen with the rest
        gc.freeze()
        self.stats.freezes += 1
        self.stats.frozen = gc.get_freeze_count()
        self.stats.blocks = self._after_sweep = sys.getallocatedblocks()
        self._last_sweep = self._last_count = self._clock()
        log.info("gc_policy_installed", frozen=self.stats.frozen, thresholds=list(self.settings.thresholds))

    def serve(self, tasks: asyncio.TaskGroup | None = None) -> None:
        """``install``, then run the loop (task ``gc:policy``, supervised, in *tasks* if given)."""
        self.install()
        if self._task is None:
            self._task = start_supervised(self.run, name="gc:policy", tasks=tasks)

    async def stop(self) -> None:
        """End the loop (if it runs) and ``uninstall``."""
        try:
            await cancel_and_wait(self._task)
        finally:
            self._task = None
            self.uninstall()

    def uninstall(self) -> None:
        """Thresholds back as they were, no more recording (frozen objects stay frozen)."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
        self._installed = False
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    # -- the loop ----------------------------------------------------------------------------
    def step(self) -> Action:
        """One check: settle the old generation, and sweep when the frozen set grew (see the module docstring)."""
        action = decide(sum(len(gc.get_objects(generation=g)) for g in range(3)), self.settings)  # what a full pass would scan
        if action is Action.COLLECT_AND_FREEZE:
            gc.collect(2)
        elif action is Action.FREEZE:
            gc.collect(1)
        if action is not Action.NOTHING:
            gc.freeze()
            self.stats.freezes += 1
        now = self._clock()
        if now - self._last_count >= self.settings.sweep_check_s:
            self._last_count = now
            self.stats.blocks = sys.getallocatedblocks()
            if sweep_due(self.stats.blocks, self._after_sweep, now - self._last_sweep, self.settings):
                self.sweep()
        return action

    def sweep(self) -> int:
        """Unfreeze, collect everything once, freeze again; the unreachable objects found."""
        before = self.stats.blocks
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        seconds = time.perf_counter() - started
        self.stats.sweeps += 1
        self.stats.freezes += 1
        self.stats.frozen = gc.get_freeze_count()
        self.stats.blocks = self._after_sweep = sys.getallocatedblocks()
        self._last_sweep = self._last_count = self._clock()
        log.info("gc_sweep", seconds=round(seconds, 3), unreachable=found, blocks_before=before, blocks_after=self.stats.blocks, frozen=self.stats.frozen)
        return found

    async def run(self) -> None:
        """``step`` every ``check_s`` (task ``gc:policy``, supervised by the daemon)."""
        while True:
            await asyncio.sleep(self.settings.check_s)
            self.step()


@contextlib.asynccontextmanager
async def gateway_gc(settings: GcSettings | None = None) -> AsyncIterator[GcPolicy]:
    """The daemon's policy (``edge.app``): entered first thing at start-up, it holds automatic
    full collections off (``hold``); the daemon calls ``serve`` once it is ready. On exit the loop
    ends and the thresholds are restored."""
    policy = GcPolicy(settings)
    policy.hold()
    try:
        yield policy
    finally:
        await policy.stop()


@contextlib.asynccontextmanager
async def serving_gc(settings: GcSettings | None = None, *, tasks: asyncio.TaskGroup | None = None) -> AsyncIterator[GcPolicy]:
    """The policy installed and its loop running while the context is entered (tests, embedding)."""
    async with gateway_gc(settings) as policy:
        policy.serve(tasks)
        yield policy


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No collection while building objects that all live on (the registry entries of a device at
    start-up): a collection in between would only scan them. Synchronous code only; left as it
    was if collection was off already."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
