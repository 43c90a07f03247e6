"""Driver fixtures: in-process Modbus servers and a thread-leak check.

``modbus_server`` is parametrized over the two server implementations in ``modbus_servers``, so
every driver test that uses it runs against both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.drivers.modbus_servers import SERVER_KINDS, ModbusTestServer, PymodbusServer


@pytest.fixture(params=sorted(SERVER_KINDS))
async def modbus_server(request: pytest.FixtureRequest, free_port: int) -> AsyncIterator[ModbusTestServer]:
    """A running server on 127.0.0.1:free_port, once per implementation."""
    server = SERVER_KINDS[request.param](free_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def pymodbus_server(free_port: int) -> AsyncIterator[PymodbusServer]:
    """The pymodbus server alone (it can report the function codes it received)."""
    server = PymodbusServer(free_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running (pyModbusTCP serves from threads)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if extra:
        pytest.fail(f"test leaked threads: {sorted(t.name for t in extra)}")
