"""Benchmark of a config reload on a running gateway with many tags, watched by an OPC UA client.

    python benchmarks/bench_reload.py [--tags 1000]

The gateway runs in this process with the simulated plant (Modbus TCP on 127.0.0.1) as its device:
one device of N int16 tags (spread over the plant's input registers 0..4) and one asset following
tag 0. A client subscribes to the asset's Estimate (it changes every 0.1 s tick) and to the first
100 tags. Then the config file changes and the gateway gets SIGHUP:

* no change          the same file again
* asset only         the asset's alarm threshold
* 10 % of the tags   N/10 tags removed, N/10 new ones added (the device restarts)

Rows: a quiet window without reload (the baseline gap), then per reload: its duration (SIGHUP to the outcome in the status file), the longest gap between
Estimate notifications around the reload (the unchanged asset's twin keeps running), whether the
client's session stayed, and for the tag change the time until every added tag reads Good.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from asyncua import Client, ua

from edge.app import run_gateway
from edge.config import load_config
from edge.core.logconfig import configure_logging
from edge.reload.pidfile import read_status, status_path

NS = "urn:edgetwin:bench-reload"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(opc: int, mb: int, state: Path, names: list[str], threshold: float) -> str:
    head = f"""
[gateway]
endpoint = "opc.tcp://127.0.0.1:{opc}/edgetwin"
namespace_uri = "{NS}"
state_dir = "{state}"
log_level = "warning"

[opcua]
security_policies = ["None"]
allow_anonymous = true

[simulator]
enabled = true
port = {mb}

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {mb}
poll_interval_s = 0.5
"""
    tags = "".join(f'\n  [[devices.tags]]\n  name = "{n}"\n  address = "ir:{i % 5}"\n  type = "int16"\n' for i, n in enumerate(names))
    asset = f"""
[[assets]]
name = "tank"
tick_s = 0.1
warmup_ticks = 3
alarm_threshold = {threshold}

  [[assets.signals]]
  name = "t0"
  tag = "plc.{names[0]}"
"""
    return head + tags + asset


class _Gaps:
    def __init__(self) -> None:
        self.times: list[float] = []

    def datachange_notification(self, node, val, data) -> None:
        if node.nodeid.Identifier.endswith("Estimate"):
            self.times.append(time.monotonic())

    def max_gap(self, start: float, end: float) -> float:
        t = [x for x in self.times if start - 1.0 <= x <= end + 1.0]
        return max((b - a for a, b in itertools.pairwise(t)), default=float("nan"))


async def _reload(path: Path, text: str, state: Path, count: int) -> tuple[float, dict]:
    path.write_text(text)
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGHUP)
    while True:
        status = read_status(status_path(state))
        if status is not None and status["count"] >= count:
            return time.monotonic() - started, status
        await asyncio.sleep(0.005)


async def main(n: int) -> None:
    configure_logging(os.environ.get("BENCH_LOG", "warning"))
    with tempfile.TemporaryDirectory() as tmp:
        state, path = Path(tmp) / "state", Path(tmp) / "gateway.toml"
        opc, mb = _port(), _port()
        names = [f"t{i}" for i in range(n)]
        path.write_text(_config(opc, mb, state, names, 9.0))
        stop, ready = asyncio.Event(), asyncio.Event()
        t0 = time.monotonic()
        task = asyncio.create_task(run_gateway(load_config(path), shutdown_trigger=stop.wait, on_ready=lambda gw: ready.set()), name="gateway")
        await ready.wait()
        print(f"{n} tags: gateway ready in {time.monotonic() - t0:.1f} s")
        try:
            async with Client(f"opc.tcp://127.0.0.1:{opc}/edgetwin", timeout=30) as client:
                ns = await client.get_namespace_index(NS)
                gaps = _Gaps()
                sub = await client.create_subscription(50, gaps)
                watched = [client.get_node(ua.NodeId("edgetwin/Assets/tank/t0/Estimate", ns))]
                watched += [client.get_node(ua.NodeId(f"edgetwin/Devices/plc/{t}", ns)) for t in names[:100]]
                await sub.subscribe_data_change(watched)
                await asyncio.sleep(3.0)
                quiet = time.monotonic()
                await asyncio.sleep(4.0)
                print(f"  {'no reload (baseline)':<22} {'':>14}   longest Estimate gap {gaps.max_gap(quiet + 1.0, quiet + 3.0) * 1000:5.0f} ms")
                rows = []
                k = n // 10
                new_names = names[:1] + names[k + 1 :] + [f"new{i}" for i in range(k)]  # the asset keeps its tag
                steps = [
                    ("no change", _config(opc, mb, state, names, 9.0)),
                    ("asset only", _config(opc, mb, state, names, 12.0)),
                    (f"{k} tags out, {k} in", _config(opc, mb, state, new_names, 12.0)),
                ]
                for i, (label, text) in enumerate(steps, 1):
                    before = time.monotonic()
                    took, status = await _reload(path, text, state, i)
                    assert status["result"] == "applied", status
                    extra = ""
                    if "tags_added" in status["changes"]:
                        added = [client.get_node(ua.NodeId(f"edgetwin/Devices/plc/new{j}", ns)) for j in range(k)]
                        while True:
                            dvs = await client.read_attributes(added, ua.AttributeIds.Value)
                            if all(dv.StatusCode.is_good() for dv in dvs):
                                break
                            await asyncio.sleep(0.05)
                        extra = f", every added tag Good {time.monotonic() - before:.2f} s after SIGHUP"
                    await asyncio.sleep(2.0)
                    rows.append((label, took, gaps.max_gap(before, before + took)))
                    print(f"  {label:<22} reload {took * 1000:7.0f} ms, longest Estimate gap {rows[-1][2] * 1000:5.0f} ms{extra}")
                sessions = await client.get_node(ua.NodeId("edgetwin/Diagnostics/Gateway/Sessions", ns)).read_value()
                print(f"  the client's session stayed: {sessions == 1}")
                await sub.delete()
        finally:
            stop.set()
            await task


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tags", type=int, default=1000)
    asyncio.run(main(p.parse_args().tags))
