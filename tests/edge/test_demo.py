"""``edgetwin demo`` from the shipped config, and where the shipped files and the default config are."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from edge.config import parse_config
from edge.demo import demo_config
from edge.shipped import SOURCE_CONFIG_DIR, default_config_path, shipped_file

ROOT = Path(__file__).resolve().parents[2]


def _demo():
    path = shipped_file("demo.toml")
    return parse_config(path.read_text(), source=str(path))


def test_shipped_files_are_found_in_a_source_checkout() -> None:
    for name in ("demo.toml", "production.toml", "schema.json"):
        assert shipped_file(name) == SOURCE_CONFIG_DIR / name == ROOT / "config" / name
    with pytest.raises(FileNotFoundError, match=r"nothing\.toml is not in this installation"):
        shipped_file("nothing.toml")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "/etc/edgetwin/edgetwin.toml"),
        ({"CONFIGURATION_DIRECTORY": "/etc/edgetwin"}, "/etc/edgetwin/edgetwin.toml"),
        ({"CONFIGURATION_DIRECTORY": "/run/conf:/etc/other"}, "/run/conf/edgetwin.toml"),
        ({"CONFIGURATION_DIRECTORY": ""}, "/etc/edgetwin/edgetwin.toml"),
    ],
)
def test_default_config_path(env: dict[str, str], expected: str) -> None:
    assert default_config_path(env) == Path(expected)


def test_demo_config_without_overrides_is_the_shipped_one() -> None:
    cfg = _demo()
    assert demo_config(cfg) == cfg
    assert cfg.simulator.enabled and cfg.gateway.state_dir is None


def test_demo_config_moves_the_endpoint_the_plant_and_its_devices_and_the_state(tmp_path: Path) -> None:
    cfg = demo_config(_demo(), endpoint="opc.tcp://127.0.0.1:4999/x", modbus_port=5999, state_dir=tmp_path / "s")
    assert cfg.gateway.endpoint == "opc.tcp://127.0.0.1:4999/x"
    assert cfg.simulator.port == 5999
    assert [d.port for d in cfg.devices if d.driver == "modbus_tcp"] == [5999]  # the device that polls the plant
    assert cfg.state_path == tmp_path / "s"


def test_demo_config_refuses_a_bad_endpoint() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"opc\.tcp://"):
        demo_config(_demo(), endpoint="http://127.0.0.1:1/x")


@pytest.mark.slow  # a gateway process start-up: 5-20 s on a busy 2-core machine
def test_demo_serves_the_plant_and_stops_on_sigterm(tmp_path: Path, free_port_factory) -> None:
    """The command as a user runs it, from a folder without any config file."""
    endpoint = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    out_path = tmp_path / "out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "demo", "--endpoint", endpoint, "--modbus-port", str(free_port_factory()), "--log-level", "warning"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while f"Point your OPC UA client at {endpoint}" not in out_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text()[-2000:]
            time.sleep(0.1)

        async def read() -> ua.DataValue:
            async with Client(endpoint, timeout=5) as client:
                ns = await client.get_namespace_index("urn:edgetwin:demo")
                node = client.get_node(ua.NodeId("edgetwin/Devices/tank1_plc/level", ns))
                for _ in range(40):
                    dv = await node.read_data_value(raise_on_bad_status=False)
                    if dv.StatusCode.is_good():
                        break
                    await asyncio.sleep(0.25)
                return dv

        assert asyncio.run(read()).StatusCode.is_good()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, out_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out_path.read_text()
    state = Path(os.environ["XDG_STATE_HOME"]) / "edgetwin"  # the default folder (tests/conftest.py isolates it)
    assert f"(state in {state})" in text
    assert (state / "history.sqlite").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written in the working folder
