"""SIGTERM while the gateway polls hard: a subprocess gateway polls 400 tags every 20 ms from an
in-process pymodbus server, started as systemd would (``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC``); it
says READY, keeps the watchdog fed while polling, says STOPPING and exits 0 within its configured
shutdown timeout; every line of its log is valid JSON, and nothing is logged per poll at INFO."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.drivers.modbus_servers import REGISTERS, PymodbusServer

ROOT = Path(__file__).resolve().parents[1]
SHUTDOWN_TIMEOUT_S = 5.0
POLL_S = 0.02


def _config(opcua_port: int, modbus_port: int, state: Path) -> str:
    tags = []
    for area in ("hr", "ir"):
        for i in range(REGISTERS):
            tags.append(f'  [[devices.tags]]\n  name = "{area}{i}"\n  address = "{area}:{i}"\n  type = "uint16"\n')
    return f"""
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{opcua_port}/edgetwin"
state_dir = "{state}"
shutdown_timeout_s = {SHUTDOWN_TIMEOUT_S}

[opcua]
security_policies = ["None"]
allow_anonymous = true

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 1.0
poll_interval_s = {POLL_S}

""" + "\n".join(tags)


def _strict(line: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not valid JSON: {constant} in {line!r}")

    return json.loads(line, parse_constant=refuse)


@pytest.mark.slow
async def test_sigterm_during_heavy_polling_exits_0_within_the_shutdown_timeout(tmp_path: Path, free_port_factory) -> None:
    modbus = PymodbusServer(free_port_factory())
    await modbus.start()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(_config(free_port_factory(), modbus.port, tmp_path / "state"))
    log_path = tmp_path / "gateway.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(f"\0edgetwin-sigterm-test-{os.getpid()}-{time.monotonic_ns()}")
    notify.setblocking(False)
    received: list[tuple[float, str]] = []

    async def receive() -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(notify, 4096)
            received.append((time.monotonic(), data.decode()))

    receiver = asyncio.create_task(receive(), name="notify-receiver")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": "@" + notify.getsockname()[1:].decode(), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    with log_path.open("w") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge",
            "run",
            str(cfg),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            env=env,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(60):
                line = await proc.stdout.readline()
            assert b"Point your OPC UA client at" in line, log_path.read_text()
            polling_from = time.monotonic()
            await asyncio.sleep(3.0)  # dozens of poll cycles of 400 tags (4 requests each)
            requests_before = len(modbus.pdus)
            await asyncio.sleep(0.5)
            requests = len(modbus.pdus) - requests_before
            assert requests > 20, "the gateway is not polling"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                code = await proc.wait()
            took = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await modbus.stop()
            await asyncio.sleep(0.1)
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            notify.close()
    log = log_path.read_text()
    assert code == 0, log
    assert took < SHUTDOWN_TIMEOUT_S
    texts = [m for _, m in received]
    assert any(m.startswith("READY=1\nSTATUS=serving ") and m.endswith(" nodes, 1/1 devices up") for m in texts), texts
    assert "STOPPING=1\nSTATUS=stopping" in texts
    pings = [t for t, m in received if m == "WATCHDOG=1" and polling_from <= t <= started]
    assert len(pings) >= 5, f"the watchdog starved while polling: {len(pings)} pings in {started - polling_from:.1f} s"
    events = [_strict(line) for line in log.splitlines()]  # every line is one valid JSON object
    names = [e["event"] for e in events]
    assert names[-1] == "gateway_stopped" and "gateway_stopping" in names
    # nothing per poll at INFO or above: no event repeats, although dozens of cycles ran
    repeated = {n: c for n, c in Counter(e["event"] for e in events if e["level"] != "debug").items() if c > 1}
    assert repeated == {}, repeated
    print(f"{requests / 0.5:.0f} requests/s; SIGTERM -> exit 0 in {took:.2f} s (shutdown_timeout_s = {SHUTDOWN_TIMEOUT_S:g})")
