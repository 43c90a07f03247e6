"""The pid and reload status files, and `edgetwin reload` refusing a pid that is no gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge.reload.pidfile import looks_like_gateway, pid_file, read_pid, read_status, write_status

ROOT = Path(__file__).resolve().parents[3]


def test_the_pid_file_exists_while_the_gateway_runs_and_only_its_own_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "state" / "edgetwin.pid"
    with pid_file(path):
        assert read_pid(path) == os.getpid()
    assert not path.exists()
    with pid_file(path):
        path.write_text("999999999\n")  # another gateway took it over meanwhile: not ours to remove
    assert read_pid(path) == 999999999
    path.write_text("not a number")
    assert read_pid(path) is None and read_pid(tmp_path / "missing") is None


def test_status_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "edgetwin.reload.json"
    write_status(path, count=2, result="rejected", config="g.toml", changes={}, needs_restart=[], errors=["g.toml:3: a: b"])
    assert read_status(path) == {
        "pid": os.getpid(), "count": 2, "result": "rejected", "config": "g.toml", "changes": {}, "needs_restart": [], "errors": ["g.toml:3: a: b"],
    }  # fmt: skip
    path.write_text("{broken")
    assert read_status(path) is None


def test_reload_refuses_a_process_that_is_not_a_gateway() -> None:
    """A stale pid file may name a pid that now belongs to another program: it is never signalled."""
    assert not looks_like_gateway(os.getpid())  # this is pytest
    result = subprocess.run([sys.executable, "-m", "edge", "reload", "--pid", str(os.getpid())], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "is not an edgetwin gateway" in result.stderr
