"""Per-value cost of the gateway's hot path: from a driver's read to the OPC UA node.

    python benchmarks/bench_sample_path.py [--tags 5000] [--cycles 40]

A driver that answers instantly (no I/O: the cost of Modbus itself is in bench_modbus_poll.py)
returns ``--tags`` fresh values per read. The real ``DeviceRunner`` polls it back to back, the real
``TagRegistry`` takes the samples, and, in the second row, the real ``OpcUaServer`` writes each one
into its address space (asyncua ``write_attribute_value``, the fast path). Rows (best of 3):

    poll -> registry              driver sample -> supervisor -> registry.publish (+ health)
    poll -> registry -> OPC UA    the same, plus the server's publish loop, until drained

Each row prints ns per value and values per second. The time is wall time on one event loop, so
it is what one core can carry.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import contextlib

import structlog

from drivers.base import LinkState, ReadResult
from drivers.sample import Status, TagSample, utcnow
from edge.core.backoff import Backoff
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner


class _Point:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class InstantDriver:
    """Answers every read at once with a new value per point; signals after *cycles* reads."""

    kind: ClassVar[str] = "bench"

    def __init__(self, name: str, cycles: int) -> None:
        self.name = name
        self.cycles = cycles
        self.reads = 0
        self.done = asyncio.Event()

    @property
    def state(self) -> LinkState:
        return LinkState.CONNECTED

    async def connect(self) -> None:
        return None

    async def read(self, points: Sequence[Any]) -> ReadResult:
        self.reads += 1
        if self.reads >= self.cycles:
            self.done.set()
        now = utcnow()
        value = float(self.reads)
        samples = [TagSample(p.name, value, Status.Good, now, now) for p in points]  # keyed: name is the registry key
        return ReadResult(samples)

    async def write(self, point: Any, value: Any) -> Status:
        return Status.BadNotWritable

    async def close(self) -> None:
        return None


def _setup(n_tags: int, cycles: int) -> tuple[TagRegistry, DeviceRunner, InstantDriver]:
    reg = TagRegistry()
    dev = "plc"
    keys = [f"{dev}.t{i}" for i in range(n_tags)]
    for k in keys:
        reg.add(TagInfo(k, ("Devices", dev, k.split(".", 1)[1]), "float64", device=dev))
    points = [_Point(k) for k in keys]
    driver = InstantDriver(dev, cycles)
    runner = DeviceRunner(dev, driver, points, reg, poll_interval_s=1e-4, backoff=Backoff(0.1, 1.0))
    for info in runner.health.infos():
        reg.add(info)
    return reg, runner, driver


async def _poll(runner: DeviceRunner, driver: InstantDriver) -> None:
    task = asyncio.create_task(runner.run(), name="poll:plc")
    await driver.done.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def poll_only(n_tags: int, cycles: int) -> float:
    _reg, runner, driver = _setup(n_tags, cycles)
    started = time.perf_counter()
    await _poll(runner, driver)
    return (time.perf_counter() - started) / (driver.reads * n_tags)


async def poll_and_serve(n_tags: int, cycles: int) -> float:
    from edge.opcua.server import OpcUaServer

    reg, runner, driver = _setup(n_tags, cycles)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with OpcUaServer(reg, endpoint=f"opc.tcp://127.0.0.1:{port}/bench", namespace_uri="urn:bench", gateway_name="gw") as server:
        started = time.perf_counter()
        await _poll(runner, driver)
        await server.drain()
        return (time.perf_counter() - started) / (driver.reads * n_tags)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=5000)
    ap.add_argument("--cycles", type=int, default=40)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"{args.tags} tags x {args.cycles} cycles, best of 3")
    for label, fn in (("poll -> registry", poll_only), ("poll -> registry -> OPC UA", poll_and_serve)):
        best = min(asyncio.run(fn(args.tags, args.cycles)) for _ in range(3))
        print(f"  {label:<28} {best * 1e9:8.0f} ns/value  {1 / best:12,.0f} values/s")


if __name__ == "__main__":
    main()
