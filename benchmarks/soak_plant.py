"""The soak benchmark's plant (benchmarks/bench_soak.py): the tag layout, the gateway config it
generates, and the device process serving it (one Modbus TCP server per device on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

UNITS = (1, 2, 3, 4)
TAGS_PER_UNIT = 250
TAGS_PER_DEVICE = len(UNITS) * TAGS_PER_UNIT
STAMP_EVERY = 25  # every 25th tag of a unit is a uint32 stamp (ms since the run began)
HISTORIZE_EVERY = 10
WATCH_EVERY = 20  # the client also subscribes to every 20th ordinary tag
ASSETS, SIGNALS_PER_ASSET = 20, 5
NS_URI = "urn:edgetwin:gateway"


@dataclass(frozen=True)
class Tag:
    name: str
    unit: int
    register: int
    type: str  # uint16 | int16 | float32 | uint32 (stamp)
    stamp: bool = False


def unit_tags(unit: int) -> list[Tag]:
    tags, reg = [], 0
    for j in range(TAGS_PER_UNIT):
        name = f"u{unit}_t{j}"
        if j % STAMP_EVERY == 0:
            tags.append(Tag(name, unit, reg, "uint32", stamp=True))
            reg += 2
        elif j % 5 == 3:
            tags.append(Tag(name, unit, reg, "float32"))
            reg += 2
        elif j % 5 == 4:
            tags.append(Tag(name, unit, reg, "int16"))
            reg += 1
        else:
            tags.append(Tag(name, unit, reg, "uint16"))
            reg += 1
    return tags


@dataclass
class Plan:
    devices: dict[str, float]  # name -> poll interval
    ports: dict[str, int] = field(default_factory=dict)


def make_plan(slow_tags: int, fast_tags: int) -> Plan:
    devices = {f"s{i:02d}": 1.0 for i in range(math.ceil(slow_tags / TAGS_PER_DEVICE))}
    devices.update({f"f{i:02d}": 0.1 for i in range(math.ceil(fast_tags / TAGS_PER_DEVICE))})
    return Plan(devices)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(plan: Plan, folder: Path, opc_port: int, metrics_port: int) -> Path:
    lines = [
        "[gateway]",
        'name = "gw"',
        f'endpoint = "opc.tcp://127.0.0.1:{opc_port}/edgetwin"',
        f'state_dir = "{folder / "state"}"',
        'log_level = "warning"',
        "[opcua]",
        'security_policies = ["None"]',
        "allow_anonymous = true",
        "[history]",
        "retention_days = 1.0",
        "[metrics]",
        f'listen = "127.0.0.1:{metrics_port}"',
    ]
    header = "name,address,type,unit_id,scale,historize\n"
    for dev, interval in plan.devices.items():
        rows = []
        for unit in UNITS:
            for k, t in enumerate(unit_tags(unit)):
                scale = "0.1" if t.type == "int16" else ""
                hist = "true" if k % HISTORIZE_EVERY == 1 else ""
                rows.append(f"{t.name},hr:{t.register},{t.type},{unit},{scale},{hist}\n")
        (folder / f"{dev}.csv").write_text(header + "".join(rows))
        lines += [
            "[[devices]]",
            f'name = "{dev}"',
            'driver = "modbus_tcp"',
            'host = "127.0.0.1"',
            f"port = {plan.ports[dev]}",
            f"poll_interval_s = {interval}",
            f'tags_csv = "{dev}.csv"',
        ]
    slow = [d for d, iv in plan.devices.items() if iv == 1.0]
    floats = [t.name for t in unit_tags(1) if t.type == "float32"]
    for a in range(ASSETS if slow else 0):
        dev = slow[a % len(slow)]
        unit = UNITS[(a // len(slow)) % len(UNITS)]
        lines += ["[[assets]]", f'name = "a{a:02d}"', "tick_s = 1.0", "historize = true"]
        for s in range(SIGNALS_PER_ASSET):
            tag = floats[(a * SIGNALS_PER_ASSET + s) % len(floats)].replace("u1_", f"u{unit}_")
            lines += ["[[assets.signals]]", f'name = "s{s}"', f'tag = "{dev}.{tag}"', 'model = "random_walk"', "process_noise = 1.0", "measurement_noise = 0.5"]
    cfg = folder / "gateway.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def serve(intervals: dict[str, float], t0: float, ports_out: object) -> None:
    """The device process: a MiniServer per device on a port of its own choosing (sent back as
    {device: port} through *ports_out*); every register changes every poll period."""
    sys.path.insert(0, str(ROOT))
    from tests.drivers.mini_server import MiniServer, Unit

    layout = {u: unit_tags(u) for u in UNITS}

    def change(unit: Unit, tags: list[Tag], k: int) -> None:
        hr = unit.hr
        stamp = int((time.time() - t0) * 1000) & 0xFFFFFFFF
        hi_s, lo_s = stamp >> 16, stamp & 0xFFFF
        for i, t in enumerate(tags):
            r = t.register
            if t.stamp:
                hr[r], hr[r + 1] = hi_s, lo_s
            elif t.type == "uint16":
                hr[r] = (k + i) & 0xFFFF
            elif t.type == "int16":
                hr[r] = (k * 3 + i) % 1000
            else:
                hr[r], hr[r + 1] = struct.unpack(">HH", struct.pack(">f", 50.0 + 10.0 * math.sin(0.05 * k + i)))

    ports: dict[str, int] = {}

    async def run_device(dev: str, interval: float, up: asyncio.Event) -> None:
        units = {u: Unit(size=400) for u in UNITS}
        async with MiniServer(0, units) as server:
            ports[dev] = server.port
            up.set()
            k = 0
            start = time.monotonic()
            while True:
                for u, unit in units.items():
                    change(unit, layout[u], k)
                k += 1
                await asyncio.sleep(max(0.0, start + k * interval - time.monotonic()))

    async def main() -> None:
        ups = {dev: asyncio.Event() for dev in intervals}
        async with asyncio.TaskGroup() as tg:
            for dev, interval in intervals.items():
                tg.create_task(run_device(dev, interval, ups[dev]), name=f"device:{dev}")
            for up in ups.values():
                await up.wait()
            ports_out.put(ports)  # type: ignore[attr-defined]

    asyncio.run(main())
