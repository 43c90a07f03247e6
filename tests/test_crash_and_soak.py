"""Crashes and restarts: SIGKILL during history writes loses nothing committed and invents nothing;
a device killed and restarted 100 times leaves no growth of tasks, file descriptors or memory."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from drivers.modbus.address import Area
from drivers.sample import Status
from edge.app import run_gateway
from edge.config import parse_config
from edge.history.store import HistoryStore, from_us
from tests.drivers.modbus_servers import PymodbusServer

ROOT = Path(__file__).resolve().parents[1]


def _history_config(state: Path, port: int) -> str:
    return f"""
[gateway]
endpoint = "opc.tcp://127.0.0.1:{port}/edgetwin"
state_dir = "{state}"
log_level = "warning"

[opcua]
security_policies = ["None"]
allow_anonymous = true

[history]
flush_interval_s = 0.05

[[devices]]
name = "load"
driver = "synthetic"
interval_s = 0.01
pattern = "counter"

  [[devices.tags]]
  name = "count"
  type = "int64"
  pattern = "counter"
  historize = true
"""


def _rows(db: Path) -> list[tuple[int, int, int]]:
    store = HistoryStore(db, retention_days=365, max_db_mb=1024)
    store.open()
    try:
        assert store._require(store._r).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [(r.source_us, r.status, r.value) for r in store.read("load.count", None, None)]
    finally:
        store.close()


def _start(cfg: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None and "serving" in proc.stdout.readline()
    return proc


@pytest.mark.slow
def test_sigkill_during_history_writes_loses_nothing_committed_and_the_gap_stays_a_gap(tmp_path: Path, free_port_factory) -> None:
    state = tmp_path / "state"
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(_history_config(state, free_port_factory()))
    db = state / "history.sqlite"

    gw = _start(cfg)
    time.sleep(2.0)  # 100 samples a second, flushed every 50 ms
    committed = _rows(db)  # read by another connection: only committed rows are visible
    gw.send_signal(signal.SIGKILL)
    gw.wait(timeout=10)
    killed_at_us = int(time.time() * 1e6)
    after_kill = _rows(db)  # the database opens, intact, after the kill
    assert len(committed) > 50
    assert after_kill[: len(committed)] == committed  # nothing that was committed is lost
    values = [v for _, _, v in after_kill]
    assert values == sorted(values) and len(set(values)) == len(values)  # in order, nothing doubled

    time.sleep(0.5)
    gw = _start(cfg)
    time.sleep(1.0)
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(timeout=30) == 0
    restarted = _rows(db)
    assert restarted[: len(after_kill)] == after_kill
    new = restarted[len(after_kill) :]
    assert new and all(status == Status.Good for _, status, _ in new)
    # the outage is a gap: no row stamped between the last one before the kill and the restart
    last_before = after_kill[-1][0]
    assert all(src > killed_at_us for src, _, _ in new), (from_us(last_before), from_us(new[0][0]))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
async def test_a_device_killed_and_restarted_100_times_leaves_no_growth(tmp_path: Path, free_port_factory) -> None:
    """The supervisor reconnects 100 times; tasks, file descriptors and traced memory stay flat."""
    device = PymodbusServer(free_port_factory())
    await device.start()
    text = f"""
[gateway]
endpoint = "opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
state_dir = "{tmp_path / "state"}"
backoff_initial_s = 0.05
backoff_max_s = 0.2

[opcua]
security_policies = ["None"]

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {device.port}
timeout_s = 0.2
poll_interval_s = 0.05

  [[devices.tags]]
  name = "level"
  address = "hr:3"
  type = "int16"
"""
    cfg = parse_config(text, str(tmp_path / "gateway.toml"))
    stop, ready = asyncio.Event(), asyncio.Event()
    gws = []
    gateway = asyncio.create_task(run_gateway(cfg, shutdown_trigger=stop.wait, on_ready=lambda gw: (gws.append(gw), ready.set())), name="gateway")
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        registry = gws[0].registry

        async def good(value: int) -> None:
            async with asyncio.timeout(10):
                while not (registry.latest("plc.level").status == Status.Good and registry.latest("plc.level").value == value):
                    await asyncio.sleep(0.02)

        await device.set(Area.HOLDING, 3, [0])
        await good(0)
        baseline: tuple[int, int, int] | None = None
        tracemalloc.start()
        try:
            for cycle in range(1, 101):
                await device.stop()
                async with asyncio.timeout(10):
                    while registry.latest("plc.level").status == Status.Good:
                        await asyncio.sleep(0.02)
                await device.start()
                await device.set(Area.HOLDING, 3, [cycle])
                await good(cycle)
                if cycle == 20:  # after warm-up: caches, pools and lazily created objects exist
                    gc.collect()
                    baseline = (len(asyncio.all_tasks()), _open_fds(), tracemalloc.get_traced_memory()[0])
            gc.collect()
            tasks, fds, memory = len(asyncio.all_tasks()), _open_fds(), tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert baseline is not None
        assert tasks <= baseline[0] and fds <= baseline[1], (baseline, (tasks, fds))
        assert memory - baseline[2] < 2 * 1024 * 1024, f"traced memory grew {(memory - baseline[2]) / 1024:.0f} KiB over 80 restarts"
        assert gws[0].supervisor.runners[0].health.reconnects >= 100
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await gateway
        await device.stop()


def test_the_database_of_a_killed_gateway_is_not_left_locked(tmp_path: Path) -> None:
    """A writer killed mid-transaction (a child process holding BEGIN) leaves a database the next
    opener can write: SQLite's WAL recovery, as the restarted gateway relies on."""
    db = tmp_path / "h.sqlite"
    store = HistoryStore(db, retention_days=1, max_db_mb=10)
    store.open()
    store.close()
    child = subprocess.Popen(
        [sys.executable, "-c", f"import sqlite3,time; c=sqlite3.connect({str(db)!r}, isolation_level=None); c.execute('BEGIN IMMEDIATE'); "
         "c.execute(\"INSERT INTO tags(key) VALUES ('x')\"); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    conn = sqlite3.connect(db, timeout=1)
    try:
        assert conn.execute("SELECT count(*) FROM tags WHERE key = 'x'").fetchone()[0] == 0  # the uncommitted insert is gone
        conn.execute("INSERT INTO tags(key) VALUES ('y')")
        conn.commit()
    finally:
        conn.close()
