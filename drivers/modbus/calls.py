"""The pymodbus client call behind each request, and cancellation safety around library awaits.

Pure glue: no state. The client is any object with pymodbus's ``read_*``/``write_*`` coroutine
methods (the TCP and serial clients both qualify).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymodbus.pdu import ModbusPDU

from drivers.modbus.address import Area, RegisterPoint
from drivers.modbus.outcome import Outcome
from drivers.modbus.plan import ReadRequest


def cancel_requests() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def raise_if_cancel_was_swallowed(before: int) -> None:
    """Re-raise a cancellation that a library swallowed.

    On Python 3.11, ``asyncio.wait_for`` (which pymodbus uses for every request and connect)
    returns the result instead of raising CancelledError when the awaited future completes in the
    same loop iteration as the cancel. The cancel request stays counted on the task, so it is
    found here and raised again; otherwise the poll task would go on after shutdown.
    """
    if cancel_requests() > before:
        raise asyncio.CancelledError


def fill(results: dict[int, Outcome], points: Sequence[RegisterPoint], out: Outcome, *, only_missing: bool = False) -> None:
    """Give *out* to every point (or only to those without an outcome yet), keyed by id."""
    for p in points:
        if not only_missing or id(p) not in results:
            results[id(p)] = out


def read_call(client: Any, req: ReadRequest) -> Callable[[], Awaitable[ModbusPDU]]:
    method = {
        Area.COIL: client.read_coils,
        Area.DISCRETE_INPUT: client.read_discrete_inputs,
        Area.HOLDING: client.read_holding_registers,
        Area.INPUT: client.read_input_registers,
    }[req.area]
    return lambda: method(req.start, count=req.count, device_id=req.unit_id)


def write_call(client: Any, point: RegisterPoint, registers: list[int], *, multiple: bool) -> Callable[[], Awaitable[ModbusPDU]]:
    if point.area is Area.COIL:
        if multiple:
            return lambda: client.write_coils(point.address, [bool(registers[0])], device_id=point.unit_id)
        return lambda: client.write_coil(point.address, bool(registers[0]), device_id=point.unit_id)
    if len(registers) == 1 and not multiple:
        return lambda: client.write_register(point.address, registers[0], device_id=point.unit_id)
    return lambda: client.write_registers(point.address, registers, device_id=point.unit_id)
