"""`edgetwin reload` against a gateway running as a subprocess (`edgetwin run`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.reload.pidfile import pid_path
from tests.edge.reload.gateway_configs import NS, gateway_toml

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

pytestmark = pytest.mark.slow


def _edgetwin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)


def test_reload_command_applies_refuses_and_finds_no_gateway(tmp_path: Path, free_port_factory) -> None:
    opc_port, mb_port, state = free_port_factory(), free_port_factory(), tmp_path / "state"
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(gateway_toml(opc_port, mb_port, state))
    log_path = tmp_path / "gateway.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=ENV)
    try:
        assert "is serving" in proc.stdout.readline(), log_path.read_text()
        assert pid_path(state).read_text().strip() == str(proc.pid)

        # a valid change: applied, and the command says what changed
        cfg.write_text(gateway_toml(opc_port, mb_port, state, version=2))
        done = _edgetwin("reload", str(cfg))
        assert done.returncode == 0, done.stderr
        assert f"reload applied by process {proc.pid}" in done.stdout
        assert (
            "tags added: tank1_plc.flow" in done.stdout
            and "tags removed: meter.power, tank1_plc.pump_speed" in done.stdout
            and "devices stop: meter" in done.stdout
        )

        # an invalid one: every error printed, nothing sent
        cfg.write_text(gateway_toml(opc_port, mb_port, state, version=2).replace('address = "ir:10"', 'address = "ir:70000"'))
        refused = _edgetwin("reload", str(cfg))
        assert refused.returncode == 1
        assert f"{cfg}:" in refused.stderr and "devices[0].tags[2].address" in refused.stderr
        assert "nothing sent, the gateway keeps its running config" in refused.stderr

        # a change that needs a restart is named; the gateway keeps serving its namespace
        cfg.write_text(gateway_toml(opc_port, mb_port, state, version=2).replace(NS, "urn:edgetwin:other"))
        partly = _edgetwin("reload", str(cfg))
        assert partly.returncode == 0, partly.stderr
        assert "not applied until a restart: gateway.namespace_uri" in partly.stdout
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    assert '"event": "reload_applied"' in log_text and '"event": "reload_needs_restart"' in log_text, log_text
    assert not pid_path(state).exists()

    gone = _edgetwin("reload", str(cfg))
    assert gone.returncode == 1 and f"no running gateway found (no pid file {pid_path(state)})" in gone.stderr


def test_reload_command_needs_a_config_or_a_pid() -> None:
    result = _edgetwin("reload")
    assert result.returncode == 2 and "give the config file the gateway runs, or --pid" in result.stderr
