"""Northbound subscriptions: notifications per second to one subscribed client, edgetwin next to a
stock asyncua server with the same nodes, in the same run.

    python benchmarks/bench_northbound.py [--tags 1000 10000] [--interval 0.1] [--seconds 10]

Per K, two server processes, one at a time, each serving K Double variables that all change every
``--interval`` seconds:

    edgetwin   ``edgetwin run`` on a generated config: one synthetic device (``tags = K``,
               ``pattern = "random_walk"``), security None, anonymous logins
    stock      a plain asyncua server (this script, ``--serve-stock``) with K variables in folders
               of 100 (asyncua's AddNodes slows down with the number of siblings), written from
               its own event loop every interval, as a gateway without edgetwin's publish path would

and this process as the client: an asyncua subscription (publishing interval 100 ms, queue 1) on
all K variables. It prints, per server: notifications/s received, latency p50 and p99 (arrival
minus the value's source timestamp), the server's CPU (% of one core) and RSS, and its longest
garbage-collection pause (``gc.callbacks`` inside the server process), then the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from bench_opcua_mirror import _cpu_s, _free_port

ROOT = Path(__file__).resolve().parents[1]
NS_STOCK = "urn:bench:stock"


def _watch_gc(report: Path) -> None:
    """Record the longest garbage-collection pause of this process; written to *report* at exit."""
    import atexit

    state = {"start": 0.0, "longest": 0.0, "gen2": 0.0}

    def cb(phase: str, info: dict) -> None:
        if phase == "start":
            state["start"] = time.perf_counter()
        else:
            pause = time.perf_counter() - state["start"]
            state["longest"] = max(state["longest"], pause)
            if info.get("generation") == 2:
                state["gen2"] = max(state["gen2"], pause)

    gc.callbacks.append(cb)
    atexit.register(lambda: report.write_text(json.dumps({"longest_s": state["longest"], "gen2_s": state["gen2"]})))


async def serve_stock(port: int, n: int, interval: float) -> None:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/stock")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NS_STOCK)
    root = await server.nodes.objects.add_folder(ua.NodeId("load", ns), ua.QualifiedName("load", ns))
    ids = []
    for start in range(0, n, 100):
        folder = await root.add_folder(ua.NodeId(f"F{start}", ns), ua.QualifiedName(f"F{start}", ns))
        for i in range(start, min(n, start + 100)):
            ids.append((await folder.add_variable(ua.NodeId(f"t{i}", ns), ua.QualifiedName(f"t{i}", ns), 0.0)).nodeid)
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


async def _measure(url: str, ns_uri: str, paths: list[str], seconds: float, pid: int) -> dict:
    from asyncua import Client, ua

    latencies: list[float] = []

    class Handler:
        def datachange_notification(self, node, val, data) -> None:
            src = data.monitored_item.Value.SourceTimestamp
            if src is not None:
                latencies.append(time.time() - src.timestamp())

    async with Client(url, timeout=60) as client:
        ns = await client.get_namespace_index(ns_uri)
        nodes = [client.get_node(ua.NodeId(p, ns)) for p in paths]
        sub = await client.create_subscription(100, Handler())
        for i in range(0, len(nodes), 1000):
            await sub.subscribe_data_change(nodes[i : i + 1000], queuesize=1)
        await asyncio.sleep(3.0)  # warm-up
        latencies.clear()
        cpu0, t0 = _cpu_s(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = _cpu_s(pid), time.monotonic()
        got = sorted(latencies)
        rss = _rss_mb(pid)
        await sub.delete()
    return {
        "rate": len(got) / (t1 - t0),
        "p50_ms": 1e3 * got[len(got) // 2] if got else float("nan"),
        "p99_ms": 1e3 * got[int(len(got) * 0.99)] if got else float("nan"),
        "cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0),
        "rss_mb": rss,
    }


def _stop(proc: subprocess.Popen, gc_file: Path) -> float:
    proc.terminate()
    proc.wait(timeout=60)
    try:
        return 1e3 * json.loads(gc_file.read_text())["longest_s"]
    except (OSError, ValueError, KeyError):
        return float("nan")


def run(n: int, interval: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        # edgetwin
        port = _free_port()
        cfg, gc_file = Path(tmp) / "gateway.toml", Path(tmp) / "gc_gateway.json"
        _gateway_config(cfg, port, n, interval)
        gw = subprocess.Popen(
            [sys.executable, __file__, "--run-gateway", str(cfg), str(gc_file)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert gw.stdout is not None and "serving" in gw.stdout.readline()
            paths = [f"gw/Devices/load/t{i}" for i in range(n)]
            rows["edgetwin"] = asyncio.run(_measure(f"opc.tcp://127.0.0.1:{port}/edgetwin", "urn:edgetwin:gateway", paths, seconds, gw.pid))
        finally:
            gc_ms = _stop(gw, gc_file)
        rows["edgetwin"]["gc_ms"] = gc_ms
        # stock asyncua
        port = _free_port()
        gc_file = Path(tmp) / "gc_stock.json"
        stock = subprocess.Popen([sys.executable, __file__, "--serve-stock", str(port), str(n), str(interval), str(gc_file)], stdout=subprocess.PIPE, text=True)
        try:
            assert stock.stdout is not None and stock.stdout.readline().strip() == "ready"
            paths = [f"t{i}" for i in range(n)]
            rows["stock"] = asyncio.run(_measure(f"opc.tcp://127.0.0.1:{port}/stock", NS_STOCK, paths, seconds, stock.pid))
        finally:
            gc_ms = _stop(stock, gc_file)
        rows["stock"]["gc_ms"] = gc_ms
    offered = n / interval
    print(f"K = {n:,} tags, each changing every {interval:g} s ({offered:,.0f} changes/s offered)")
    for name, r in rows.items():
        print(
            f"  {name:<9} {r['rate']:>9,.0f} notifications/s  p50 {r['p50_ms']:6.0f} ms  p99 {r['p99_ms']:6.0f} ms  "
            f"server CPU {r['cpu_pct']:5.1f} %  RSS {r['rss_mb']:6.0f} MB  longest GC pause {r['gc_ms']:6.1f} ms",
            flush=True,
        )
    if rows["stock"]["rate"]:
        print(f"  edgetwin / stock: {rows['edgetwin']['rate'] / rows['stock']['rate']:.2f}x notifications/s", flush=True)


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
    ap.add_argument("--tags", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between two changes of each tag")
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per server")
    args = ap.parse_args()
    for n in args.tags:
        run(n, args.interval, args.seconds)


if __name__ == "__main__":
    main()
