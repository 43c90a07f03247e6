"""Modbus on lossy and slow links, through the fault-injection proxy (tests/drivers/fault_proxy.py).

The gateway's own poll loop (DeviceRunner) polls a MiniServer through the proxy, which drops,
delays, truncates, corrupts and duplicates frames with a fixed seed. Loss rates and durations are
chosen so that each assertion holds with a wide margin (the same seed gives the same decisions).
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from structlog.testing import capture_logs

from drivers.modbus import ModbusTcpDriver
from drivers.modbus.address import RegisterPoint, make_point
from drivers.sample import Status
from edge.core.backoff import Backoff
from edge.core.reconnect import ReconnectPolicy
from tests.drivers.fault_proxy import FaultProxy, Faults, HalfOpenDevice
from tests.drivers.lossy_run import run_lossy
from tests.drivers.mini_server import MiniServer, Unit
from tests.drivers.modbus.supervised import runner_for, until


def pt(name: str, address: str, type_: str = "uint16", unit_id: int = 1, **kw) -> RegisterPoint:
    return make_point(name=f"gw.{name}", address=address, type=type_, unit_id=unit_id, **kw)


# -- the goals, measured -----------------------------------------------------------------------------------


async def test_five_percent_loss_on_one_unit_with_the_defaults(free_port: int) -> None:
    """5 % of frames lost each way on a one-unit connection, default settings: the link is never
    reopened, nothing is logged, and at least 95 % of the samples are Good (over ~200 requests)."""
    report = await run_lossy(free_port, Faults(drop=0.05), units=1, seconds=3.0, poll_s=0.03, seed=5)
    assert report.requests >= 150, report.line()
    assert report.proxy.get("requests_dropped", 0) + report.proxy.get("responses_dropped", 0) >= 5, report.proxy
    assert report.connections == 1, report.line()
    assert report.log_lines == 0, report.line()
    assert report.good_pct >= 95.0, report.line()


async def test_twenty_percent_loss_on_three_units(free_port: int) -> None:
    """20 % of frames lost each way, three units with two blocks each: no reconnect, at least 80 %
    Good, and no unit's measurement (its last block) missing for more than 3 poll intervals."""
    poll_s = 0.25
    report = await run_lossy(free_port, Faults(drop=0.2), units=3, seconds=5.0, poll_s=poll_s, seed=1, settings={"timeout_min_s": 0.02})
    assert report.requests >= 150, report.line()
    assert report.connections == 1, report.line()
    assert report.good_pct >= 80.0, report.line()
    assert max(report.longest_gap_s.values()) <= 3 * poll_s, report.line()


@pytest.mark.slow
async def test_twenty_percent_loss_on_three_units_with_the_defaults(free_port: int) -> None:
    """The same at the default settings and a 0.5 s poll, for 30 s."""
    poll_s = 0.5
    report = await run_lossy(free_port, Faults(drop=0.2), units=3, seconds=30.0, poll_s=poll_s, seed=11)
    assert report.connections == 1, report.line()
    assert report.good_pct >= 80.0, report.line()
    assert max(report.longest_gap_s.values()) <= 3 * poll_s, report.line()


async def test_truncated_corrupted_and_duplicated_responses_do_not_drop_the_link(free_port: int, caplog: pytest.LogCaptureFixture) -> None:
    """Responses cut short, with a changed byte or sent twice: each bad one is re-sent or decoded
    to a status, the connection stays up, asyncio never logs a fatal transport error, and
    pymodbus's per-frame error lines are not let through (the driver counts them instead)."""
    faults = Faults(truncate=0.08, corrupt=0.08, duplicate=0.08, direction="responses")
    with caplog.at_level(logging.WARNING):
        report = await run_lossy(free_port, faults, units=1, seconds=2.5, poll_s=0.03, seed=3)
    assert report.proxy.get("responses_truncated", 0) >= 3 and report.proxy.get("responses_duplicated", 0) >= 3, report.proxy
    assert report.connections == 1, report.line()
    assert report.good_pct >= 80.0, report.line()
    noise = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name.startswith(("asyncio", "pymodbus"))]
    assert not noise, noise


