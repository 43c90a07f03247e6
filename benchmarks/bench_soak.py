"""Soak and footprint benchmark: 10,000 Modbus tags at 1 s and 1,000 at 100 ms (not a CI gate).

    python benchmarks/bench_soak.py [--minutes 5] [--quick] [--slow-tags 10000] [--fast-tags 1000] [--first-start]

Three processes on 127.0.0.1:

    devices   a child process (``soak_plant.serve``): one Modbus TCP server (tests/drivers/mini_server.py) per
              device, each with 4 units of 250 tags; every register changes every poll period
              (uint16 counters, scaled int16, float32 sine waves), and every 25th tag is a
              ``uint32`` stamp holding the milliseconds since the run began at the moment of change
    gateway   ``python -m edge run <generated toml>``, its own process, so its CPU and RSS are read
              from /proc apart from the rest: devices ``s00``.. (1,000 tags each, poll 1 s) and
              ``f00``.. (poll 0.1 s), every 10th tag historized, 20 twin assets of 5 signals each
              (historized), ``[metrics]`` on a free port
    client    this script: an asyncua client subscribed (publishing interval 100 ms) to every stamp
              tag and every 20th other tag

Printed: a table every ``--every`` seconds (gateway RSS, CPU % of one core over the interval, poll
cycles and overruns from the gateway's ``edgetwin_poll_cycle_seconds`` histogram, notifications and
end-to-end latency), then the totals after the warm-up: CPU, RSS, the RSS growth slope (MB/h, least
squares), poll-cycle overruns (cycles longer than their poll interval) and missed slots, and latency
p50/p99 from the device's value change to the OPC UA notification at the client (and the gateway's
part of it: notification minus the SourceTimestamp the gateway stamped when the value arrived). The
footprint goal is 10,000 tags at 1 s in 120 MB and 10 % of one core: ``--fast-tags 0``. The
shelf of asyncua's standard nodes (edge/opcua/standard_nodes.py) is built in the gateway's state
folder before it starts, as on any start after the first; ``--first-start`` leaves that to the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_plant import (  # noqa: E402
    ASSETS,
    NS_URI,
    TAGS_PER_DEVICE,
    UNITS,
    WATCH_EVERY,
    Plan,
    Tag,
    free_port,
    make_plan,
    serve,
    unit_tags,
    write_config,
)
from soak_stats import parse_metrics, percentile, poll_cycles, slope_per_hour  # noqa: E402

__all__ = ["ASSETS", "Plan", "Tag", "make_plan", "parse_metrics", "percentile", "poll_cycles", "slope_per_hour", "unit_tags", "write_config"]


# -- measuring ------------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def scrape(port: int) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    body = await reader.read()
    writer.close()
    return parse_metrics(body.split(b"\r\n\r\n", 1)[1].decode())


@dataclass
class Window:
    latency_ms: list[float] = field(default_factory=list)  # device change -> notification
    gateway_ms: list[float] = field(default_factory=list)  # SourceTimestamp -> notification
    notifications: int = 0


def _row(fmt: str, t: float, dt: float, rss: float, cpu: float, cycles: float, over: float, w: Window) -> str:
    return fmt.format(
        f"{t:.0f}",
        f"{rss:.1f}",
        f"{100 * cpu / dt:.1f}",
        f"{cycles:.0f}",
        f"{over:.0f}",
        f"{w.notifications / dt:.0f}",
        f"{percentile(w.latency_ms, 0.5):.0f}",
        f"{percentile(w.latency_ms, 0.99):.0f}",
    )


def _cycles(m: dict, devices: dict[str, float]) -> tuple[float, float]:
    c = poll_cycles(m, devices)
    return sum(x.cycles for x in c.values()), sum(x.overruns for x in c.values())


async def measure(args: argparse.Namespace, plan: Plan, gw: subprocess.Popen, t0: float, opc_port: int, metrics_port: int) -> None:
    from asyncua import Client, ua

    total_s = args.minutes * 60.0
    warmup_s = min(args.warmup, total_s / 2)
    row, total = Window(), Window()
    stamps: set = set()

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            now = time.time()
            item = data.monitored_item.Value  # type: ignore[attr-defined]
            for w in (row, total):
                w.notifications += 1
                if item.SourceTimestamp is not None:
                    w.gateway_ms.append((now - item.SourceTimestamp.timestamp()) * 1000.0)
                if isinstance(val, int) and node.nodeid in stamps:  # type: ignore[attr-defined]
                    w.latency_ms.append((now - t0) * 1000.0 - val)

    # the client's watchdog reads the server state every second and drops the link after a 1 s wait:
    # too short for a gateway on a loaded machine, which would turn a slow answer into a reconnect
    async with Client(f"opc.tcp://127.0.0.1:{opc_port}/edgetwin", timeout=60, watchdog_intervall=30.0) as client:
        ns = await client.get_namespace_index(NS_URI)
        nodes = []
        for dev in plan.devices:
            for unit in UNITS:
                for k, t in enumerate(unit_tags(unit)):
                    if t.stamp or k % WATCH_EVERY == 2:
                        node = client.get_node(ua.NodeId(f"gw/Devices/{dev}/{t.name}", ns))
                        nodes.append(node)
                        if t.stamp:
                            stamps.add(node.nodeid)
        sub = await client.create_subscription(args.publishing_ms, Handler())
        for i in range(0, len(nodes), 500):
            await sub.subscribe_data_change(nodes[i : i + 500], queuesize=1)
        print(f"client: {len(nodes)} monitored items ({len(stamps)} stamps), publishing interval {args.publishing_ms:g} ms", flush=True)

        start = time.monotonic()
        rss: list[tuple[float, float]] = []
        cpu0 = cpu_prev = cpu_s(gw.pid)
        m_prev = m_warm = await scrape(metrics_port)
        t_prev, t_warm, cpu_warm = 0.0, -1.0, cpu0
        fmt = "| {:>6} | {:>7} | {:>6} | {:>8} | {:>9} | {:>8} | {:>9} | {:>9} |"
        print(fmt.format("t (s)", "RSS MB", "CPU %", "cycles", "overruns", "notif/s", "p50 (ms)", "p99 (ms)"))
        print(fmt.format(*["---"] * 8), flush=True)
        next_row = args.every
        t = 0.0
        while t < total_s:
            await asyncio.sleep(1.0)
            if gw.poll() is not None:
                raise SystemExit(f"the gateway exited with {gw.returncode}; see its log")
            t = time.monotonic() - start
            rss.append((t, rss_mb(gw.pid)))
            if t_warm < 0 and t >= warmup_s:
                t_warm, cpu_warm, m_warm = t, cpu_s(gw.pid), await scrape(metrics_port)
                total = Window()
            if t >= next_row or t >= total_s:
                cpu_now, m_now = cpu_s(gw.pid), await scrape(metrics_port)
                (c1, o1), (c0, o0) = _cycles(m_now, plan.devices), _cycles(m_prev, plan.devices)
                print(_row(fmt, t, t - t_prev, rss[-1][1], cpu_now - cpu_prev, c1 - c0, o1 - o0, row), flush=True)
                cpu_prev, m_prev, t_prev, row = cpu_now, m_now, t, Window()
                next_row += args.every
        cpu_end, m_end = cpu_s(gw.pid), await scrape(metrics_port)
        await sub.delete()

    span = t - t_warm
    c_end, c_warm = poll_cycles(m_end, plan.devices), poll_cycles(m_warm, plan.devices)
    after = [y for x, y in rss if x >= t_warm]
    print()
    print(f"after a {t_warm:.0f} s warm-up, over {span:.0f} s (the machine is shared: other jobs run on both cores):")
    print(f"  gateway CPU       {100 * (cpu_end - cpu_warm) / span:.1f} % of one core (whole run, start-up excluded: {100 * (cpu_end - cpu0) / t:.1f} %)")
    print(f"  gateway RSS       {after[-1]:.1f} MB at the end, {min(after):.1f}..{max(after):.1f} MB after warm-up")
    print(f"  RSS growth slope  {slope_per_hour(rss, t_warm):+.1f} MB/h (least squares over {len(after)} one-second samples)")
    for label, iv in (("1 s", 1.0), ("100 ms", 0.1)):
        devs = [d for d, v in plan.devices.items() if v == iv]
        if devs:
            cyc = sum(c_end[d].cycles - c_warm[d].cycles for d in devs)
            over = sum(c_end[d].overruns - c_warm[d].overruns for d in devs)
            print(f"  poll at {label:<6}    {len(devs)} devices: {cyc:.0f} cycles in {len(devs) * span / iv:.0f} slots, {over:.0f} overruns (cycle > {iv:g} s)")
    reads = sum((c_end[d].cycles - c_warm[d].cycles) * TAGS_PER_DEVICE for d in plan.devices)
    offered = sum(TAGS_PER_DEVICE / iv for iv in plan.devices.values())
    if reads:
        per_read = (cpu_end - cpu_warm) / reads
        print(
            f"  CPU per tag read  {per_read * 1e6:.1f} us ({reads / span:,.0f} tag reads/s of {offered:,.0f} offered; "
            f"at the full rate: {100 * per_read * offered:.0f} % of one core)"
        )
    print(f"  notifications     {total.notifications / span:.0f}/s at the client")
    print(
        f"  latency           device change -> notification p50 {percentile(total.latency_ms, 0.5):.0f} ms, "
        f"p99 {percentile(total.latency_ms, 0.99):.0f} ms ({len(total.latency_ms)} stamps)"
    )
    print(
        f"                    gateway arrival (SourceTimestamp) -> notification p50 {percentile(total.gateway_ms, 0.5):.0f} ms, "
        f"p99 {percentile(total.gateway_ms, 0.99):.0f} ms"
    )
    for name in ("edgetwin_history_rows_written_total", "edgetwin_history_rows_dropped_total", "edgetwin_opcua_publish_failures_total"):
        v_end, v_warm = m_end.get((name, ())), m_warm.get((name, ()))
        if v_end is not None and v_warm is not None:
            print(f"  {name:<40} +{v_end - v_warm:.0f}")


def run(args: argparse.Namespace) -> None:
    import multiprocessing

    plan = make_plan(args.slow_tags, args.fast_tags)
    t0 = time.time()
    ctx = multiprocessing.get_context("spawn")
    ports_out = ctx.Queue()
    server = ctx.Process(target=serve, args=(plan.devices, t0, ports_out), name="soak-devices", daemon=True)
    server.start()
    try:
        plan.ports = ports_out.get(timeout=60)
    except Exception:
        server.terminate()
        raise SystemExit("the device servers did not start") from None
    opc_port, metrics_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    cfg = write_config(plan, folder, opc_port, metrics_port)
    slow = sum(1 for v in plan.devices.values() if v == 1.0) * TAGS_PER_DEVICE
    fast = sum(1 for v in plan.devices.values() if v == 0.1) * TAGS_PER_DEVICE
    print(f"{slow:,} tags at 1 s + {fast:,} at 100 ms on {len(plan.devices)} Modbus TCP devices (4 units each), {args.minutes:g} min; files in {folder}")
    if not args.first_start:  # a gateway's usual start: the shelf of asyncua's standard nodes exists (docs/performance.md)
        prep = (
            "import asyncio, sys, pathlib; from edge.opcua.standard_nodes import prepare, shelf_for\n"
            "shelf = shelf_for(pathlib.Path(sys.argv[1]))\nif shelf: asyncio.run(prepare(shelf))"
        )
        subprocess.run([sys.executable, "-c", prep, str(folder / "state" / "generated")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    log = (folder / "gateway.log").open("w")
    gw = subprocess.Popen([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        started = time.monotonic()
        assert gw.stdout is not None
        line = gw.stdout.readline()
        if "serving" not in line:
            raise SystemExit(f"the gateway did not start ({line!r}); see {folder / 'gateway.log'}")
        print(f"gateway pid {gw.pid} serving after {time.monotonic() - started:.1f} s, RSS {rss_mb(gw.pid):.1f} MB", flush=True)
        asyncio.run(measure(args, plan, gw, t0, opc_port, metrics_port))
    finally:
        gw.terminate()
        try:
            gw.wait(timeout=60)
        except subprocess.TimeoutExpired:
            gw.kill()
        log.close()
        server.terminate()
        server.join(5)
        shutil.rmtree(folder / "state", ignore_errors=True)  # the history database; the config and the log stay


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the run (default 5)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute run (20 s warm-up, a row every 10 s)")
    parser.add_argument("--slow-tags", type=int, default=10_000, help="tags polled every 1 s (multiple of 1,000; default 10,000)")
    parser.add_argument("--fast-tags", type=int, default=1_000, help="tags polled every 100 ms (multiple of 1,000; default 1,000; 0 for the footprint goal)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the totals and the slope (default 60)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between two table rows (default 30)")
    parser.add_argument("--publishing-ms", type=float, default=100.0, help="the client's publishing interval (default 100)")
    parser.add_argument("--first-start", action="store_true", help="start without the shelf of standard nodes, which the gateway then builds")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.warmup, args.every = 1.0, 20.0, 10.0
    run(args)


if __name__ == "__main__":
    main()
