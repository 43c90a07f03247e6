"""Supervisor: reconnect with backoff, stale marking, outages logged once, writes routed."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from structlog.testing import capture_logs

from drivers.base import LinkState, ReadResult
from drivers.sample import Status, TagSample
from edge.core.backoff import Backoff
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner, Supervisor
from tests.fakes import FakeDriver, FakePoint


def _runner(script: list[str], *, default: str = "ok") -> tuple[DeviceRunner, FakeDriver, TagRegistry]:
    reg = TagRegistry()
    points = [FakePoint("plc.a"), FakePoint("plc.b")]
    for p in points:
        reg.add(TagInfo(p.name, ("Devices", *p.name.split(".")), device="plc", writable=True))
    driver = FakeDriver("plc", script, default=default)
    runner = DeviceRunner("plc", driver, points, reg, poll_interval_s=0.001, backoff=Backoff(0.001, 0.004, jitter=0.0))
    for info in runner.health.infos():
        reg.add(info)
    return runner, driver, reg


async def _run_until(runner: DeviceRunner, cond, timeout: float = 2.0) -> None:
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    b = Backoff(0.5, 4.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_backoff_jitter_stays_within_bounds() -> None:
    b = Backoff(1.0, 1.0, jitter=0.25)
    delays = [b.next_delay() for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays) and len(set(delays)) > 1


async def test_outage_marks_tags_stale_logs_once_and_recovery_logs_once() -> None:
    """connect ok, 2 reads, 3 failures (read, connect, connect), then recovery."""
    runner, driver, reg = _runner(["ok", "ok", "ok", "down", "down", "down", "ok"])
    seen_uncertain = []
    reg.subscribe(lambda b: seen_uncertain.extend(s.status for s in b if s.tag == "plc.a"))
    with capture_logs() as logs:
        await _run_until(runner, lambda: driver.reads >= 4)
    events = [e["event"] for e in logs]
    assert events.count("device_unreachable") == 1
    assert events.count("device_reconnected") == 1
    assert Status.UncertainNoCommunicationLastUsableValue in seen_uncertain
    assert reg.latest("plc.a").status == Status.Good
    assert runner.health.reconnects == 1 and runner.health.reads_failed == 3
    assert driver.closes >= 3  # closed after each failure and on cancellation


async def test_a_device_down_from_the_start_goes_bad_no_communication() -> None:
    runner, driver, reg = _runner([], default="down")
    await _run_until(runner, lambda: driver.connects >= 3)
    assert reg.latest("plc.a").status == Status.BadNoCommunication
    assert reg.latest("_diag.plc.LinkState").value in (LinkState.DISCONNECTED.value, LinkState.CLOSED.value)


async def test_cancellation_is_not_swallowed_and_closes_the_driver() -> None:
    runner, driver, _ = _runner([], default="hang")
    task = asyncio.create_task(runner.run(), name="poll:plc")
    await driver.step_event.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled() and driver.closes == 1 and runner.health.link_state == LinkState.CLOSED


async def test_writes_are_routed_to_the_owner_and_refused_when_link_is_down() -> None:
    runner, driver, _ = _runner([])
    sup = Supervisor([runner])
    assert await sup.write("plc.a", 1.0) == Status.BadNoCommunication  # not connected yet
    await _run_until(runner, lambda: driver.reads >= 1)
    runner.health.link_state = LinkState.CONNECTED
    assert await sup.write("plc.a", 2.0) == Status.Good
    assert driver.writes == [("plc.a", 2.0)]
    assert await sup.write("other.x", 1.0) == Status.BadNotWritable


# -- scan groups and the stale policy ------------------------------------------------------------------


class RecordingDriver(FakeDriver):
    """FakeDriver that records which points each read asked for and can fail single points."""

    def __init__(self, name: str, script: list[str] | None = None, *, failing: dict[str, Status] | None = None) -> None:
        super().__init__(name, script or [])
        self.asked: list[tuple[str, ...]] = []
        self.failing = failing or {}

    async def read(self, points):  # type: ignore[override]
        result = await super().read(points)
        self.asked.append(tuple(p.name.split(".", 1)[1] for p in points))
        not_fetched: dict[int, list[str]] = {}
        for s in result.samples:
            if s.tag in self.failing:
                not_fetched.setdefault(self.failing[s.tag], []).append(s.tag)
        return ReadResult([s for s in result.samples if s.tag not in self.failing], not_fetched)


def _registry(names: list[str]) -> TagRegistry:
    reg = TagRegistry()
    for n in names:
        reg.add(TagInfo(f"plc.{n}", ("Devices", "plc", n), device="plc"))
    return reg


async def _run(runner: DeviceRunner, seconds: float) -> None:
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        await asyncio.sleep(seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_scan_groups_due_together_share_one_read() -> None:
    """a every 20 ms, b and c every 40 ms: b and c are only ever read together with a."""
    names = ["a", "b", "c"]
    reg = _registry(names)
    driver = RecordingDriver("plc")
    runner = DeviceRunner(
        "plc", driver, [FakePoint(f"plc.{n}") for n in names], reg, poll_interval_s=1.0, backoff=Backoff(0.01, 0.01), intervals=[0.02, 0.04, 0.04]
    )
    for info in runner.health.infos():
        reg.add(info)
    await _run(runner, 0.4)
    assert set(driver.asked) <= {("a", "b", "c"), ("a",), ("b", "c")}  # b and c are one group
    together = driver.asked.count(("a", "b", "c"))
    alone = driver.asked.count(("a",))
    assert together >= 3 and alone >= 3
    # every other slot of a is a slot of b and c; only an overrun on a loaded machine (which
    # skips a missed slot) can make them come due apart
    assert driver.asked.count(("b", "c")) <= max(1, together // 4)


def test_one_poll_interval_per_point_is_required() -> None:
    with pytest.raises(ValueError, match="2 poll intervals for 1 points"):
        DeviceRunner("plc", FakeDriver("plc", []), [FakePoint("plc.a")], TagRegistry(), poll_interval_s=1, backoff=Backoff(), intervals=[1, 2])


async def test_unit_not_answering_keeps_last_value_uncertain_then_bad_after_stale_limit() -> None:
    """A point the driver could not fetch (BadTimeout) keeps its last value as Uncertain with the old
    source time, goes Bad after stale_after_s, and is Good again on the next good read."""
    reg = _registry(["a", "b"])
    driver = RecordingDriver("plc")
    runner = DeviceRunner("plc", driver, [FakePoint("plc.a"), FakePoint("plc.b")], reg, poll_interval_s=0.01, backoff=Backoff(0.01, 0.01), stale_after_s=0.15)
    for info in runner.health.infos():
        reg.add(info)
    seen: list[tuple[int, object]] = []
    reg.subscribe(lambda batch: seen.extend((s.status, s.value) for s in batch if s.tag == "plc.a"))
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        async with asyncio.timeout(3):
            while reg.latest("plc.a").status != Status.Good:
                await asyncio.sleep(0.005)
            good = reg.latest("plc.a")
            driver.failing["plc.a"] = Status.BadTimeout
            while reg.latest("plc.a").status != Status.UncertainNoCommunicationLastUsableValue:
                await asyncio.sleep(0.005)
            uncertain = reg.latest("plc.a")
            while reg.latest("plc.a").status != Status.BadTimeout:
                await asyncio.sleep(0.005)
            bad_at = reg.latest("plc.a").server_time
            del driver.failing["plc.a"]
            while reg.latest("plc.a").status != Status.Good:
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert uncertain.source_time == good.source_time
    assert uncertain.value is not None and uncertain.value <= good.value + 1  # the last usable value
    assert (bad_at - good.source_time).total_seconds() >= 0.15
    assert reg.latest("plc.b").status == Status.Good
    statuses = [st for st, _ in seen]
    assert statuses.count(Status.UncertainNoCommunicationLastUsableValue) == 1  # published once, not every cycle
    assert statuses.count(Status.BadTimeout) == 1


async def test_lost_link_goes_bad_after_stale_limit_during_backoff() -> None:
    """While the supervisor backs off (2 s here), the stale policy is applied again, so the last
    value goes Bad stale_after_s after it was read rather than at the next reconnect attempt."""
    reg = _registry(["a"])
    driver = RecordingDriver("plc", ["ok", "ok"])
    driver.default = "down"
    runner = DeviceRunner("plc", driver, [FakePoint("plc.a")], reg, poll_interval_s=0.01, backoff=Backoff(2.0, 2.0, jitter=0.0), stale_after_s=0.1)
    for info in runner.health.infos():
        reg.add(info)
    statuses: list[int] = []
    reg.subscribe(lambda batch: statuses.extend(s.status for s in batch if s.tag == "plc.a"))
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        async with asyncio.timeout(1.0):
            while reg.latest("plc.a").status != Status.BadNoCommunication:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert statuses == [Status.Good, Status.UncertainNoCommunicationLastUsableValue, Status.BadNoCommunication]
    assert driver.connects == 1  # still in the first backoff


class SwallowingDriver(FakeDriver):
    """A driver whose read swallows a cancellation, as asyncio.wait_for does on Python 3.11 when
    the awaited future completes in the same loop iteration as the cancel."""

    async def read(self, points):  # type: ignore[override]
        self.step_event.set()
        try:  # noqa: SIM105 (spelled out: swallowing the cancel is the behaviour under test)
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # the response "arrived": return it instead of raising
        return await super().read(points)


async def test_a_swallowed_cancellation_still_stops_the_poll_task() -> None:
    reg = _registry(["a"])
    driver = SwallowingDriver("plc", [])
    runner = DeviceRunner("plc", driver, [FakePoint("plc.a")], reg, poll_interval_s=0.01, backoff=Backoff(0.01, 0.01))
    for info in runner.health.infos():
        reg.add(info)
    task = asyncio.create_task(runner.run(), name="poll:plc")
    await driver.step_event.wait()
    task.cancel()
    async with asyncio.timeout(1):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and driver.closes == 1


async def test_health_counters_are_published_at_most_once_a_second_and_only_when_changed() -> None:
    """Hundreds of poll cycles within a second publish the counters once (after the first cycle),
    besides the publishes that go with each link-state change (connecting, connected, closed); a
    leaf whose value did not change is not published again."""
    runner, driver, reg = _runner([])
    published: list[str] = []
    reg.subscribe(lambda batch: published.extend(s.tag for s in batch if s.tag.startswith("_diag.")))
    started = time.monotonic()
    await _run_until(runner, lambda: driver.reads >= 200)
    extra_seconds = int(time.monotonic() - started)  # on a slow machine: one more publish per second
    assert driver.reads >= 200
    # 0 when connecting, 1 after the first cycle, N at close
    assert 3 <= published.count("_diag.plc.ReadsOk") <= 3 + extra_seconds
    assert published.count("_diag.plc.Reconnects") == 1  # once, with its first value; never changed since
    assert published.count("_diag.plc.LinkState") == 3  # connecting, connected, closed


async def test_samples_from_the_driver_are_published_as_they_are() -> None:
    """The registry holds the very sample objects the driver built: no copy on the way."""
    runner, driver, reg = _runner([])
    built: list[TagSample] = []
    original = driver.read

    async def read(points):
        result = await original(points)
        built.extend(result.samples)
        return result

    driver.read = read  # type: ignore[method-assign]
    await _run_until(runner, lambda: driver.reads >= 3)
    assert reg.latest("plc.a") is next(s for s in reversed(built) if s.tag == "plc.a")


@pytest.mark.parametrize("first_connect", ["ok", "down"], ids=["connected", "refused"])
async def test_started_is_set_by_the_first_connect_attempt_whatever_its_outcome(first_connect: str) -> None:
    """``started`` (service readiness) waits for the first connect attempt, not for a working link."""
    runner, _, _ = _runner([first_connect], default="hang")  # then hang: no second attempt completes
    assert not runner.started.is_set()
    await _run_until(runner, runner.started.is_set)


async def test_started_stays_unset_while_the_first_connect_hangs() -> None:
    runner, driver, _ = _runner(["hang"])
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        await driver.step_event.wait()
        await asyncio.sleep(0.05)
        assert not runner.started.is_set()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_counters_for_metrics_poll_cycles_requests_and_errors() -> None:
    """Every returned poll cycle is timed into the histogram; requests are the driver's own count
    when it keeps one (``requests_sent``), else the poll cycles; errors are the failed cycles and
    connects, all published to Diagnostics as Requests / ReadsFailed."""
    runner, driver, reg = _runner(["ok", "ok", "ok", "down", "down", "ok"])
    await _run_until(runner, lambda: driver.reads >= 5)
    h = runner.health
    assert h.poll_cycles.count == h.reads_ok >= 4 and h.poll_cycles.sum >= 0
    assert h.poll_cycles.cumulative()[-1][1] == h.poll_cycles.count
    assert h.reads_failed == 2 and h.requests == h.reads_ok + h.reads_failed  # FakeDriver counts no requests
    runner._publish_health()
    assert reg.latest("_diag.plc.Requests").value == h.requests

    class CountingDriver(FakeDriver):
        """Three requests per read, like a Modbus bus reading three blocks."""

        requests_sent = 0

        async def read(self, points):
            self.requests_sent += 3
            return await super().read(points)

    counting = CountingDriver("plc", [])
    counted = DeviceRunner("plc", counting, runner.points, reg, poll_interval_s=0.001, backoff=Backoff(0.001, 0.004, jitter=0.0))
    await _run_until(counted, lambda: counted.health.reads_ok >= 3)
    assert counted.health.requests == 3 * counted.health.reads_ok
