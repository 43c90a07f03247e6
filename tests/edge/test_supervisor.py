"""Supervisor: reconnect with backoff, stale marking, outages logged once, writes routed."""

from __future__ import annotations

import asyncio

import structlog
from structlog.testing import capture_logs

from drivers.base import LinkState
from drivers.sample import Status
from edge.backoff import Backoff
from edge.registry import TagInfo, TagRegistry
from edge.supervisor import DeviceRunner, Supervisor
from tests.fakes import FakeDriver, FakePoint


def _runner(script: list[str], *, default: str = "ok") -> tuple[DeviceRunner, FakeDriver, TagRegistry]:
    reg = TagRegistry()
    points = [FakePoint("a"), FakePoint("b")]
    for p in points:
        reg.add(TagInfo(f"plc.{p.name}", ("Devices", "plc", p.name), device="plc", writable=True))
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
        try:
            await task
        except asyncio.CancelledError:
            pass


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
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled() and driver.closes == 1 and runner.health.link_state == LinkState.CLOSED


async def test_writes_are_routed_to_the_owner_and_refused_when_link_is_down() -> None:
    runner, driver, _ = _runner([])
    sup = Supervisor([runner])
    assert await sup.write("plc.a", 1.0) == Status.BadNoCommunication  # not connected yet
    await _run_until(runner, lambda: driver.reads >= 1)
    runner.health.link_state = LinkState.CONNECTED
    assert await sup.write("plc.a", 2.0) == Status.Good
    assert driver.writes == [("a", 2.0)]
    assert await sup.write("other.x", 1.0) == Status.BadNotWritable
