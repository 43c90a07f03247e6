"""The wheel as an operator installs it: built from a copy of the sources, installed into a fresh
virtualenv (dependencies from the package index), and ``edgetwin demo`` run from there with no
other file, read over OPC UA and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from asyncua import Client, ua

ROOT = Path(__file__).resolve().parents[1]
NS = "urn:edgetwin:demo"
IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.c", "*.html", "state", ".pytest_cache")


def _env() -> dict[str, str]:
    """The environment of an installed gateway: nothing points back at the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGE_KERNELS_PURE", "EDGE_REQUIRE_CYTHON", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("edge", "drivers", "kernels", "config"):
        shutil.copytree(ROOT / name, src / name, ignore=IGNORED)
    out = tmp_path / "wheels"
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(out), "-q"]
    result = subprocess.run(cmd, cwd=src, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = list(out.glob("edgetwin-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _check_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for family in ("kalman", "ident", "detect"):
        assert any(n.startswith(f"kernels/_{family}.") and n.endswith(".so") for n in names), f"compiled kernel _{family} missing from {wheel.name}"
    shipped = ["demo.toml", "production.toml", "schema.json"] + [p.name for p in (ROOT / "config").glob("*.service")]
    for name in shipped:
        assert f"edge/data/{name}" in names, f"{name} missing from {wheel.name}"
    assert (ROOT / "config" / "demo.toml").read_bytes() == zipfile.ZipFile(wheel).read("edge/data/demo.toml")
    assert not any(n.startswith(("tests/", "config/")) for n in names)


async def _read_good(endpoint: str, path: str, deadline_s: float) -> ua.DataValue:
    async with Client(endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        node = client.get_node(ua.NodeId(f"edgetwin/{path}", ns))
        end = time.monotonic() + deadline_s
        while True:
            dv = await node.read_data_value(raise_on_bad_status=False)
            if dv.StatusCode.is_good() or time.monotonic() > end:
                return dv
            await asyncio.sleep(0.5)


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path, free_port_factory) -> None:
    if os.environ.get("EDGE_KERNELS_PURE"):
        pytest.skip("the wheel is built with compiled kernels; this test runs in the compiled pass of scripts/test")
    wheel = _build_wheel(tmp_path)
    _check_contents(wheel)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], env=_env(), capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stderr[-3000:]

    edgetwin = venv / "bin" / "edgetwin"
    version = subprocess.run([str(edgetwin), "--version"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert "kernels   cython" in version.stdout and str(py) in version.stdout, version.stdout
    code = "import edge, kernels; print(edge.__file__); print(kernels.__file__)"
    where = subprocess.run([str(py), "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout

    endpoint = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    state = tmp_path / "state"
    out_path, err_path = tmp_path / "demo.out", tmp_path / "demo.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(edgetwin), "demo", "--endpoint", endpoint, "--modbus-port", str(free_port_factory()), "--state-dir", str(state)],
            cwd=tmp_path,
            env=_env(),
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 120
        while f"Point your OPC UA client at {endpoint}" not in out_path.read_text():
            assert proc.poll() is None, f"demo exited with {proc.returncode}: {out_path.read_text()[-2000:]} {err_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, out_path.read_text()[-2000:]
            time.sleep(0.2)
        dv = asyncio.run(_read_good(endpoint, "Devices/tank1_plc/temperature", deadline_s=30))
        assert dv.StatusCode.is_good(), dv
        assert isinstance(dv.Value.Value, float) and 0 < dv.Value.Value < 150
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (state / "history.sqlite").exists()  # the demo historizes into the state folder it was given
