"""Northbound subscriptions: notifications per second to subscribed clients, edgetwin next to a
stock asyncua server with the same nodes, in the same run.

    python benchmarks/bench_northbound.py [--tags 10000 50000] [--clients 1 10] [--interval 0.1] [--seconds 8]

Per K, two server processes, one at a time, each serving K Double variables that all change every
``--interval`` seconds:

    edgetwin   ``edgetwin run`` on a generated config: one synthetic device (``tags = K``,
               ``pattern = "random_walk"``), security None, anonymous logins; its batches travel
               as columns (``drivers.columns``, ``edge.opcua.columnar``)
    rows       the same gateway with ``EDGE_COLUMNS=0``: each batch as a list of ``TagSample``, the
               per-sample publish path (``--servers edgetwin rows stock`` compares all three)
    stock      a plain asyncua server (this script, ``--serve-stock``) with K variables in folders
               of 100 (asyncua's AddNodes slows down with the number of siblings), written from
               its own event loop every interval, as a gateway without edgetwin's publish path would

and this process as the client(s): C lean subscribers (``northbound_client.py``: asyncua for the
session and the monitored items, then its own publish loop with four PublishRequests in flight,
reading each response in place without a Python object per notification), each with one
subscription (publishing interval 100 ms, queue 1) on all K variables; with C clients each tag
changes every ``C x --interval`` seconds, so that the offered load stays K / interval. It prints,
per server: notifications/s received by all clients together, latency p50 and p99 (arrival of the
response minus the value's source timestamp), the server's CPU (% of one core) and CPU µs per
notification, its RSS, and its longest garbage-collection pause and longest gen-2 pause while
serving with the number of gen-2 collections (``gc.callbacks`` inside the server process, reset when the
measuring window opens), its start-up (wall and CPU seconds from the process start to serving), then
the ratio. Each server run is bounded: ``--startup-bound`` seconds to start, then ``--bound``
(60 s) to subscribe, warm up and count; a server that does not make it is reported as such.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from bench_opcua_mirror import _cpu_s, _free_port, variables_server

ROOT = Path(__file__).resolve().parents[1]
NS_STOCK = "urn:bench:stock"


def _watch_gc(report: Path) -> None:
    """Record the garbage-collection pauses of this process: SIGUSR1 starts the window, SIGUSR2
    writes the longest pause, the longest gen-2 pause and the number of gen-2 collections in it to
    *report* (as does the exit)."""
    import atexit
    import signal

    state = {"start": 0.0, "longest": 0.0, "gen2": 0.0, "gen2_n": 0}

    def reset(*_: object) -> None:
        state["longest"] = state["gen2"] = 0.0
        state["gen2_n"] = 0

    def write(*_: object) -> None:
        report.write_text(json.dumps({"longest_s": state["longest"], "gen2_s": state["gen2"], "gen2_n": state["gen2_n"]}))

    signal.signal(signal.SIGUSR1, reset)
    signal.signal(signal.SIGUSR2, write)

    def cb(phase: str, info: dict) -> None:
        if phase == "start":
            state["start"] = time.perf_counter()
        else:
            pause = time.perf_counter() - state["start"]
            state["longest"] = max(state["longest"], pause)
            if info.get("generation") == 2:
                state["gen2"] = max(state["gen2"], pause)
                state["gen2_n"] += 1

    gc.callbacks.append(cb)
    atexit.register(write)


async def serve_stock(port: int, n: int, interval: float) -> None:
    from asyncua import ua

    server, ids = await variables_server(f"opc.tcp://127.0.0.1:{port}/stock", NS_STOCK, "load", n)
    aspace = server.iserver.aspace
    value = 0.0
    async with server:
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        while not stop.is_set():
            started = time.monotonic()
            value += 1.0
            stamp = datetime.now(UTC)
            for nid in ids:
                await aspace.write_attribute_value(nid, ua.AttributeIds.Value, ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=stamp))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - started)))


def _gateway_config(path: Path, port: int, n: int, interval: float) -> None:
    path.write_text(
        "\n".join(
            [
                "[gateway]",
                'name = "gw"',
                f'endpoint = "opc.tcp://127.0.0.1:{port}/edgetwin"',
                'log_level = "warning"',
                f'state_dir = "{path.parent / "state"}"',
                "[opcua]",
                'security_policies = ["None"]',
                "allow_anonymous = true",
                "[[devices]]",
                'name = "load"',
                'driver = "synthetic"',
                f"tags = {n}",
                f"interval_s = {interval}",
                'pattern = "random_walk"',
            ]
        )
        + "\n"
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(url: str, ns_uri: str, paths: list[str], seconds: float, pid: int, clients: int, window: list[float]) -> dict:
    """Count with *clients* lean subscribers; the server's CPU and GC window is the counting window."""
    import signal

    from northbound_client import LeanClient

    lean = [LeanClient(url, ns_uri, paths) for _ in range(clients)]
    ready = [asyncio.Event() for _ in lean]
    stop = asyncio.Event()
    out: dict = {}
    async with asyncio.TaskGroup() as tg:
        for i, (c, r) in enumerate(zip(lean, ready, strict=True)):
            tg.create_task(c.run(r, stop), name=f"bench:client:{i}")
        for r in ready:
            await r.wait()
        await asyncio.sleep(3.0)  # warm-up
        os.kill(pid, signal.SIGUSR1)
        for c in lean:
            c.tally.counting = True
        cpu0, t0 = _cpu_s(pid), time.monotonic()
        await asyncio.sleep(seconds)
        for c in lean:
            c.tally.counting = False
        cpu1, t1 = _cpu_s(pid), time.monotonic()
        os.kill(pid, signal.SIGUSR2)
        out["rss_mb"] = _rss_mb(pid)
        stop.set()
    window.append(t1 - t0)
    got = sorted(x for c in lean for x in c.tally.latencies)
    total = sum(c.tally.notifications for c in lean)
    cpu = cpu1 - cpu0
    return out | {
        "rate": total / (t1 - t0),
        "p50_ms": 1e3 * got[len(got) // 2] if got else float("nan"),
        "p99_ms": 1e3 * got[int(len(got) * 0.99)] if got else float("nan"),
        "cpu_pct": 100.0 * cpu / (t1 - t0),
        "us_per_notification": 1e6 * cpu / total if total else float("nan"),
    }


def _stop(proc: subprocess.Popen, gc_file: Path) -> tuple[float, float, int]:
    """Stop the server; (longest GC pause, longest gen-2 pause) in ms and the gen-2 collections, within the measuring window."""
    try:
        report = json.loads(gc_file.read_text())  # written on SIGUSR2 at the end of the window
    except (OSError, ValueError):
        report = {}
    proc.kill()
    proc.wait(timeout=60)
    return 1e3 * report.get("longest_s", float("nan")), 1e3 * report.get("gen2_s", float("nan")), report.get("gen2_n", -1)


def _serve_and_measure(
    cmd: list[str], ready_line: str, url: str, ns_uri: str, paths: list[str], seconds: float, clients: int, bounds: tuple[float, float], gc_file: Path,
    env: dict[str, str] | None = None,
) -> dict | None:  # fmt: skip
    """Start the server with *cmd*, wait for *ready_line* (at most ``bounds[0]`` seconds), measure
    (subscribing, warm-up and counting: at most ``bounds[1]``); None when it does not start."""
    import select

    startup_bound, bound = bounds
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=None if env is None else os.environ | env)
    row: dict | None = None
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], startup_bound)
        if ready and ready_line in proc.stdout.readline():
            startup, startup_cpu = time.monotonic() - started, _cpu_s(proc.pid)
            window: list[float] = []
            measure = _measure(url, ns_uri, paths, seconds, proc.pid, clients, window)
            try:
                row = asyncio.run(asyncio.wait_for(measure, bound))
                row["startup_s"], row["startup_cpu_s"] = startup, startup_cpu
            except TimeoutError:
                row = {"failed": f"not measured within {bound:g} s"}
            except Exception as exc:  # a client that lost its connection: say so and go on
                row = {"failed": f"{type(exc).__name__}: {exc}"[:160]}
    finally:
        gc_ms, gen2_ms, gen2_n = _stop(proc, gc_file)
    if row is not None and "failed" not in row:
        row["gc_ms"], row["gen2_ms"], row["gen2_n"] = gc_ms, gen2_ms, gen2_n
    return row


