"""The gateway's OPC UA server against hostile peers, over loopback: what a peer can take.

Starts the server (``OpcUaServer``, default ``[opcua.limits]``, None policy, anonymous viewers and
one user) in a subprocess and measures, from this process:

1. memory: 4 connections each send HEL, a MSG header announcing 2 GB and then up to 64 MB; the
   server's RSS growth at its peak and after the connections close;
2. lock-out: 1,100 idle TCP connections, then a real client connects and reads (time taken);
3. stall: another process reads 10,000 items 3 times while a client here reads one value in a
   loop (its worst and median latency);
4. guessing: wrong passwords for 15 s from one address, sequentially (guesses answered).

    python benchmarks/bench_opcua_hostile.py

Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from asyncua import Client, ua
from asyncua.ua.ua_binary import uatcp_to_binary

ROOT = Path(__file__).resolve().parents[1]
N_TAGS = 50
NS = "urn:edgetwin:bench-hostile"

SERVER = f"""
import asyncio, sys
from drivers.sample import Status, TagSample, utcnow
from edge.core.logconfig import configure_logging
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory, UserEntry, hash_password, parse_password_hash

async def main(url):
    configure_logging("warning", stream=sys.stderr)
    reg = TagRegistry()
    for i in range({N_TAGS}):
        reg.add(TagInfo(f"plc.t{{i}}", ("Devices", "plc", f"t{{i}}"), "float64", description="tag"))
    users = UserDirectory([UserEntry("otto", parse_password_hash(hash_password("right")), Role.OPERATOR)], anonymous_role=Role.VIEWER)
    async with OpcUaServer(reg, endpoint=url, namespace_uri="{NS}", gateway_name="gw", users=users) as server:
        now = utcnow()
        reg.publish([TagSample(f"plc.t{{i}}", float(i), Status.Good, now, now) for i in range({N_TAGS})])
        await server.drain()
        server.freeze_heap()  # as the daemon does once ready
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(sys.argv[1]))
"""

BIG_READS = f"""
import asyncio, sys, time
from asyncua import Client, ua

async def main(url, ns):
    async with Client(url, timeout=120, watchdog_intervall=120) as c:
        p = ua.ReadParameters()
        p.NodesToRead = [ua.ReadValueId(NodeId=ua.NodeId(f"gw/Devices/plc/t{{i % {N_TAGS}}}", ns), AttributeId=13) for i in range(10_000)]
        t0 = time.perf_counter()
        for _ in range(3):
            assert len(await c.uaclient.read(p)) == 10_000
        print((time.perf_counter() - t0) / 3)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hello(url: str) -> bytes:
    msg = ua.Hello(ProtocolVersion=0, ReceiveBufferSize=65535, SendBufferSize=65535, MaxMessageSize=0, MaxChunkCount=0, EndpointUrl=url)
    return uatcp_to_binary(ua.MessageType.Hello, msg)


async def huge_headers(url: str, port: int, pid: int) -> None:
    base = rss_mib(pid)
    peak = base
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    sent = 0
    for _, w in conns:
        w.write(hello(url) + struct.pack("<3scII", b"MSG", b"F", 2**31, 1))
    chunk = b"\0" * 65536
    for _ in range(1024):  # up to 64 MB per connection
        alive = 0
        for _, w in conns:
            if w.is_closing():
                continue
            try:
                w.write(chunk)
                await asyncio.wait_for(w.drain(), 2)
                sent += len(chunk)
                alive += 1
            except (ConnectionError, TimeoutError):
                w.close()
        peak = max(peak, rss_mib(pid))
        if not alive:
            break
    for _, w in conns:
        w.close()
    await asyncio.sleep(1)
    print(f"1. 4 x 2 GB headers: {sent / 2**20:.1f} MB accepted in all; server RSS +{peak - base:.1f} MB at peak, +{rss_mib(pid) - base:.1f} MB after close")


async def lockout(url: str, port: int) -> None:
    idle = []
    for _ in range(1100):
        with contextlib.suppress(OSError):
            idle.append(await asyncio.open_connection("127.0.0.1", port))
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    try:
        async with Client(url, timeout=10) as c:
            ns = await c.get_namespace_index(NS)
            value = await c.get_node(ua.NodeId("gw/Devices/plc/t7", ns)).read_value()
        result = f"connected and read {value} in {time.perf_counter() - t0:.2f} s"
    except Exception as exc:
        result = f"refused: {exc!r}"
    for _, w in idle:
        w.close()
    print(f"2. after {len(idle)} idle connections a real client {result}")


async def stall(url: str) -> None:
    async with Client(url, timeout=30, watchdog_intervall=60) as c:
        ns = await c.get_namespace_index(NS)
        node = c.get_node(ua.NodeId("gw/Devices/plc/t1", ns))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", BIG_READS, url, str(ns), stdout=asyncio.subprocess.PIPE, env=env)
        lat: list[float] = []
        reader = asyncio.create_task(proc.communicate(), name="big-reads")
        while not reader.done():
            t0 = time.perf_counter()
            await node.read_value()
            lat.append(time.perf_counter() - t0)
        out, _ = await reader
        lat.sort()
        print(
            f"3. 10,000-item reads took {float(out.decode()):.2f} s each; another client's reads meanwhile: "
            f"n={len(lat)}, median {lat[len(lat) // 2] * 1000:.1f} ms, worst {lat[-1] * 1000:.0f} ms"
        )


async def guessing(url: str) -> None:
    answered, t_end = 0, time.monotonic() + 15
    while time.monotonic() < t_end:
        c = Client(url, timeout=60)
        c.set_user("otto")
        c.set_password("guess")
        with contextlib.suppress(Exception):
            await c.connect()
        answered += 1
        with contextlib.suppress(Exception):
            await c.disconnect()
    print(f"4. wrong passwords answered in 15 s from one address: {answered} ({answered / 15:.1f}/s)")


async def main() -> None:
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/edgetwin"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        while b"ready" not in proc.stdout.readline():
            pass
        await huge_headers(url, port, proc.pid)
        await lockout(url, port)
        await stall(url)
        await guessing(url)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


if __name__ == "__main__":
    logging.disable(logging.ERROR)  # the client's own lines for every refused login
    asyncio.run(main())
