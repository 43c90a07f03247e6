"""Start-up of the northbound address space: time and memory per variable, by tag count.

    python benchmarks/bench_startup.py [--tags 1000 10000 50000] [--folders 1 50]

Each N runs in a fresh process: ``run_gateway`` on a config with one synthetic device of N float64
tags (``tags = N``: one device folder holding N variables, or spread over ``--folders`` devices),
until it is ready (the OPC UA endpoint listens). It prints the seconds from the start of
``run_gateway`` to ready (wall clock and the process's CPU time: on a loaded machine the CPU time is
the steadier figure), the part of it spent building the gateway's registry and device runners
(``Gateway.__init__``, CPU) and the instance tree of the address space (``ModelBuilder.build_instances``),
the RSS growth over an empty gateway, and that growth per variable. The shelf of asyncua's standard
nodes is built before the clock starts, as every start after the first finds it (``--first-start``:
the gateway builds it, as on a first start).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def config(n: int, folders: int, port: int, state: str) -> str:
    head = f"""
[gateway]
endpoint = "opc.tcp://127.0.0.1:{port}/edgetwin"
state_dir = "{state}"
log_level = "warning"

[opcua]
security_policies = ["None"]
allow_anonymous = true
"""
    per = [n // folders + (1 if i < n % folders else 0) for i in range(folders)]
    devices = "".join(f'\n[[devices]]\nname = "load{i}"\ndriver = "synthetic"\ntags = {k}\ninterval_s = 3600\n' for i, k in enumerate(per) if k)
    return head + devices


def one(n: int, folders: int, first_start: bool = False) -> dict:
    """Run in the child: build and start the gateway once, report time and memory."""
    import socket

    from edge.app import Gateway, run_gateway
    from edge.config import parse_config
    from edge.core.logconfig import configure_logging
    from edge.opcua.model import ModelBuilder

    configure_logging("warning")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tempfile.mkdtemp()
    cfg = parse_config(config(n, folders, port, state), str(Path(state) / "g.toml"))
    if not first_start:  # a gateway's usual start: the shelf of standard nodes exists (built in another process: RSS)
        prep = (
            "import asyncio, sys, pathlib; from edge.opcua.standard_nodes import prepare, shelf_for\n"
            "shelf = shelf_for(pathlib.Path(sys.argv[1]))\nif shelf: asyncio.run(prepare(shelf))"
        )
        subprocess.run([sys.executable, "-c", prep, str(Path(state) / "generated")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    gc.collect()
    before = rss_bytes()
    result: dict = {}
    build = ModelBuilder.build_instances

    async def timed_build(self: ModelBuilder) -> None:  # the instance tree: the part that grows with the tags
        wall, cpu = time.perf_counter(), time.process_time()
        await build(self)
        result["build_seconds"], result["build_cpu"] = time.perf_counter() - wall, time.process_time() - cpu

    ModelBuilder.build_instances = timed_build  # type: ignore[method-assign]
    init = Gateway.__init__

    def timed_init(self: Gateway, *args: object, **kwargs: object) -> None:  # registry, runners, twins
        cpu = time.process_time()
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        result["gateway_cpu"] = time.process_time() - cpu

    Gateway.__init__ = timed_init  # type: ignore[method-assign]

    async def main() -> None:
        started, cpu = time.perf_counter(), time.process_time()
        stop = asyncio.Event()

        def ready(gw) -> None:
            result["seconds"] = time.perf_counter() - started
            result["cpu"] = time.process_time() - cpu
            result["nodes"] = len(gw.registry)
            gc.collect()
            result["rss_growth"] = rss_bytes() - before
            stop.set()

        await run_gateway(cfg, shutdown_trigger=stop.wait, on_ready=ready)

    async def measure() -> None:
        task = asyncio.create_task(main())
        await task

    asyncio.run(measure())
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--folders", type=int, nargs="+", default=[1], help="device folders the tags are spread over (one row each)")
    ap.add_argument("--first-start", action="store_true", help="no shelf of standard nodes yet: the gateway builds it")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(one(args.child, args.folders[0], args.first_start)))
        return
    base = None
    print(f"{'tags':>8} {'folders':>8} {'start s':>9} {'CPU s':>7} {'Gateway CPU s':>14} {'build s':>8} {'build CPU s':>12} {'RSS MB':>8} {'KB/variable':>12}")
    for n, folders in [(0, 1), *((n, f) for n in args.tags for f in args.folders)]:
        cmd = [sys.executable, __file__, "--child", str(n), "--folders", str(folders), *(["--first-start"] if args.first_start else [])]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"tags={n}: failed")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        times = f"{r['seconds']:>9.2f} {r['cpu']:>7.2f} {r['gateway_cpu']:>14.2f} {r['build_seconds']:>8.2f} {r['build_cpu']:>12.2f}"
        if n == 0:
            base = r
            print(f"{0:>8} {'':>8} {times}  (an empty gateway: the baseline)")
            continue
        growth = r["rss_growth"] - base["rss_growth"]
        print(f"{n:>8} {folders:>8} {times} {growth / 2**20:>8.1f} {growth / n / 1024:>12.2f}")


if __name__ == "__main__":
    main()
