"""The Modbus TCP driver on a shared bus under the gateway's supervisor (poll rate, staleness, a
server restart), and a cancellation swallowed below the driver. The bus itself: ``test_bus.py``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import ClassVar

from structlog.testing import capture_logs

from drivers.modbus import ModbusTcpDriver
from drivers.sample import Status
from edge.core.backoff import Backoff
from tests.drivers.mini_server import MiniServer, Unit
from tests.drivers.modbus.reading import gateway_driver, pt
from tests.drivers.modbus.supervised import runner_for, until


def fast_backoff() -> Backoff:
    return Backoff(0.05, 0.2, jitter=0.0)


# -- through the supervisor: poll rate, staleness, server restart -----------------------------------------


async def test_live_unit_keeps_its_poll_rate_while_the_other_goes_uncertain_then_bad(two_units: MiniServer) -> None:
    """Unit 2 stops answering on a shared gateway: unit 1 is still polled at (most of) its rate;
    unit 2's tag keeps its last value as Uncertain (old source time), goes Bad after stale_after_s,
    and is Good again once the unit answers."""
    poll_s, window_s = 0.02, 1.2
    two_units.units[1].hr[0], two_units.units[2].hr[0] = 1, 2
    d = gateway_driver(two_units.port, timeout_s=0.1, demote_after=2, demote_for_s=0.5)
    live, dead = pt("gw.live", "hr:0", unit_id=1), pt("gw.dead", "hr:0", unit_id=2)
    runner, reg = runner_for(d, [live, dead], poll_s=poll_s, backoff=fast_backoff(), stale_after_s=0.4)
    seen: list[tuple[int, object]] = []
    reg.subscribe(lambda batch: seen.extend((s.status, s.value) for s in batch if s.tag == "gw.dead"))
    task = asyncio.create_task(runner.run(), name="poll:gw")
    try:
        with capture_logs() as logs:
            await until(lambda: reg.latest("gw.dead").status == Status.Good)
            good = reg.latest("gw.dead")
            two_units.units[2].silent = True
            await until(lambda: reg.latest("gw.dead").status == Status.UncertainNoCommunicationLastUsableValue)
            uncertain = reg.latest("gw.dead")
            await until(lambda: d.units.demoted() == [2])  # after its re-sends and misses
            before = two_units.units[1].requests
            started = time.monotonic()
            await asyncio.sleep(window_s)
            rate = (two_units.units[1].requests - before) / (time.monotonic() - started)
            assert reg.latest("gw.dead").status in (Status.BadTimeout, Status.BadNoCommunication)
            assert reg.latest("gw.dead").value is None
            two_units.units[2].silent = False
            await until(lambda: reg.latest("gw.dead").status == Status.Good)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (uncertain.value, uncertain.source_time) == (2, good.source_time)
    # nominal 50 polls/s; without demotion every cycle would wait out a 0.1 s timeout (< 10/s)
    assert rate >= 0.5 / poll_s, f"live unit polled at {rate:.1f}/s"
    assert reg.latest("gw.live").status == Status.Good
    events = [e["event"] for e in logs if e["event"].startswith(("modbus_unit", "device_"))]
    assert events == ["modbus_unit_unreachable", "modbus_unit_recovered"]


async def test_server_killed_and_restarted_through_the_supervisor(free_port: int) -> None:
    """The link is lost: tags go Uncertain, one device_unreachable; after a restart they are Good, one device_reconnected."""
    server = MiniServer(free_port, {1: Unit()})
    await server.start()
    server.units[1].hr[0] = 42
    d = gateway_driver(free_port, timeout_s=0.1)
    runner, reg = runner_for(d, [pt("gw.x", "hr:0")], poll_s=0.02, backoff=fast_backoff(), stale_after_s=30)
    task = asyncio.create_task(runner.run(), name="poll:gw")
    try:
        with capture_logs() as logs:
            await until(lambda: reg.latest("gw.x").value == 42)
            await server.stop()
            await until(lambda: reg.latest("gw.x").status == Status.UncertainNoCommunicationLastUsableValue)
            assert reg.latest("gw.x").value == 42
            await asyncio.sleep(0.3)  # several failed reconnects
            server = MiniServer(free_port, {1: Unit()})
            server.units[1].hr[0] = 43
            await server.start()
            await until(lambda: reg.latest("gw.x").value == 43)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    events = [e["event"] for e in logs if e["event"].startswith("device_")]
    assert events == ["device_unreachable", "device_reconnected"]
    assert reg.latest("gw.x").status == Status.Good


class _Response:
    registers: ClassVar[list[int]] = [0]

    def isError(self) -> bool:
        return False


class _SwallowingClient:
    """A client whose request returns a response although its task was cancelled (asyncio.wait_for
    on Python 3.11 when the response arrives in the same loop iteration as the cancel)."""

    connected = True

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def connect(self) -> bool:
        return True

    async def read_holding_registers(self, address: int, *, count: int, device_id: int):
        self.waiting.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return _Response()

    read_coils = read_discrete_inputs = read_input_registers = read_holding_registers

    def close(self) -> None:
        self.connected = False


async def test_a_cancellation_swallowed_below_the_driver_is_raised_again() -> None:
    client = _SwallowingClient()

    class Driver(ModbusTcpDriver):
        def _new_client(self):
            return client

    d = Driver(name="gw", host="127.0.0.1", timeout_s=5.0)
    await d.connect()
    task = asyncio.create_task(d.read([pt("a", "hr:0")]), name="read")
    async with asyncio.timeout(1):
        await client.waiting.wait()
    task.cancel()
    async with asyncio.timeout(1):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await d.close()
