"""The gateway as a real process (config/demo.toml plus [mqtt]): births from the running daemon,
NDEATH delivered by the broker (the Will) after SIGKILL, and NDEATH from the gateway on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.edge.mqtt.broker import Recorder

ROOT = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, broker_port: int, free_port_factory: Any) -> Path:
    text = (ROOT / "config" / "demo.toml").read_text()
    plant_port = free_port_factory()
    text = text.replace("127.0.0.1:4840", f"127.0.0.1:{free_port_factory()}").replace("port = 5020", f"port = {plant_port}")
    text = text.replace('log_level = "info"', f'log_level = "info"\nstate_dir = "{tmp_path / "state"}"', 1)
    text += f"""
[mqtt]
broker = "mqtt://127.0.0.1:{broker_port}"
client_id = "edgetwin-line3"
sparkplug_group = "plant1"
sparkplug_node = "line3"
keepalive_s = 5
"""
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(text)
    return cfg


def _start(cfg: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _bd_seq(payload: Any) -> int:
    return next(m.long_value for m in payload.metrics if m.name == "bdSeq")


async def test_sigkill_ndeath_from_the_broker(broker: Any, tmp_path: Path, free_port_factory: Any) -> None:
    """SIGKILL: the broker publishes the NDEATH registered as the Will, with the NBIRTH's bdSeq."""
    cfg = _config(tmp_path, broker.port, free_port_factory)
    async with Recorder(broker.port) as rec:
        proc = _start(cfg, tmp_path / "gateway.log")
        try:
            expected = {"spBv1.0/plant1/DBIRTH/line3/tank1_plc", "spBv1.0/plant1/DBIRTH/line3/tank1"}
            await rec.wait_for(lambda: {t for t, _ in rec.of("DBIRTH")} == expected, timeout=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await rec.wait_for(lambda: rec.of("NDEATH"), timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        (_, nbirth), (_, ndeath) = rec.of("NBIRTH")[0], rec.of("NDEATH")[0]
        assert _bd_seq(ndeath) == _bd_seq(nbirth)
        assert not ndeath.HasField("seq")


@pytest.mark.slow  # the OPC UA server of the demo config takes most of the time to start
async def test_sigterm_publishes_ndeath_and_keeps_the_rest(broker: Any, tmp_path: Path, free_port_factory: Any) -> None:
    """SIGTERM: the gateway publishes NDEATH itself before it disconnects and exits 0."""
    cfg = _config(tmp_path, broker.port, free_port_factory)
    async with Recorder(broker.port) as rec:
        proc = _start(cfg, tmp_path / "gateway.log")
        try:
            await rec.wait_for(lambda: rec.of("DDATA"), timeout=30)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, (tmp_path / "gateway.log").read_text()
            await rec.wait_for(lambda: rec.of("NDEATH"), timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert _bd_seq(rec.of("NDEATH")[0][1]) == _bd_seq(rec.of("NBIRTH")[0][1])
