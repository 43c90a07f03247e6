"""The `edgetwin` command as a user runs it: simulate, run with a bad config, run on a busy port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

ROOT = Path(__file__).resolve().parents[1]


def _start(args: list[str], log_path: Path) -> tuple[subprocess.Popen, object]:
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return proc, log


def test_simulate_serves_the_plant_and_stops_on_sigterm(tmp_path: Path, free_port: int) -> None:
    proc, log = _start(["simulate", "--port", str(free_port), "--fault", "bearing_wear"], tmp_path / "err.log")
    try:
        line = proc.stdout.readline()
        assert f"listening on 127.0.0.1:{free_port}" in line, (tmp_path / "err.log").read_text()

        async def read_fault_register() -> int:
            client = AsyncModbusTcpClient("127.0.0.1", port=free_port, timeout=2)
            await client.connect()
            try:
                rr = await client.read_holding_registers(10, count=1, device_id=1)
                return rr.registers[0]
            finally:
                client.close()

        assert asyncio.run(read_fault_register()) == 1  # --fault bearing_wear sets fault select = 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_run_with_a_broken_config_prints_every_error_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[gateway]\nendpont = "x"\n\n[[devices]]\nname = "p"\ndriver = "modbus"\n')
    result = subprocess.run([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{cfg}:2: gateway.endpont: unknown key (did you mean 'endpoint'?)",
        f"{cfg}:6: devices[0].driver: unknown driver 'modbus'; known drivers: modbus_rtu, modbus_tcp, opcua, synthetic",
    ]


@pytest.mark.parametrize("which", ["simulator", "opcua"])
def test_run_on_a_busy_port_fails_with_a_log_line_not_a_traceback(tmp_path: Path, free_port_factory, which: str) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        opcua_port, sim_port = (free_port_factory(), port) if which == "simulator" else (port, free_port_factory())
        text = (ROOT / "config" / "demo.toml").read_text()
        text = text.replace("127.0.0.1:4840", f"127.0.0.1:{opcua_port}").replace("port = 5020", f"port = {sim_port}")
        cfg = tmp_path / "demo.toml"
        cfg.write_text(text)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert result.returncode == 1
    assert "gateway_failed" in result.stderr and str(port) in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
