"""Benchmark of Modbus TCP polling: a large register map over several units on one connection.

    python benchmarks/bench_modbus_poll.py [--quick]

The server (tests/drivers/mini_server.py, an asyncio Modbus TCP server that answers pipelined
requests) runs in a separate process on 127.0.0.1, so the CPU time measured here is the client's
alone. The map is 10,000 registers over 4 units (per unit: 500 uint16, 500 float32, 250 float64
= 1,250 tags, 2,500 registers), 5,000 tags in all.

Rows:
    plan            requests per poll cycle with block reads vs one request per tag
    driver          ModbusTcpDriver.read(all tags): cycles/s, tags/s, client CPU per request and per tag
    one-per-tag     the same tags, one pymodbus request per tag (one cycle): what block reads save
    pymodbus        bare AsyncModbusTcpClient.read_holding_registers(125 registers) in a loop: the
                    library's own per-request CPU, without planning or decoding
    raw pipelined   a plain asyncio client (MBAP frames, matching by transaction id) with 8
                    requests in flight: the floor a hand-written transport would reach
Each timing is time-boxed; the whole benchmark stays well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus import ModbusTcpDriver, make_point, plan_reads
from drivers.sample import Status

UNITS = (1, 2, 3, 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    from tests.drivers.mini_server import MiniServer, Unit

    async def main() -> None:
        units = {u: Unit(size=3000) for u in UNITS}
        for unit in units.values():
            unit.hr = [(i * 7) & 0xFFFF for i in range(3000)]
        async with MiniServer(port, units):
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def tag_map() -> list:
    points = []
    for u in UNITS:
        address = 0
        for i in range(500):
            points.append(make_point(name=f"u{u}_w{i}", unit_id=u, address=f"hr:{address}", type="uint16"))
            address += 1
        for i in range(500):
            points.append(make_point(name=f"u{u}_f{i}", unit_id=u, address=f"hr:{address}", type="float32"))
            address += 2
        for i in range(250):
            points.append(make_point(name=f"u{u}_d{i}", unit_id=u, address=f"hr:{address}", type="float64", order="CDAB"))
            address += 4
    return points


async def bench_driver(port: int, points: list, seconds: float) -> dict:
    d = ModbusTcpDriver(name="bench", host="127.0.0.1", port=port, timeout_s=2.0)
    await d.connect()
    try:
        result = await d.read(points)  # warm-up; plans and caches
        assert not result.not_fetched and all(s.status == Status.Good for s in result.samples), "server answered with errors"
        sent0, cycles = d.requests_sent, 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds:
            await d.read(points)
            cycles += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        requests = d.requests_sent - sent0
    finally:
        await d.close()
    return {"cycles": cycles, "wall": wall, "cpu": cpu, "requests": requests}


async def bench_one_per_tag(port: int, points: list) -> dict:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for p in points:
            await client.read_holding_registers(p.address, count=p.count, device_id=p.unit_id)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        client.close()
    return {"wall": wall, "cpu": cpu, "requests": len(points)}


async def bench_pymodbus(port: int, seconds: float) -> dict:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        n = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds:
            await client.read_holding_registers(0, count=125, device_id=1)
            n += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        client.close()
    return {"wall": wall, "cpu": cpu, "requests": n}


class _RawClient(asyncio.Protocol):
    """Modbus TCP FC3 with several requests in flight, matched by transaction id."""

    def __init__(self) -> None:
        self.buf = b""
        self.waiting: dict[int, asyncio.Future] = {}
        self.tid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while len(buf) >= 7:
            tid, _, length = struct.unpack_from(">HHH", buf)
            end = 6 + length
            if len(buf) < end:
                break
            fut = self.waiting.pop(tid, None)
            if fut is not None and not fut.done():
                pdu = buf[7:end]
                fut.set_result(struct.unpack(f">{pdu[1] // 2}H", pdu[2:]))
            buf = buf[end:]
        self.buf = buf

    def read(self, unit: int, start: int, count: int) -> asyncio.Future:
        self.tid = (self.tid + 1) & 0xFFFF
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.tid] = fut
        self.transport.write(struct.pack(">HHHBBHH", self.tid, 0, 6, unit, 3, start, count))  # type: ignore[attr-defined]
        return fut


async def bench_raw(port: int, seconds: float, in_flight: int = 8) -> dict:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_RawClient, "127.0.0.1", port)
    try:
        n = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds:
            await asyncio.gather(*(proto.read(1, 0, 125) for _ in range(in_flight)))
            n += in_flight
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        transport.close()
    return {"wall": wall, "cpu": cpu, "requests": n}


async def run(port: int, seconds: float) -> None:
    points = tuple(tag_map())  # as the supervisor passes them: one tuple per scan-group combination
    registers = sum(p.count for p in points)
    plan = plan_reads(points)
    print(f"map: {len(points)} tags, {registers} registers, {len(UNITS)} units on one TCP connection")
    print(f"plan: {len(plan)} requests per cycle (block reads) vs {len(points)} (one request per tag): {len(points) / len(plan):.0f}x fewer")

    d = await bench_driver(port, points, seconds)
    per_req = d["cpu"] / d["requests"] * 1e6
    print(
        f"driver: {d['cycles'] / d['wall']:.1f} cycles/s, {d['cycles'] * len(points) / d['wall']:,.0f} tags/s, "
        f"{d['wall'] / d['cycles'] * 1e3:.1f} ms/cycle, client CPU {per_req:.0f} us/request "
        f"({d['cpu'] / (d['cycles'] * len(points)) * 1e6:.2f} us/tag)"
    )

    o = await bench_one_per_tag(port, points)
    print(
        f"one-per-tag: {o['wall'] * 1e3:.0f} ms/cycle, client CPU {o['cpu'] / o['requests'] * 1e6:.0f} us/request, "
        f"{o['cpu'] * 1e3:.0f} ms CPU per cycle vs {d['cpu'] / d['cycles'] * 1e3:.1f} ms with block reads"
    )

    p = await bench_pymodbus(port, seconds)
    print(f"pymodbus: {p['requests'] / p['wall']:,.0f} requests/s, client CPU {p['cpu'] / p['requests'] * 1e6:.0f} us/request (125 registers, one at a time)")

    r = await bench_raw(port, seconds)
    print(f"raw pipelined (8 in flight): {r['requests'] / r['wall']:,.0f} requests/s, client CPU {r['cpu'] / r['requests'] * 1e6:.0f} us/request")
    share = (p["cpu"] / p["requests"]) / (d["cpu"] / d["requests"])
    print(f"pymodbus's request cost is {share:.0%} of the driver's per-request CPU (the rest is planning, decoding and samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 4.0
    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, ready), name="modbus-bench-server", daemon=True)
    server.start()
    try:
        if not ready.wait(20):
            raise SystemExit("benchmark server did not start")
        asyncio.run(run(port, seconds))
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
