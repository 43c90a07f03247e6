"""ModbusTcpDriver's link against real in-process servers: connect, outages, reconnection, timeouts,
the shared lock, the logger (tests that take ``modbus_server`` run once per server implementation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import structlog
from structlog.testing import capture_logs

from drivers.base import DriverUnavailable, LinkState
from drivers.modbus import ModbusTcpDriver
from drivers.modbus.address import Area
from drivers.sample import Status
from tests.drivers.fault_proxy import HalfOpenDevice
from tests.drivers.modbus.reading import TIMEOUT_S, pt, read_all
from tests.drivers.modbus_servers import ModbusTestServer, PymodbusServer

# -- link state, outages and reconnection -----------------------------------------------------------------


async def test_connect_refused_raises_driver_unavailable(free_port: int) -> None:
    d = ModbusTcpDriver(name="plc1", host="127.0.0.1", port=free_port, timeout_s=TIMEOUT_S)
    with pytest.raises(DriverUnavailable, match=f"cannot connect to 127.0.0.1:{free_port}"):
        await d.connect()
    assert d.state is LinkState.DISCONNECTED
    with pytest.raises(DriverUnavailable, match="not connected"):
        await read_all(d, [pt("x", "hr:0")])
    await d.close()
    assert d.state is LinkState.CLOSED


async def test_server_stopped_then_restarted(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """A stopped server makes read raise DriverUnavailable (link closed); after a restart connect and read work."""
    p = pt("x", "hr:3")
    await modbus_server.set(Area.HOLDING, 3, [33])
    assert (await read_all(driver, [p]))[0].value == 33
    await modbus_server.stop()
    with pytest.raises(DriverUnavailable):
        await read_all(driver, [p])
    assert driver.state is LinkState.DISCONNECTED
    with pytest.raises(DriverUnavailable):
        await read_all(driver, [p])  # stays down until the supervisor reconnects
    with pytest.raises(DriverUnavailable):
        await driver.connect()  # nobody listening yet
    await driver.close()
    assert driver.state is LinkState.CLOSED

    await modbus_server.start()
    await modbus_server.set(Area.HOLDING, 3, [34])
    await driver.connect()
    assert driver.state is LinkState.CONNECTED
    (sample,) = await read_all(driver, [p])
    assert (sample.value, sample.status) == (34, Status.Good)


async def test_write_after_link_loss(pymodbus_server: PymodbusServer, pm_driver: ModbusTcpDriver) -> None:
    """A write on a dropped link returns a status instead of raising; the next read raises."""
    await pymodbus_server.stop()
    status = await pm_driver.write(pt("w", "hr:0", writable=True), 1)
    assert status in (Status.BadNotConnected, Status.BadNoCommunication, Status.BadTimeout)
    with pytest.raises(DriverUnavailable):
        await read_all(pm_driver, [pt("x", "hr:0")])


async def test_connect_is_idempotent_while_connected(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    await driver.connect()
    assert driver.state is LinkState.CONNECTED
    assert (await read_all(driver, [pt("x", "hr:0")]))[0].status == Status.Good


async def test_close_is_idempotent(modbus_server: ModbusTestServer) -> None:
    d = ModbusTcpDriver(name="plc1", host="127.0.0.1", port=modbus_server.port, timeout_s=TIMEOUT_S)
    await d.close()  # never connected
    await d.connect()
    await d.close()
    await d.close()
    assert d.state is LinkState.CLOSED
    with pytest.raises(DriverUnavailable):
        await read_all(d, [pt("x", "hr:0")])
    await d.connect()  # a closed driver can be opened again by its owner
    assert (await read_all(d, [pt("x", "hr:0")]))[0].status == Status.Good
    await d.close()


@pytest.fixture
async def silent_server(free_port: int) -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    async with HalfOpenDevice(free_port) as device:
        yield device.port


async def test_timeout_closes_link_and_raises(silent_server: int) -> None:
    """No response within timeout_s in reopen_after cycles: read raises DriverUnavailable promptly and the link is closed."""
    d = ModbusTcpDriver(name="plc1", host="127.0.0.1", port=silent_server, timeout_s=0.2, retries=0, reopen_after=1)
    await d.connect()
    started = time.monotonic()
    with pytest.raises(DriverUnavailable, match="timeout"):
        await read_all(d, [pt("x", "hr:0")])
    assert time.monotonic() - started < 1.0
    assert d.state is LinkState.DISCONNECTED
    assert await d.write(pt("w", "hr:0", writable=True), 1) == Status.BadNotConnected
    await d.close()


async def test_write_timeout_returns_bad_timeout(silent_server: int) -> None:
    """A write that times out returns BadTimeout; the unit's miss is counted, and the next read,
    on which no unit answers either, reports the link as lost."""
    d = ModbusTcpDriver(name="plc1", host="127.0.0.1", port=silent_server, timeout_s=0.2, reopen_after=1)
    await d.connect()
    assert await d.write(pt("w", "hr:0", writable=True), 1) == Status.BadTimeout
    assert d.units.failing(1)
    with pytest.raises(DriverUnavailable, match="no unit answered in 1 poll cycle "):
        await read_all(d, [pt("x", "hr:0")])
    assert d.state is LinkState.DISCONNECTED
    await d.close()


async def test_concurrent_reads_and_writes_share_the_link(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """Reads and writes from several tasks are serialised on the one connection."""
    w = pt("w", "hr:80", writable=True)
    r = pt("r", "hr:81")
    await modbus_server.set(Area.HOLDING, 81, [5])
    async with asyncio.TaskGroup() as tg:
        reads = [tg.create_task(driver.read([r]), name=f"read{i}") for i in range(5)]
        writes = [tg.create_task(driver.write(w, i), name=f"write{i}") for i in range(5)]
    assert all(t.result().samples[0].value == 5 for t in reads)
    assert all(t.result() == Status.Good for t in writes)
    assert (await modbus_server.get(Area.HOLDING, 80, 1))[0] in range(5)


async def test_injected_logger_keeps_its_context(modbus_server: ModbusTestServer) -> None:
    """A logger passed in is bound with device and driver; its own context is kept."""
    log = structlog.get_logger("x").bind(site="north")
    d = ModbusTcpDriver(name="plc9", host="127.0.0.1", port=modbus_server.port, timeout_s=TIMEOUT_S, log=log)
    await d.connect()
    with capture_logs() as logs:
        await read_all(d, [pt("missing", "hr:900")])
    await d.close()
    assert [(e["event"], e["site"], e["device"]) for e in logs] == [("modbus_exception", "north", "plc9")]
