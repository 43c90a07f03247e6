"""In-process Modbus TCP servers for driver tests: pymodbus's own and pyModbusTCP's (independent).

Both expose 200 holding registers, 200 input registers, 64 coils and 64 discrete inputs at
addresses 0..N-1; anything beyond answers ILLEGAL_ADDRESS. Both can be stopped and started again
on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pyModbusTCP.server import DataBank, ModbusServer

from drivers.modbus.address import Area

REGISTERS = 200
BITS = 64
_FC_READ = {Area.COIL: 1, Area.DISCRETE_INPUT: 2, Area.HOLDING: 3, Area.INPUT: 4}


class ModbusTestServer(Protocol):
    """What the driver tests need from a server."""

    impl: str
    port: int
    pdus: list[int]  # function codes received (pymodbus only; empty for pyModbusTCP)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def set(self, area: Area, address: int, values: Sequence[int] | Sequence[bool]) -> None: ...
    async def get(self, area: Area, address: int, count: int) -> list[int] | list[bool]: ...


class PymodbusServer:
    """pymodbus 3.16 ModbusTcpServer on a SimDevice (the non-deprecated datastore)."""

    impl = "pymodbus"

    def __init__(self, port: int) -> None:
        self.port = port
        self.pdus: list[int] = []
        self._server: ModbusTcpServer | None = None

    def _device(self) -> SimDevice:
        # Four separate blocks: (coils, discrete inputs, holding registers, input registers).
        return SimDevice(
            id=1,
            simdata=(
                [SimData(0, values=[False] * BITS, datatype=DataType.BITS)],
                [SimData(0, values=[False] * BITS, datatype=DataType.BITS)],
                [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            ),
        )

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.pdus.append(pdu.function_code)
        return pdu

    async def start(self) -> None:
        self._server = ModbusTcpServer(self._device(), address=("127.0.0.1", self.port), trace_pdu=self._trace)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()
            await asyncio.sleep(0)  # let the closed connections run connection_lost

    async def set(self, area: Area, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        assert self._server is not None
        await self._server.async_setValues(1, _FC_READ[area], address, list(values))

    async def get(self, area: Area, address: int, count: int) -> list[int] | list[bool]:
        assert self._server is not None
        return await self._server.async_getValues(1, _FC_READ[area], address, count)


class _QuickStopModbusServer(ModbusServer):
    """pyModbusTCP 0.3.1's server, polling for shutdown every 20 ms instead of 0.5 s.

    Same body as ``ModbusServer._serve`` except the poll interval, which is not configurable;
    this keeps each stop (one per test) from costing half a second.
    """

    def _serve(self) -> None:
        try:
            self._evt_running.set()
            self._service.serve_forever(poll_interval=0.02)
        except Exception:
            self._service.server_close()
            raise
        finally:
            self._evt_running.clear()


class PyModbusTcpServer:
    """pyModbusTCP's ModbusServer (threaded, no_block=True): an independent implementation."""

    impl = "pyModbusTCP"

    def __init__(self, port: int) -> None:
        self.port = port
        self.pdus: list[int] = []
        self.bank = DataBank(coils_size=BITS, d_inputs_size=BITS, h_regs_size=REGISTERS, i_regs_size=REGISTERS)
        self._server: ModbusServer | None = None

    async def start(self) -> None:
        self._server = _QuickStopModbusServer("127.0.0.1", self.port, no_block=True, data_bank=self.bank)
        self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()  # blocks the loop for one poll interval (20 ms); fine in a test

    async def set(self, area: Area, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        setter = {
            Area.COIL: self.bank.set_coils,
            Area.DISCRETE_INPUT: self.bank.set_discrete_inputs,
            Area.HOLDING: self.bank.set_holding_registers,
            Area.INPUT: self.bank.set_input_registers,
        }[area]
        assert setter(address, list(values))

    async def get(self, area: Area, address: int, count: int) -> list[int] | list[bool]:
        getter = {
            Area.COIL: self.bank.get_coils,
            Area.DISCRETE_INPUT: self.bank.get_discrete_inputs,
            Area.HOLDING: self.bank.get_holding_registers,
            Area.INPUT: self.bank.get_input_registers,
        }[area]
        return getter(address, count)


SERVER_KINDS: dict[str, Callable[[int], ModbusTestServer]] = {
    "pymodbus": PymodbusServer,
    "pyModbusTCP": PyModbusTcpServer,
}
