"""Supervisor with a subscribing driver: batches pushed, not polled; a lost subscription
reconnects once and subscribes afresh; the stale limit runs from the loss of the link."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.core.backoff import Backoff
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner
from tests.fakes import FakePoint, FakeSubscribingDriver


def _subscribing(stale_after_s: float | None = None, backoff_s: float = 0.001) -> tuple[DeviceRunner, FakeSubscribingDriver, TagRegistry]:
    reg = TagRegistry()
    for n in ("a", "b"):
        reg.add(TagInfo(f"plc.{n}", ("Devices", "plc", n), device="plc"))
    driver = FakeSubscribingDriver("plc")
    points = [FakePoint("plc.a"), FakePoint("plc.b")]
    backoff = Backoff(backoff_s, backoff_s, jitter=0.0)
    runner = DeviceRunner("plc", driver, points, reg, poll_interval_s=0.01, backoff=backoff, stale_after_s=stale_after_s)
    for info in runner.health.infos():
        reg.add(info)
    return runner, driver, reg


async def _until(cond, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.001)


async def test_a_subscribing_driver_is_not_polled_and_its_batches_are_published() -> None:
    runner, driver, reg = _subscribing()
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        await _until(lambda: driver.active == 1)
        old = utcnow() - timedelta(hours=1)
        driver.push([TagSample("plc.a", 1.5, Status.Good, old, utcnow())])
        driver.push([TagSample("plc.b", None, Status.BadSensorFailure, old, utcnow())])
        assert (reg.latest("plc.a").value, reg.latest("plc.a").source_time) == (1.5, old)
        assert reg.latest("plc.b").status == Status.BadSensorFailure
        assert driver.reads == 0 and runner.health.reads_ok == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert driver.closes >= 1


async def test_a_lost_subscription_goes_uncertain_reconnects_once_and_subscribes_afresh() -> None:
    runner, driver, reg = _subscribing()
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        with capture_logs() as logs:
            await _until(lambda: driver.active == 1)
            now = utcnow()
            driver.push([TagSample("plc.a", 1.5, Status.Good, now, now)])
            driver.lose()
            await _until(lambda: driver.subscriptions == 2 and driver.active == 1)
            assert reg.latest("plc.a").status == Status.UncertainNoCommunicationLastUsableValue
            assert reg.latest("plc.a").value == 1.5
            driver.push([TagSample("plc.a", 2.5, Status.Good, utcnow(), utcnow())])
            assert (reg.latest("plc.a").status, reg.latest("plc.a").value) == (Status.Good, 2.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e["event"] for e in logs] == ["device_unreachable", "device_reconnected"]
    assert driver.connects == 2 and driver.closes >= 2


async def test_stale_limit_of_device_timestamps_runs_from_the_loss_of_the_link() -> None:
    """An upstream value unchanged for an hour is still usable when the link drops: Uncertain
    first, Bad stale_after_s after the outage began (not at once because its source time is old)."""
    runner, driver, reg = _subscribing(stale_after_s=0.2, backoff_s=5.0)
    statuses: list[int] = []
    reg.subscribe(lambda batch: statuses.extend(s.status for s in batch if s.tag == "plc.a"))
    task = asyncio.create_task(runner.run(), name="poll:plc")
    try:
        await _until(lambda: driver.active == 1)
        driver.push([TagSample("plc.a", 1.5, Status.Good, utcnow() - timedelta(hours=1), utcnow())])
        driver.lose()
        lost = time.monotonic()
        await _until(lambda: reg.latest("plc.a").status == Status.BadNoCommunication)
        assert time.monotonic() - lost >= 0.15
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert statuses == [Status.Good, Status.UncertainNoCommunicationLastUsableValue, Status.BadNoCommunication]
