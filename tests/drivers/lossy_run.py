"""A gateway poll loop through the fault proxy, measured: the scenario of the lossy-link tests and
of benchmarks/bench_modbus_lossy.py.

A MiniServer serves *units* unit ids; each unit has two blocks, a status word at hr:0 and the
measurement (float32) at hr:200, so the measurement is the unit's last block in every cycle. A
DeviceRunner (the gateway's own, with the gateway's default backoff) polls them through a
FaultProxy for *seconds*, while a sampler looks at the registry every poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from structlog.testing import capture_logs

from drivers.modbus import ModbusTcpDriver
from drivers.modbus.address import make_point
from drivers.sample import Status, TagSample
from edge.core.backoff import Backoff
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner
from tests.drivers.fault_proxy import FaultProxy, Faults
from tests.drivers.mini_server import MiniServer, Unit


@dataclass
class LossyReport:
    seconds: float
    cycles: int
    requests: int
    connections: int  # TCP connections the proxy accepted (1 = never reconnected)
    reconnects: int  # the supervisor's count of recoveries
    log_lines: int  # warning and info events of the driver and the supervisor
    good_pct: float  # share of (tag, sampling instant) pairs that were Good
    longest_gap_s: dict[int, float] = field(default_factory=dict)  # per unit: longest time without a Good measurement
    overage_s: float = 0.0  # worst age beyond poll interval + timeout_s of a value seen Good
    proxy: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)  # sampled statuses by name

    def line(self) -> str:
        gaps = ", ".join(f"u{u} {g:.2f} s" for u, g in sorted(self.longest_gap_s.items()))
        return (
            f"{self.seconds:.0f} s, {self.cycles} cycles, {self.requests} requests: reconnects {self.connections - 1}, "
            f"log lines {self.log_lines}, Good {self.good_pct:.1f} %, longest gap {gaps}, worst overage of a Good value {self.overage_s:.2f} s"
        )


async def run_lossy(
    server_port: int,
    faults: Faults,
    *,
    units: int,
    seconds: float,
    poll_s: float,
    seed: int = 1,
    settings: dict[str, Any] | None = None,
) -> LossyReport:
    """Poll through the proxy for *seconds* (after the first Good values) and measure."""
    server = MiniServer(server_port, {u: Unit() for u in range(1, units + 1)})
    for u in range(1, units + 1):
        server.units[u].hr[0] = u
        server.units[u].hr[200:202] = [0x4148, 0x0000]  # 12.5 as float32
    reg = TagRegistry()
    points = []
    for u in range(1, units + 1):
        points.append(make_point(name=f"gw.u{u}_status", address="hr:0", type="uint16", unit_id=u))
        points.append(make_point(name=f"gw.u{u}_value", address="hr:200", type="float32", unit_id=u))
    for p in points:
        reg.add(TagInfo(p.name, ("Devices", *p.name.split(".")), "float64", device="gw"))
    async with server, FaultProxy(server_port, faults, seed=seed) as proxy:
        driver = ModbusTcpDriver(name="gw", host="127.0.0.1", port=proxy.port, **(settings or {}))
        runner = DeviceRunner("gw", driver, points, reg, poll_interval_s=poll_s, backoff=Backoff(0.5, 30.0))
        for info in runner.health.infos():
            reg.add(info)
        limit_s = poll_s + driver.timeout_s
        arrivals: dict[str, list[float]] = {f"gw.u{u}_value": [] for u in range(1, units + 1)}

        def on_batch(batch: list[TagSample]) -> None:
            for s in batch:
                if s.tag in arrivals and s.status == Status.Good:
                    arrivals[s.tag].append(s.source_time.timestamp())

        reg.subscribe(on_batch)
        with capture_logs() as logs:
            task = asyncio.create_task(runner.run(), name="poll:gw")
            try:
                # every tag Good once (the old behaviour may never have all at once, or not within 20 s)
                seen_good: set[str] = set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(20):
                        while len(seen_good) < len(points):
                            seen_good.update(p.name for p in points if reg.latest(p.name).status == Status.Good)
                            await asyncio.sleep(0.005)
                start_wall, start = time.time(), time.monotonic()
                requests0, cycles0 = driver.requests_sent, runner.health.reads_ok
                good = total = 0
                seen: Counter[str] = Counter()
                overage = 0.0
                while time.monotonic() - start < seconds:
                    await asyncio.sleep(min(poll_s, 0.05))
                    wall = time.time()
                    for p in points:
                        s = reg.latest(p.name)
                        seen[Status(s.status).name] += 1
                        total += 1
                        if s.status == Status.Good:
                            good += 1
                            overage = max(overage, wall - s.source_time.timestamp() - limit_s)
                end_wall = time.time()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        gaps = {}
        for u in range(1, units + 1):
            times = [start_wall] + [t for t in arrivals[f"gw.u{u}_value"] if start_wall <= t <= end_wall] + [end_wall]
            gaps[u] = max(b - a for a, b in itertools.pairwise(times))
        events = [e for e in logs if e["log_level"] in ("warning", "info", "error")]
        return LossyReport(
            seconds=time.monotonic() - start,
            cycles=runner.health.reads_ok - cycles0,
            requests=driver.requests_sent - requests0,
            connections=proxy.counts["connections"],
            reconnects=runner.health.reconnects,
            log_lines=len(events),
            good_pct=100.0 * good / max(total, 1),
            longest_gap_s=gaps,
            overage_s=max(overage, 0.0),
            proxy=dict(proxy.counts),
            statuses=dict(seen),
        )


OLD_BEHAVIOUR: dict[str, Any] = {"timeout_s": 1.0, "retries": 0, "adaptive_timeout": False, "reopen_after": 1, "demote_after": 3}
"""The settings that reproduce the gateway before the lossy-link work as far as settings can: a fixed
1 s timeout, no re-sends, the link reopened after the first cycle in which no unit answered (the
old rule), demotion after 3 misses. Not reproducible by settings: the old end-of-cycle publishing and the skipping of a
unit's remaining blocks after one miss."""

__all__ = ["OLD_BEHAVIOUR", "LossyReport", "run_lossy"]
