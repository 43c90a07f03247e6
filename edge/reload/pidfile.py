"""The files by which ``edgetwin reload`` finds a running gateway and learns how its reload went.

``<state_dir>/edgetwin.pid`` holds the gateway's process id while it runs (written at start,
removed at exit). ``<state_dir>/edgetwin.reload.json`` holds the outcome of its latest reload:
``{"pid", "count", "result", "config", "changes", "needs_restart", "errors"}`` with ``result``
one of ``applied``, ``rejected``, ``failed``; ``count`` grows by one per reload of that process.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from edge.core.statedir import StateDir

log = structlog.get_logger("edge.reload")

STATUS_FILE = "edgetwin.reload.json"


def pid_path(state_dir: Path) -> Path:
    return StateDir(state_dir).pid_file


def status_path(state_dir: Path) -> Path:
    return state_dir / STATUS_FILE


@contextlib.contextmanager
def pid_file(path: Path) -> Iterator[None]:
    """Write this process's id to *path* for the duration; remove it on exit if it is still ours."""
    pid = os.getpid()
    other = read_pid(path)
    if other is not None and other != pid and process_alive(other):
        log.warning("pid_file_taken", path=str(path), pid=other, hint="another gateway uses the same state_dir")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, f"{pid}\n")
    try:
        yield
    finally:
        if read_pid(path) == pid:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def read_pid(path: Path) -> int | None:
    """The process id in *path*, or None when the file is missing or holds no number."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def looks_like_gateway(pid: int) -> bool:
    """False when /proc says process *pid* is not an edgetwin gateway (a stale pid file whose number
    now belongs to another program); True when it is, or when /proc cannot tell."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return any(part == b"edge" or b"edgetwin" in part for part in cmdline)


def write_status(path: Path, *, count: int, result: str, config: str, changes: Mapping[str, Any], needs_restart: Sequence[str], errors: Sequence[str]) -> None:
    record = {
        "pid": os.getpid(),
        "count": count,
        "result": result,
        "config": config,
        "changes": dict(changes),
        "needs_restart": list(needs_restart),
        "errors": list(errors),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(record, indent=1) + "\n")


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