def run(n: int, interval: float, seconds: float, clients: int, bounds: tuple[float, float], servers: list[str]) -> None:
    tag_interval = interval * clients  # the offered load stays n / interval notifications/s
    with tempfile.TemporaryDirectory(prefix="bench_northbound_") as tmp:
        rows: dict[str, dict | None] = {}
        port = _free_port()
        cfg, gc_file = Path(tmp) / "gateway.toml", Path(tmp) / "gc_gateway.json"
        _gateway_config(cfg, port, n, tag_interval)
        # a gateway's usual start: the shelf of asyncua's standard nodes exists (docs/performance.md)
        prep = (
            "import asyncio, sys, pathlib; from edge.opcua.standard_nodes import prepare, shelf_for\n"
            "shelf = shelf_for(pathlib.Path(sys.argv[1]))\nif shelf: asyncio.run(prepare(shelf))"
        )
        subprocess.run([sys.executable, "-c", prep, str(Path(tmp) / "state" / "generated")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        rows["edgetwin"] = None if "edgetwin" not in servers else _serve_and_measure(
            [sys.executable, __file__, "--run-gateway", str(cfg), str(gc_file)], "serving",
            f"opc.tcp://127.0.0.1:{port}/edgetwin", "urn:edgetwin:gateway", [f"gw/Devices/load/t{i}" for i in range(n)],
            seconds, clients, bounds, gc_file,
        )  # fmt: skip
        if "rows" in servers:  # the same gateway, batches as TagSample lists (the per-sample path)
            port = _free_port()
            cfg, gc_file = Path(tmp) / "gateway_rows.toml", Path(tmp) / "gc_rows.json"
            _gateway_config(cfg, port, n, tag_interval)
            rows["rows"] = _serve_and_measure(
                [sys.executable, __file__, "--run-gateway", str(cfg), str(gc_file)], "serving",
                f"opc.tcp://127.0.0.1:{port}/edgetwin", "urn:edgetwin:gateway", [f"gw/Devices/load/t{i}" for i in range(n)],
                seconds, clients, bounds, gc_file, env={"EDGE_COLUMNS": "0"},
            )  # fmt: skip
        port = _free_port()
        gc_file = Path(tmp) / "gc_stock.json"
        rows["stock"] = None if "stock" not in servers else _serve_and_measure(
            [sys.executable, __file__, "--serve-stock", str(port), str(n), str(tag_interval), str(gc_file)], "ready",
            f"opc.tcp://127.0.0.1:{port}/stock", NS_STOCK, [f"t{i}" for i in range(n)], seconds, clients, bounds, gc_file,
        )  # fmt: skip
    offered = n / interval
    print(f"K = {n:,} tags, {clients} client(s), each tag changing every {tag_interval:g} s ({offered:,.0f} notifications/s offered in all)")
    for name, r in rows.items():
        if name not in servers:
            continue
        if r is None or "failed" in r:
            print(f"  {name:<9} " + (f"did not start within {bounds[0]:g} s" if r is None else f"failed: {r['failed']}"), flush=True)
            continue
        print(
            f"  {name:<9} {r['rate']:>9,.0f} notifications/s  p50 {r['p50_ms']:6.0f} ms  p99 {r['p99_ms']:6.0f} ms  "
            f"server CPU {r['cpu_pct']:5.1f} % ({r['us_per_notification']:5.1f} µs/notification)  RSS {r['rss_mb']:6.0f} MB  "
            f"longest GC pause {r.get('gc_ms', float('nan')):6.1f} ms (gen 2: {r.get('gen2_n', -1)} runs, longest {r.get('gen2_ms', float('nan')):6.1f} ms)",
            flush=True,
        )
        print(f"  {'':<9} start-up to serving {r['startup_s']:.1f} s wall, {r['startup_cpu_s']:.1f} s CPU (process start, imports included)", flush=True)
    gw, stock = rows["edgetwin"], rows["stock"]
    if gw and stock and "rate" in gw and stock.get("rate"):
        print(f"  edgetwin / stock: {gw['rate'] / stock['rate']:.2f}x notifications/s", flush=True)
    per_sample = rows.get("rows")
    if gw and per_sample and "rate" in gw and "rate" in per_sample:
        print(f"  columns / rows: {per_sample['us_per_notification'] / gw['us_per_notification']:.1f}x less CPU per notification", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-stock":
        _watch_gc(Path(sys.argv[5]))
        asyncio.run(serve_stock(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--run-gateway":
        _watch_gc(Path(sys.argv[3]))
        sys.path.insert(0, str(ROOT))
        from edge.cli import main as cli

        raise SystemExit(cli(["run", sys.argv[2]]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, nargs="+", default=[10000, 50000])
    ap.add_argument("--clients", type=int, nargs="+", default=[1], help="subscribed clients (each on all tags); 10 for the spread row")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between two changes of each tag with one client")
    ap.add_argument("--seconds", type=float, default=8.0, help="measuring window per server")
    ap.add_argument("--bound", type=float, default=60.0, help="seconds per server run once it serves: subscribing, warm-up and measuring")
    ap.add_argument("--startup-bound", type=float, default=240.0, help="seconds a server may take to start")
    ap.add_argument("--servers", nargs="+", default=["edgetwin", "stock"], choices=["edgetwin", "rows", "stock"])
    args = ap.parse_args()
    for n in args.tags:
        for clients in args.clients:
            run(n, args.interval, args.seconds, clients, (args.startup_bound, args.bound), args.servers)


if __name__ == "__main__":
    main()
