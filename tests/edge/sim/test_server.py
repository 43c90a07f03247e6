"""The simulated plant served over real Modbus TCP (edge.sim.server), read by a pymodbus client.

Registers are decoded here with ``struct``, independently of edge.sim.registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server.base import ModbusBaseServer

from edge.sim.plant import Fault, Plant
from edge.sim.server import PlantServer, serve_plant

UNIT = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def other_tasks() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@contextlib.asynccontextmanager
async def running(**kwargs) -> AsyncIterator[int]:
    """Run serve_plant on a free port; on exit cancel it and check that it shut down cleanly."""
    port = kwargs.pop("port", None) or free_port()
    ready = asyncio.Event()
    before = other_tasks()
    task = asyncio.create_task(serve_plant(port=port, ready=ready, **kwargs), name="test:plant")
    async with asyncio.timeout(5):
        await ready.wait()
    try:
        yield port
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert other_tasks() == before, "serve_plant left tasks behind"
        assert ModbusBaseServer.active_server is None


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[AsyncModbusTcpClient]:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, reconnect_delay=0, timeout=2, retries=0)
    assert await c.connect()
    try:
        yield c
    finally:
        c.close()


# --- independent decoding -------------------------------------------------------------
def i16(reg: int) -> int:
    return struct.unpack(">h", struct.pack(">H", reg))[0]


def f32(hi: int, lo: int) -> float:
    return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]


def u32(hi: int, lo: int) -> int:
    return struct.unpack(">I", struct.pack(">HH", hi, lo))[0]


async def read_inputs(c: AsyncModbusTcpClient) -> dict[str, float]:
    rr = await c.read_input_registers(0, count=20, device_id=UNIT)
    assert not rr.isError(), rr
    r = rr.registers
    return {
        "temp": i16(r[0]) / 10,
        "ambient": i16(r[1]) / 10,
        "level": i16(r[2]) / 10,
        "rpm": i16(r[3]),
        "status": r[4],
        "flow": f32(r[10], r[11]),  # ABCD
        "current": f32(r[13], r[12]),  # CDAB
        "vibration": f32(r[14], r[15]),  # ABCD
        "runtime": u32(r[16], r[17]),  # ABCD
        "volume": u32(r[19], r[18]),  # CDAB
    }


async def wait_for(read: Callable[[], Awaitable[dict[str, float]]], ok: Callable[[dict[str, float]], bool], timeout_s: float = 5.0) -> dict[str, float]:
    async with asyncio.timeout(timeout_s):
        while not ok(values := await read()):
            await asyncio.sleep(0.02)
    return values


# --- tests ---------------------------------------------------------------------------
async def test_registers_hold_the_documented_process_values() -> None:
    """At start the plant sits at the steady state of its default setpoints."""
    async with running() as port, client(port) as c:
        v = await read_inputs(c)
        assert v["temp"] == pytest.approx(36.6, abs=0.6)
        assert v["ambient"] == pytest.approx(20.0, abs=0.6)
        assert v["level"] == pytest.approx(64.0, abs=1.0)
        assert v["rpm"] == pytest.approx(725, abs=10)
        assert v["status"] == 0b00011  # pump running, heater on
        assert v["flow"] == pytest.approx(20.0, abs=1.0)
        assert v["current"] == pytest.approx(1.925, abs=0.25)
        assert v["vibration"] == pytest.approx(0.45, abs=0.15)

        hr = (await c.read_holding_registers(0, count=22, device_id=UNIT)).registers
        assert hr[0:3] == [400, 500, 500]
        assert hr[10] == 0
        assert f32(hr[20], hr[21]) == pytest.approx(60.0)
        assert (await c.read_coils(0, count=2, device_id=UNIT)).bits[:2] == [True, True]
        assert (await c.read_discrete_inputs(0, count=2, device_id=UNIT)).bits[:2] == [False, False]

        beyond = await c.read_input_registers(20, count=1, device_id=UNIT)
        assert beyond.isError() and beyond.exception_code == 2


async def test_setpoint_writes_drive_the_process() -> None:
    async with running(time_scale=20.0, tick_s=0.05) as port, client(port) as c:
        assert not (await c.write_register(1, 1000, device_id=UNIT)).isError()  # pump 100.0 %
        v = await wait_for(lambda: read_inputs(c), lambda v: v["rpm"] > 1440)
        assert v["flow"] == pytest.approx(40.0, abs=1.0)
        assert v["current"] == pytest.approx(6.5, abs=0.3)

        assert not (await c.write_coil(0, False, device_id=UNIT)).isError()  # pump off
        v = await wait_for(lambda: read_inputs(c), lambda v: v["rpm"] == 0)
        assert v["status"] & 0b1 == 0
        assert v["flow"] == 0.0
        runtime = v["runtime"]
        await asyncio.sleep(0.2)
        assert (await read_inputs(c))["runtime"] == runtime  # the counter stops with the pump


async def test_out_of_range_setpoints_are_refused_with_exception_3() -> None:
    async with running() as port, client(port) as c:
        for address, values in [(0, [1001]), (1, [0xFFFF]), (0, [500, 2000]), (10, [7])]:
            rr = await c.write_registers(address, values, device_id=UNIT)
            assert rr.isError() and rr.exception_code == 3, (address, values)
        rr = await c.write_register(5, 1, device_id=UNIT)  # reserved
        assert rr.isError() and rr.exception_code == 2
        rr = await c.write_coil(4, True, device_id=UNIT)
        assert rr.isError() and rr.exception_code == 2
        hr = (await c.read_holding_registers(0, count=11, device_id=UNIT)).registers
        assert hr[0:3] == [400, 500, 500] and hr[10] == 0  # nothing stored, nothing clamped


async def test_fault_register_makes_vibration_rise() -> None:
    """Bearing wear written to hr10 raises vibration within a minute of sim time."""
    with structlog.testing.capture_logs() as logs:
        async with running(time_scale=60.0, tick_s=0.05) as port, client(port) as c:
            base = (await read_inputs(c))["vibration"]
            assert not (await c.write_register(10, int(Fault.BEARING_WEAR), device_id=UNIT)).isError()
            v = await wait_for(lambda: read_inputs(c), lambda v: v["vibration"] > base + 0.3)
            assert v["status"] & 0b100
            assert v["current"] > 1.925
    injected = [e for e in logs if e["event"] == "fault_injected"]
    assert injected and injected[0]["fault"] == "bearing_wear" and injected[0]["previous"] == "none"
    started = [e for e in logs if e["event"] == "plant_started"]
    assert started
    assert (started[0]["host"], started[0]["port"], started[0]["unit_id"]) == ("127.0.0.1", port, 1)


async def test_fault_selected_at_start_is_visible_in_the_registers() -> None:
    async with running(fault=Fault.STUCK_SENSOR, tick_s=0.02, time_scale=30.0) as port, client(port) as c:
        hr = (await c.read_holding_registers(10, count=1, device_id=UNIT)).registers
        assert hr == [int(Fault.STUCK_SENSOR)]
        first = await read_inputs(c)
        await asyncio.sleep(0.2)
        later = await read_inputs(c)
        assert first["status"] & 0b100
        assert later["temp"] == first["temp"]
        assert later["level"] != first["level"] or later["ambient"] != first["ambient"]  # others stay noisy


async def test_tick_task_is_named_and_can_be_restarted_many_times() -> None:
    ports = [free_port() for _ in range(4)]
    for port in ports + ports[:1]:  # the last run reuses a port that was just released
        async with running(port=port, tick_s=0.02) as p, client(p) as c:
            assert any(t.get_name() == "plant:tick" for t in asyncio.all_tasks())
            assert not (await c.read_input_registers(0, count=5, device_id=UNIT)).isError()


async def test_cancelling_with_a_client_still_connected_closes_it() -> None:
    c = None
    async with running() as port:
        c = AsyncModbusTcpClient("127.0.0.1", port=port, reconnect_delay=0, timeout=1, retries=0)
        assert await c.connect()
        assert not (await c.read_input_registers(0, count=1, device_id=UNIT)).isError()
    await asyncio.sleep(0.05)
    assert not c.connected
    c.close()


async def test_busy_port_raises_oserror() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        ready = asyncio.Event()
        with pytest.raises(OSError, match=str(port)):
            await serve_plant(port=port, ready=ready)
        assert not ready.is_set()
    assert ModbusBaseServer.active_server is None


async def test_port_zero_and_plant_access_through_plant_server() -> None:
    plant = Plant(seed=5)
    server = PlantServer(plant, port=0, tick_s=0.02, time_scale=10.0)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    try:
        async with asyncio.timeout(5):
            await ready.wait()
        assert server.port != 0
        async with client(server.port) as c:
            assert not (await c.write_register(0, 0, device_id=UNIT)).isError()  # heater 0 %
            await wait_for(lambda: read_inputs(c), lambda v: plant.heater_pct == 0.0)
            assert plant.heater_pct == 0.0 and server.ticks > 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("kwargs", [{"tick_s": 0.0}, {"time_scale": -1.0}, {"unit_id": 0}, {"port": 70000}])
async def test_bad_arguments_fail_before_any_io(kwargs) -> None:
    with pytest.raises(ValueError):
        await serve_plant(**kwargs)


async def test_a_failing_tick_closes_the_server_and_propagates() -> None:
    plant = Plant()

    def broken_step(dt_s: float) -> None:
        raise RuntimeError("boom")

    plant.step = broken_step  # type: ignore[method-assign]
    server = PlantServer(plant, port=0, tick_s=0.01)
    with structlog.testing.capture_logs() as logs, pytest.raises(ExceptionGroup) as info:
        await server.run()
    assert info.group_contains(RuntimeError, match="boom")
    assert any(e["event"] == "plant_tick_failed" for e in logs)
    assert ModbusBaseServer.active_server is None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0  # nothing listens any more
