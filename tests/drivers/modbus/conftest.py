"""Fixtures of the Modbus driver tests: a connected TCP driver for each in-process server, and a
server with two units for the shared-bus tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from drivers.modbus import ModbusTcpDriver
from tests.drivers.mini_server import MiniServer, Unit
from tests.drivers.modbus.reading import tcp_driver
from tests.drivers.modbus_servers import ModbusTestServer, PymodbusServer


@contextlib.asynccontextmanager
async def _connected(port: int) -> AsyncIterator[ModbusTcpDriver]:
    d = tcp_driver(port)
    await d.connect()
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
async def driver(modbus_server: ModbusTestServer) -> AsyncIterator[ModbusTcpDriver]:
    """A connected driver for ``modbus_server`` (so once per server implementation)."""
    async with _connected(modbus_server.port) as d:
        yield d


@pytest.fixture
async def pm_driver(pymodbus_server: PymodbusServer) -> AsyncIterator[ModbusTcpDriver]:
    """A connected driver for the pymodbus server alone."""
    async with _connected(pymodbus_server.port) as d:
        yield d


@pytest.fixture
async def two_units(free_port: int) -> AsyncIterator[MiniServer]:
    """A MiniServer on free_port with units 1 and 2."""
    server = MiniServer(free_port, {1: Unit(), 2: Unit()})
    async with server:
        yield server
