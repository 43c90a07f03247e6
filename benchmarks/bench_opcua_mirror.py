"""Tags mirrored from an upstream OPC UA server to a northbound client, end to end.

    python benchmarks/bench_opcua_mirror.py [--tags 1000 10000] [--period 1.0] [--seconds 15]

Three processes on loopback, so each side's CPU is its own:

    upstream   an asyncua server (this script, ``--serve-upstream``) with N Double variables; every
               ``--period`` seconds it writes the current wall-clock time into each of them
    gateway    ``edgetwin run`` on a generated config: one ``driver = "opcua"`` device mirroring
               the N variables by subscription (publishing interval 0.1 s), served northbound
    client     this process: an asyncua client subscribed to the N northbound nodes (publishing
               interval 0.1 s); each notification's latency is its arrival time minus the value

Per N it prints the mirrored changes per second that reached the client, the latency p50/p99
(upstream write to northbound notification, both on this machine's clock), and the gateway's CPU
per 1,000 tags/s (its user+system time over the window from /proc, divided by the rate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NS = "urn:bench:upstream"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def variables_server(endpoint: str, ns_uri: str, root: str, n: int) -> tuple[Any, list[Any]]:
    """An asyncua Server at *endpoint* (no security, not started) with *n* Double variables
    ``<root>/F<k>/t<i>`` in namespace *ns_uri*, and their NodeIds. Folders of 100: asyncua's
    add_nodes slows down with the number of siblings."""
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(ns_uri)
    top = await server.nodes.objects.add_folder(ua.NodeId(root, ns), ua.QualifiedName(root, ns))
    ids = []
    for start in range(0, n, 100):
        folder = await top.add_folder(ua.NodeId(f"F{start}", ns), ua.QualifiedName(f"F{start}", ns))
        for i in range(start, min(n, start + 100)):
            ids.append((await folder.add_variable(ua.NodeId(f"t{i}", ns), ua.QualifiedName(f"t{i}", ns), ua.Variant(0.0, ua.VariantType.Double))).nodeid)
    return server, ids


async def serve_upstream(port: int, n: int, period: float) -> None:
    from asyncua import ua

    server, ids = await variables_server(f"opc.tcp://127.0.0.1:{port}/up", NS, "Plant", n)
    aspace = server.iserver.aspace
    async with server:
        print("ready", flush=True)
        while True:
            started = time.monotonic()
            for nid in ids:
                await aspace.write_attribute_value(nid, ua.AttributeIds.Value, ua.DataValue(ua.Variant(time.time(), ua.VariantType.Double)))
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


def _config(path: Path, up_port: int, north_port: int, n: int) -> None:
    lines = [
        "[gateway]",
        'name = "gw"',
        f'endpoint = "opc.tcp://127.0.0.1:{north_port}/edgetwin"',
        'log_level = "warning"',
        f'state_dir = "{path.parent / "state"}"',
        "[opcua]",
        'security_policies = ["None"]',
        "allow_anonymous = true",
        "[[devices]]",
        'name = "up"',
        'driver = "opcua"',
        f'endpoint = "opc.tcp://127.0.0.1:{up_port}/up"',
        "publishing_interval_s = 0.1",
        "sampling_interval_s = 0.0",
        "queue_size = 1",
    ]
    for i in range(n):
        lines += ["[[devices.tags]]", f'name = "t{i}"', f'node = "nsu={NS};s=t{i}"', 'type = "float64"']
    path.write_text("\n".join(lines) + "\n")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(north_port: int, n: int, seconds: float, gateway_pid: int) -> tuple[float, float, float, float]:
    from asyncua import Client, ua

    latencies: list[float] = []

    class Handler:
        def datachange_notification(self, node, val, data) -> None:
            if isinstance(val, float) and val > 0:
                latencies.append(time.time() - val)

    async with Client(f"opc.tcp://127.0.0.1:{north_port}/edgetwin", timeout=30) as client:
        ns = await client.get_namespace_index("urn:edgetwin:gateway")
        nodes = [client.get_node(ua.NodeId(f"gw/Devices/up/t{i}", ns)) for i in range(n)]
        sub = await client.create_subscription(100, Handler())
        for i in range(0, n, 1000):
            await sub.subscribe_data_change(nodes[i : i + 1000], queuesize=1)
        await asyncio.sleep(3.0)  # warm-up: initial values and the first cycles
        latencies.clear()
        cpu0, t0 = _cpu_s(gateway_pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = _cpu_s(gateway_pid), time.monotonic()
        got = list(latencies)
        await sub.delete()
    rate = len(got) / (t1 - t0)
    got.sort()
    p50 = got[len(got) // 2] if got else float("nan")
    p99 = got[int(len(got) * 0.99)] if got else float("nan")
    cpu_per_1000 = (cpu1 - cpu0) / (t1 - t0) / (rate / 1000) if rate else float("nan")
    return rate, p50, p99, cpu_per_1000


def run(n: int, period: float, seconds: float) -> None:
    up_port, north_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "gateway.toml"
        _config(cfg, up_port, north_port, n)
        up = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port), str(n), str(period)], stdout=subprocess.PIPE, text=True)
        gw = None
        try:
            assert up.stdout is not None and up.stdout.readline().strip() == "ready"
            gw = subprocess.Popen([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert gw.stdout is not None and "serving" in gw.stdout.readline()
            rate, p50, p99, cpu = asyncio.run(_measure(north_port, n, seconds, gw.pid))
        finally:
            for proc in (gw, up):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
    offered = n / period
    print(
        f"  {n:>6} tags, {offered:>8,.0f} changes/s offered: {rate:>8,.0f} mirrored/s, "
        f"latency p50 {p50 * 1e3:6.0f} ms p99 {p99 * 1e3:6.0f} ms, gateway CPU {cpu:5.3f} s per 1,000 tags/s",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-upstream":
        asyncio.run(serve_upstream(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--period", type=float, default=1.0, help="seconds between two changes of each tag")
    ap.add_argument("--seconds", type=float, default=15.0, help="measuring window per size")
    args = ap.parse_args()
    print(f"upstream -> edgetwin (opcua driver, subscription) -> northbound client; each tag changes every {args.period:g} s")
    for n in args.tags:
        run(n, args.period, args.seconds)


if __name__ == "__main__":
    main()
