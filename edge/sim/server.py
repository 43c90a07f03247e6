"""Serve the simulated plant over Modbus TCP (pymodbus 3.16 server).

The pymodbus datastore is the plant's register image. A named task ``plant:tick``
advances the physics and writes fresh input registers and discrete inputs into it through
the server's public ``async_setValues``; it reads the holding registers and coils back with
``async_getValues`` and applies them to the plant. Client writes are validated by the
device ``action`` hook before pymodbus stores them: an out-of-range setpoint is refused
with exception 3 (ILLEGAL_DATA_VALUE), a write to a reserved address with exception 2
(ILLEGAL_DATA_ADDRESS). Nothing is clamped.

pymodbus 3.16 notes (see docs/plant.md):

* ``ModbusServerContext``/``ModbusDeviceContext`` are deprecated wrappers around
  ``SimDevice``/``SimData`` and the server copies the values into its own runtime at
  construction, so the context object is not a live view. Use ``SimDevice`` directly and
  the server's ``async_getValues``/``async_setValues``.
* ``ServerAsyncStop()`` stops ``ModbusBaseServer.active_server``, a class-level singleton
  (the most recently *constructed* server). With several servers in one process, stop each
  one through its own ``shutdown()``, as done here.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer
from pymodbus.simulator import DataType, SimData, SimDevice

from . import registers as rm
from .plant import Fault, Plant, PlantParams

__all__ = ["PlantServer", "serve_plant"]

logger = structlog.get_logger("edge.sim")

# Modbus function codes by area.
_FC_READ_COILS = 1
_FC_READ_DISCRETE = 2
_FC_READ_HOLDING = 3
_FC_READ_INPUT = 4
_FC_COIL_WRITES = frozenset({5, 15})
_FC_HOLDING_WRITES = frozenset({6, 16, 22, 23})


class PlantServer:
    """One plant behind one Modbus TCP listener. ``run()`` serves until cancelled."""

    def __init__(
        self,
        plant: Plant,
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        unit_id: int = rm.UNIT_ID,
        tick_s: float = 0.1,
        time_scale: float = 1.0,
    ) -> None:
        problems = []
        if not 0 <= port <= 65535:
            problems.append(f"port={port!r} is outside 0..65535")
        if not 1 <= unit_id <= 247:
            problems.append(f"unit_id={unit_id!r} is outside 1..247")
        if not (math.isfinite(tick_s) and tick_s > 0):
            problems.append(f"tick_s={tick_s!r} must be > 0")
        if not (math.isfinite(time_scale) and time_scale > 0):
            problems.append(f"time_scale={time_scale!r} must be > 0")
        if problems:
            raise ValueError("; ".join(problems))
        self.plant = plant
        self.host = host
        self.port = port  # replaced by the bound port once listening (port=0 picks a free one)
        self.unit_id = unit_id
        self.tick_s = tick_s
        self.time_scale = time_scale
        self.ticks = 0
        self.rejected_writes = 0
        self._log = logger.bind(host=host, unit_id=unit_id)
        self._server: ModbusTcpServer | None = None

    # ------------------------------------------------------------- datastore
    def _device(self) -> SimDevice:
        plant = self.plant
        holding, coils = rm.encode_holding(plant.setpoints, plant.fault)
        inputs = rm.encode_inputs(plant.measurements(), rm.status_word(plant))
        discrete = rm.encode_discrete(plant)
        return SimDevice(
            id=self.unit_id,
            # (coils, discrete inputs, holding registers, input registers); separate blocks,
            # so coils and discrete inputs are addressed bit by bit.
            simdata=(
                [SimData(0, values=coils, datatype=DataType.BITS)],
                [SimData(0, values=discrete, datatype=DataType.BITS)],
                [SimData(0, values=holding, datatype=DataType.REGISTERS)],
                [SimData(0, values=inputs, datatype=DataType.REGISTERS)],
            ),
            action=self._check_write,
        )

    async def _check_write(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        _count: int,
        _current_registers: list[int],
        set_values: Sequence[int] | Sequence[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus device action: runs before every access; refuse bad client writes."""
        if set_values is None:
            return None
        if function_code in _FC_HOLDING_WRITES:
            verdict = rm.check_holding_write(address, [int(v) for v in set_values])
        elif function_code in _FC_COIL_WRITES:
            verdict = rm.check_coil_write(address, [bool(v) for v in set_values])
        else:
            return None  # the tick refreshing input registers / discrete inputs
        if verdict is None:
            return None
        code, reason = verdict
        self.rejected_writes += 1
        self._log.warning(
            "setpoint_rejected",
            function_code=function_code,
            address=address,
            reason=reason,
            exception_code=int(code),
        )
        return ExcCodes(int(code))

    async def _read_back(self) -> rm.HoldingImage:
        server = self._server
        assert server is not None
        holding = await server.async_getValues(self.unit_id, _FC_READ_HOLDING, 0, rm.HOLDING_COUNT)
        coils = await server.async_getValues(self.unit_id, _FC_READ_COILS, 0, rm.COIL_COUNT)
        return rm.decode_holding([int(v) for v in holding], [bool(v) for v in coils])

    async def _publish(self) -> None:
        server = self._server
        assert server is not None
        plant = self.plant
        inputs = rm.encode_inputs(plant.measurements(), rm.status_word(plant))
        await server.async_setValues(self.unit_id, _FC_READ_INPUT, 0, inputs)
        await server.async_setValues(self.unit_id, _FC_READ_DISCRETE, 0, rm.encode_discrete(plant))

    def _apply(self, image: rm.HoldingImage) -> None:
        plant = self.plant
        plant.apply(image.setpoints)
        if image.fault is not plant.fault:
            previous = plant.fault
            plant.fault = image.fault
            event = "fault_cleared" if image.fault is Fault.NONE else "fault_injected"
            self._log.info(
                event,
                fault=image.fault.name.lower(),
                previous=previous.name.lower(),
                sim_time_s=round(plant.t_s, 3),
            )

    async def tick_once(self) -> None:
        """Read setpoints back, advance the plant by one tick of sim time, publish readings."""
        self._apply(await self._read_back())
        self.plant.step(self.tick_s * self.time_scale)
        await self._publish()
        self.ticks += 1

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.tick_once()
            except Exception:
                self._log.exception("plant_tick_failed", ticks=self.ticks, sim_time_s=round(self.plant.t_s, 3))
                raise
            next_at += self.tick_s
            delay = next_at - loop.time()
            if delay < 0:
                # Overrun: keep the sim-time step fixed and resynchronise instead of bursting.
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    # --------------------------------------------------------------- serving
    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Listen, tick and serve until cancelled; then close the listener and re-raise.

        *ready* is set once the socket listens (``self.port`` then holds the bound port). A
        failing tick is logged as ``plant_tick_failed``; its exception propagates (wrapped in
        an ExceptionGroup by the task group) after the listener is closed.
        """
        server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        self._server = server
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            # pymodbus logs the OSError and raises a bare RuntimeError.
            self._forget(server)
            raise OSError(f"plant server cannot listen on {self.host}:{self.port}") from exc
        try:
            sockets = getattr(server.transport, "sockets", None) or ()
            if sockets:
                self.port = sockets[0].getsockname()[1]
            self._log = self._log.bind(port=self.port)
            self._log.info("plant_started", port=self.port, tick_s=self.tick_s, time_scale=self.time_scale)
            if self.plant.fault is not Fault.NONE:
                fault = self.plant.fault.name.lower()
                self._log.info("fault_injected", fault=fault, previous="none", sim_time_s=0.0)
            if ready is not None:
                ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._tick_loop(), name="plant:tick")
        finally:
            await server.shutdown()
            self._forget(server)
            self._log.info("plant_stopped", ticks=self.ticks, sim_time_s=round(self.plant.t_s, 3))

    def _forget(self, server: ModbusTcpServer) -> None:
        # pymodbus keeps the last constructed server in a class attribute (for ServerAsyncStop);
        # drop it so a stopped plant is not kept alive or stopped twice through it.
        if ModbusBaseServer.active_server is server:
            ModbusBaseServer.active_server = None
        self._server = None


async def serve_plant(
    *,
    host: str = "127.0.0.1",
    port: int = 5020,
    unit_id: int = rm.UNIT_ID,
    tick_s: float = 0.1,
    time_scale: float = 1.0,
    fault: Fault = Fault.NONE,
    seed: int = 0,
    ready: asyncio.Event | None = None,
    params: PlantParams | None = None,
) -> None:
    """Run the simulated plant as a Modbus TCP server until cancelled.

    Each *tick_s* of wall time the plant advances by ``tick_s * time_scale`` of sim time.
    *ready* is set once the socket is listening. Cancellation closes the listener and all
    client connections and re-raises ``CancelledError``. Bad arguments raise ValueError and
    a port that cannot be bound raises OSError, both before *ready* is set. Use
    ``PlantServer`` directly to reach the ``Plant`` or to learn the port picked for port=0.
    """
    plant = Plant(params, seed=seed, fault=fault)
    await PlantServer(plant, host=host, port=port, unit_id=unit_id, tick_s=tick_s, time_scale=time_scale).run(ready)