# -- status on time ---------------------------------------------------------------------------------------


async def test_blocks_are_published_as_they_arrive(free_port: int) -> None:
    """A fast unit's value is published when it arrives, not when the slow unit's block (0.3 s
    later in the same cycle) ends the cycle."""
    async with MiniServer(free_port, {1: Unit(), 2: Unit(delay_s=0.3)}) as server:
        server.units[1].hr[0], server.units[2].hr[0] = 1, 2
        driver = ModbusTcpDriver(name="gw", host="127.0.0.1", port=free_port)
        runner, reg = runner_for(driver, [pt("fast", "hr:0", unit_id=1), pt("slow", "hr:0", unit_id=2)], poll_s=0.5)
        published: dict[str, list[float]] = {"gw.fast": [], "gw.slow": []}
        reg.subscribe(lambda batch: [published[s.tag].append(time.monotonic()) for s in batch if s.tag in published])
        task = asyncio.create_task(runner.run(), name="poll:gw")
        try:
            await until(lambda: len(published["gw.slow"]) >= 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for fast, slow in zip(published["gw.fast"], published["gw.slow"]):
        assert slow - fast >= 0.25


async def test_a_value_is_never_good_once_older_than_poll_interval_plus_timeout(free_port: int) -> None:
    """Responses stop arriving (all dropped): every value seen Good is younger than poll interval +
    timeout_s (plus 50 ms of timer slack), the value goes Uncertain with its last value, and is
    Good again when responses return."""
    async with MiniServer(free_port, {1: Unit(), 2: Unit()}) as server, FaultProxy(free_port) as proxy:
        server.units[1].hr[0], server.units[2].hr[0] = 10, 20
        driver = ModbusTcpDriver(name="gw", host="127.0.0.1", port=proxy.port, timeout_s=0.3, reopen_after=50)
        poll_s = 0.1
        runner, reg = runner_for(driver, [pt("a", "hr:0", unit_id=1), pt("b", "hr:0", unit_id=2)], poll_s=poll_s)
        limit = poll_s + driver.timeout_s + 0.05
        worst = 0.0
        statuses: set[int] = set()
        task = asyncio.create_task(runner.run(), name="poll:gw")
        try:
            await until(lambda: reg.latest("gw.a").status == Status.Good)
            proxy.set_faults(Faults(drop=1.0, direction="responses"))
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                s = reg.latest("gw.a")
                statuses.add(s.status)
                if s.status == Status.Good:
                    worst = max(worst, (time.time() - s.source_time.timestamp()))
                await asyncio.sleep(0.01)
            uncertain = reg.latest("gw.a")
            proxy.set_faults(Faults())
            await until(lambda: reg.latest("gw.a").status == Status.Good)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert worst <= limit, f"a Good value was {worst:.3f} s old (limit {limit:.3f} s)"
    assert Status.UncertainNoCommunicationLastUsableValue in statuses
    assert (uncertain.status, uncertain.value) == (Status.UncertainNoCommunicationLastUsableValue, 10)


# -- dead and half-open links, recovery --------------------------------------------------------------------


async def test_a_half_open_device_is_reopened_at_the_backoff_pace_and_logged_once() -> None:
    """A device that accepts connections but never answers: the link is reopened after reopen_after
    silent cycles, at the pace of the backoff (not reset, since no data ever flowed), with one
    device_unreachable line and no device_reconnected."""
    async with HalfOpenDevice() as device:
        driver = ModbusTcpDriver(name="gw", host="127.0.0.1", port=device.port, timeout_s=0.1, reopen_after=3)
        runner, reg = runner_for(driver, [pt("a", "hr:0")], poll_s=0.05, backoff=Backoff(0.2, 5.0, jitter=0.0))
        with capture_logs() as logs:
            task = asyncio.create_task(runner.run(), name="poll:gw")
            try:
                await asyncio.sleep(3.0)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        # each connection: 3 silent cycles of one 0.1 s request (no re-sends to a unit never heard
        # from), then the backoff (0.2, 0.4, 0.8, 1.6 s: not reset, no probe shortcut since the
        # port is open all along)
        assert 2 <= device.connections <= 5, device.connections
        assert device.frames <= 3 * device.connections
    events = [e["event"] for e in logs if e["event"].startswith("device_")]
    assert events == ["device_unreachable"]
    assert reg.latest("gw.a").status in (Status.BadTimeout, Status.BadNoCommunication)  # never read


async def test_tags_are_good_within_two_seconds_of_the_port_opening_after_a_long_outage(free_port: int) -> None:
    """The device is away long enough for the backoff to grow to 4-8 s; the supervisor probes the
    port meanwhile, so tags are Good within 2 s of the device accepting connections again."""
    async with MiniServer(free_port, {1: Unit()}) as server:
        server.units[1].hr[0] = 5
        proxy = FaultProxy(free_port)
        await proxy.start()
        driver = ModbusTcpDriver(name="gw", host="127.0.0.1", port=proxy.port, timeout_s=0.3)
        runner, reg = runner_for(driver, [pt("a", "hr:0")], poll_s=0.1, backoff=Backoff(0.5, 30.0, jitter=0.0))
        runner.reconnect = ReconnectPolicy(runner.backoff, recent_s=0.0)  # no cap: the backoff grows as after a long outage
        task = asyncio.create_task(runner.run(), name="poll:gw")
        try:
            await until(lambda: reg.latest("gw.a").status == Status.Good)
            await proxy.pause()
            await asyncio.sleep(4.5)  # connect attempts after 0.5, 1, 2 s: the next delay is 4 s
            assert reg.latest("gw.a").status != Status.Good
            server.units[1].hr[0] = 6
            await proxy.resume()
            back = time.monotonic()
            await until(lambda: reg.latest("gw.a").value == 6, timeout=5.0)
            recovered_in = time.monotonic() - back
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await proxy.stop()
    assert reg.latest("gw.a").status == Status.Good
    assert recovered_in <= 2.0, f"Good {recovered_in:.2f} s after the port opened"


# -- write then read ---------------------------------------------------------------------------------------


async def test_a_good_write_shows_the_written_value_at_once_as_the_device_holds_it(free_port: int) -> None:
    """After a Good write the registry holds the written value at once (a scaled value rounded to
    the raw integer the device stores), Good and stamped now; a refused write changes nothing."""
    async with MiniServer(free_port, {1: Unit()}) as server:
        point = pt("sp", "hr:10", "int16", scale=0.1, writable=True, low=0, high=100)
        driver = ModbusTcpDriver(name="gw", host="127.0.0.1", port=free_port)
        runner, reg = runner_for(driver, [point], poll_s=10.0)  # no read-back poll within the test
        task = asyncio.create_task(runner.run(), name="poll:gw")
        try:
            await until(lambda: reg.latest("gw.sp").status == Status.Good)
            before = reg.latest("gw.sp")
            assert await runner.write("gw.sp", 42.04) == Status.Good
            after = reg.latest("gw.sp")
            assert server.units[1].hr[10] == 420
            assert (after.value, after.status) == (pytest.approx(42.0), Status.Good)
            assert after.source_time > before.source_time
            assert await runner.write("gw.sp", 120.0) == Status.BadOutOfRange
            assert reg.latest("gw.sp") is after
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_written_value_is_what_the_tag_reads_back() -> None:
    d = ModbusTcpDriver(name="gw", host="127.0.0.1")
    assert d.written_value(make_point(name="c", address="coil:0", type="bool", writable=True), 1) is True
    assert d.written_value(make_point(name="s", address="hr:0", type="string", length=2, writable=True), "ab") == "ab"
    assert d.written_value(make_point(name="f", address="hr:0", type="float32", writable=True), 0.1) == pytest.approx(0.1, rel=1e-7)
    assert d.written_value(make_point(name="i", address="hr:0", type="uint16", scale=0.5, writable=True), 3.3) == 3.5
