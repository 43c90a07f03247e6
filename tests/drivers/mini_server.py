"""A small asyncio Modbus TCP server whose units can be told to misbehave (a third implementation).

Written from the Modbus specification for fault tests the library servers cannot stage: a unit
that never answers, a slow unit, addresses that answer ILLEGAL_ADDRESS inside a mapped range. It
answers every complete frame in its read buffer (pipelined requests included), so the benchmark
can use it as a fast server too. Function codes 1, 2, 3, 4, 5, 6, 15 and 16.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from tests.drivers.loopback import LoopbackServer

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3


@dataclass
class Unit:
    """One unit id's tables and behaviour."""

    size: int = 1000
    silent: bool = False  # never answers
    delay_s: float = 0.0  # answers after this delay
    holes: set[int] = field(default_factory=set)  # register addresses that answer ILLEGAL_ADDRESS
    exception: int | None = None  # answer every request with this exception code
    drop: int = 0  # ignore this many requests, then answer again
    hr: list[int] = field(default_factory=list)
    ir: list[int] = field(default_factory=list)
    coils: list[bool] = field(default_factory=list)
    di: list[bool] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.hr = self.hr or [0] * self.size
        self.ir = self.ir or [0] * self.size
        self.coils = self.coils or [False] * self.size
        self.di = self.di or [False] * self.size


class MiniServer(LoopbackServer):
    """Modbus TCP on 127.0.0.1:*port* serving *units* (unit id -> Unit); unknown ids never answer."""

    def __init__(self, port: int, units: dict[int, Unit]) -> None:
        super().__init__(port)
        self.units = units

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending: set[asyncio.Task] = set()
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _proto, length, unit_id = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                unit = self.units.get(unit_id)
                if unit is None or unit.silent:
                    continue
                if unit.drop > 0:
                    unit.drop -= 1
                    continue
                unit.requests += 1
                reply = _answer(unit, pdu)
                if unit.delay_s:
                    t = asyncio.create_task(_later(writer, unit.delay_s, tid, unit_id, reply), name="mini:delayed")
                    pending.add(t)
                    t.add_done_callback(pending.discard)
                else:
                    writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit_id) + reply)
        finally:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _later(writer: asyncio.StreamWriter, delay_s: float, tid: int, unit_id: int, reply: bytes) -> None:
    await asyncio.sleep(delay_s)
    if not writer.is_closing():
        writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit_id) + reply)


def _exc(fc: int, code: int) -> bytes:
    return bytes([fc | 0x80, code])


def _answer(unit: Unit, pdu: bytes) -> bytes:
    fc = pdu[0]
    if unit.exception is not None:
        return _exc(fc, unit.exception)
    if fc in (1, 2, 3, 4):
        start, count = struct.unpack(">HH", pdu[1:5])
        table = {1: unit.coils, 2: unit.di, 3: unit.hr, 4: unit.ir}[fc]
        limit = 2000 if fc <= 2 else 125
        if not 1 <= count <= limit:
            return _exc(fc, ILLEGAL_VALUE)
        if start + count > len(table) or (fc >= 3 and any(a in unit.holes for a in range(start, start + count))):
            return _exc(fc, ILLEGAL_ADDRESS)
        values = table[start : start + count]
        if fc <= 2:
            data = bytearray((count + 7) // 8)
            for i, bit in enumerate(values):
                if bit:
                    data[i // 8] |= 1 << (i % 8)
            return bytes([fc, len(data)]) + bytes(data)
        return bytes([fc, 2 * count]) + struct.pack(f">{count}H", *values)
    if fc in (5, 6):
        address, value = struct.unpack(">HH", pdu[1:5])
        table = unit.coils if fc == 5 else unit.hr
        if address >= len(table) or (fc == 6 and address in unit.holes):
            return _exc(fc, ILLEGAL_ADDRESS)
        table[address] = (value == 0xFF00) if fc == 5 else value
        return pdu[:5]
    if fc in (15, 16):
        start, count = struct.unpack(">HH", pdu[1:5])
        table = unit.coils if fc == 15 else unit.hr
        if start + count > len(table):
            return _exc(fc, ILLEGAL_ADDRESS)
        payload = pdu[6:]
        if fc == 16:
            table[start : start + count] = struct.unpack(f">{count}H", payload[: 2 * count])
        else:
            table[start : start + count] = [bool(payload[i // 8] >> (i % 8) & 1) for i in range(count)]
        return pdu[:5]
    return _exc(fc, ILLEGAL_FUNCTION)
