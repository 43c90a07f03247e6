"""A real gateway run tells systemd what it does, over a real AF_UNIX datagram socket bound by the test:
STATUS=starting, READY=1 once the endpoint listens and the device made its first connect attempt,
STATUS updates when the device's link changes, WATCHDOG=1 from the event loop (and none while the
loop is blocked), STOPPING=1 at shutdown."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.app import run_gateway
from edge.config import parse_config
from tests.drivers.modbus_servers import PymodbusServer

CONFIG = """
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{opcua_port}/edgetwin"
state_dir = "{state}"
backoff_initial_s = 0.1
backoff_max_s = 0.2

[opcua]
security_policies = ["None"]
allow_anonymous = true

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.3
retries = 0
poll_interval_s = 0.05

  [[devices.tags]]
  name = "level"
  address = "hr:1"
  type = "uint16"

  [[devices.tags]]
  name = "temp"
  address = "ir:2"
  type = "int16"
"""

WATCHDOG_USEC = 200_000  # pings every 0.1 s


@dataclass
class Received:
    """Datagrams with their arrival time (monotonic), received in a thread so a blocked event loop
    does not delay the timestamps."""

    messages: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.messages)

    def texts(self) -> list[str]:
        return [m for _, m in self.all()]

    def pings(self) -> list[float]:
        return [t for t, m in self.all() if m == "WATCHDOG=1"]

    async def wait_for(self, predicate, timeout: float, what: str) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            for t, m in self.all():
                if predicate(m):
                    return t, m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g} s; received {self.texts()}")
            await asyncio.sleep(0.02)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    name = f"edgetwin-notify-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)  # abstract namespace, as systemd uses
    sock.settimeout(0.05)
    got = Received()
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            with got.lock:
                got.messages.append((time.monotonic(), data.decode()))

    thread = threading.Thread(target=receive, name="notify-receiver", daemon=True)
    thread.start()
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield got
    finally:
        stop.set()
        thread.join(2)
        sock.close()


@pytest.mark.slow
async def test_ready_status_watchdog_and_stopping(notify_socket: Received, tmp_path: Path, free_port_factory) -> None:
    got = notify_socket
    modbus = PymodbusServer(free_port_factory())
    await modbus.start()
    cfg = parse_config(CONFIG.format(opcua_port=free_port_factory(), modbus_port=modbus.port, state=tmp_path / "state"), str(tmp_path / "gw.toml"))
    stop = asyncio.Event()
    listening_at: list[float] = []
    gateway = asyncio.create_task(run_gateway(cfg, shutdown_trigger=stop.wait, on_ready=lambda gw: listening_at.append(time.monotonic())), name="gateway")
    try:
        ready_t, ready = await got.wait_for(lambda m: m.startswith("READY=1"), 15, "READY=1")
        assert got.texts()[0] == "STATUS=starting"
        # READY only after the endpoint listens, with what the gateway does
        assert listening_at and listening_at[0] <= ready_t
        nodes = ready.split("STATUS=serving ")[1].split(" nodes")[0]
        assert int(nodes) > 2  # the two tags, their device's diagnostics and the gateway's
        assert ready == f"READY=1\nSTATUS=serving {nodes} nodes, 1/1 devices up"

        # the watchdog pings every half period
        await asyncio.sleep(0.6)
        pings = got.pings()
        assert len(pings) >= 4
        gaps = [b - a for a, b in zip(pings[-4:], pings[-3:])]
        assert all(0.05 < g < 0.3 for g in gaps), gaps

        # a blocked event loop sends no ping; the pings resume once it runs again
        block: list[float] = []

        def blocking_callback() -> None:
            block.append(time.monotonic())
            time.sleep(0.5)  # a CPU-bound bug or a blocking call on the loop
            block.append(time.monotonic())

        asyncio.get_running_loop().call_soon(blocking_callback)
        await asyncio.sleep(0.05)  # returns only after the block
        await asyncio.sleep(0.35)
        blocked_from, blocked_to = block
        assert blocked_to - blocked_from >= 0.5
        during = [t for t in got.pings() if blocked_from + 0.01 < t < blocked_to]
        assert during == []
        after = [t for t in got.pings() if t > blocked_to]
        assert len(after) >= 2 and after[0] - blocked_to < 0.15

        # the status line follows the device's link
        await modbus.stop()
        await got.wait_for(lambda m: m == f"STATUS=serving {nodes} nodes, 0/1 devices up", 10, "the status of a device that went down")
        await modbus.start()
        down_index = got.texts().index(f"STATUS=serving {nodes} nodes, 0/1 devices up")
        await got.wait_for(
            lambda m: m == f"STATUS=serving {nodes} nodes, 1/1 devices up" and got.texts().index(m, down_index) > down_index,
            10,
            "the status of the device back up",
        )
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await gateway
        await modbus.stop()
    stopping_t, _ = await got.wait_for(lambda m: m == "STOPPING=1\nSTATUS=stopping", 1, "STOPPING=1")
    assert gateway.exception() is None
    # the watchdog keeps pinging during the shutdown (the server closes after STOPPING=1), then stops
    final = got.pings()
    assert any(t > stopping_t for t in final)
    await asyncio.sleep(0.3)
    assert got.pings() == final


async def test_ready_comes_even_when_the_device_is_unreachable(notify_socket: Received, tmp_path: Path, free_port_factory) -> None:
    got = notify_socket
    cfg = parse_config(CONFIG.format(opcua_port=free_port_factory(), modbus_port=free_port_factory(), state=tmp_path / "state"), str(tmp_path / "gw.toml"))
    stop = asyncio.Event()
    gateway = asyncio.create_task(run_gateway(cfg, shutdown_trigger=stop.wait), name="gateway")
    try:
        _, ready = await got.wait_for(lambda m: m.startswith("READY=1"), 15, "READY=1")
        assert ready.endswith(" nodes, 0/1 devices up")
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await gateway
    assert "STOPPING=1\nSTATUS=stopping" in got.texts()
