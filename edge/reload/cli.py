"""``edgetwin reload [CONFIG] [--pid PID]``: ask a running gateway to re-read its config.

The config is validated here first, so the operator sees its errors without the journal (nothing
is sent then: the gateway would refuse it too). The gateway is found by the pid file in the
config's state folder (or ``--pid``) and sent SIGHUP; the outcome is read from its reload status
file. Exit 0 when the reload was applied, 1 otherwise (refused, failed, no gateway, no answer).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge.config import ConfigError, GatewayConfig, load_config
from edge.reload.pidfile import looks_like_gateway, pid_path, process_alive, read_pid, read_status, status_path


def config_loader(path: str | Path, *, endpoint: str | None = None) -> Callable[[], GatewayConfig]:
    """What a reload of ``edgetwin run PATH [--endpoint URL]`` reads: the file, with the same override."""

    def load() -> GatewayConfig:
        cfg = load_config(path)
        if endpoint:
            cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"endpoint": endpoint})})
        return cfg

    return load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reload",
        help="make a running gateway re-read its config (SIGHUP), keeping client sessions",
        description=(
            "Validate the config file here, then send SIGHUP to the gateway that runs it (found by the pid file in its state "
            "folder, or --pid) and print the outcome: applied (what changed, and any keys that need a restart) or refused "
            "(every error; the gateway keeps its running config). Connected OPC UA sessions stay connected. Under systemd, "
            "`systemctl reload edgetwin` does the same."
        ),
    )
    p.add_argument("config", nargs="?", help="the config file the gateway runs (default: the installed one, as for `edgetwin run`; validated here first)")
    p.add_argument("--pid", type=int, help="the gateway's process id (default: from <state_dir>/edgetwin.pid)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the outcome (default 30)")
    p.set_defaults(func=reload_command)


def _err(text: str) -> None:
    print(f"edgetwin reload: {text}", file=sys.stderr)


def reload_command(args: argparse.Namespace) -> int:
    if args.config is None and args.pid is None:
        from edge.shipped import default_config_path

        if not default_config_path().is_file():
            _err(f"no config file at {default_config_path()}; give the config file the gateway runs, or --pid")
            return 2
        args.config = default_config_path()
    state: Path | None = None
    if args.config is not None:
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            _err(f"{args.config} has {len(exc.problems)} error(s); nothing sent, the gateway keeps its running config")
            return 1
        state = cfg.state_path
    pid = args.pid
    if pid is None:
        assert state is not None
        pid = read_pid(pid_path(state))
        if pid is None:
            _err(f"no running gateway found (no pid file {pid_path(state)})")
            return 1
    if not process_alive(pid):
        _err(f"no running gateway found (process {pid} does not exist)")
        return 1
    if not looks_like_gateway(pid):
        _err(f"process {pid} is not an edgetwin gateway (a stale pid file?); nothing sent")
        return 1
    status_file = status_path(state) if state is not None else None
    before = read_status(status_file) if status_file is not None else None
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        _err(f"cannot signal process {pid}: {exc.strerror}")
        return 1
    if status_file is None:
        print(f"reload requested from process {pid} (its log says how it went)")
        return 0
    outcome = _wait_outcome(status_file, pid, before, args.timeout)
    if outcome is None:
        _err(f"sent SIGHUP to process {pid}, but no outcome within {args.timeout:g} s; see the gateway's log")
        return 1
    return _report(outcome, pid)


def _wait_outcome(path: Path, pid: int, before: dict | None, timeout_s: float) -> dict | None:
    seen = before.get("count", 0) if before is not None and before.get("pid") == pid else 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = read_status(path)
        if status is not None and status.get("pid") == pid and status.get("count", 0) > seen:
            return status
        time.sleep(0.1)
    return None


def _report(outcome: dict, pid: int) -> int:
    result = outcome.get("result")
    if result == "applied":
        changes = outcome.get("changes") or {}
        done = "; ".join(f"{k.replace('_', ' ')}: {', '.join(v)}" for k, v in changes.items() if isinstance(v, list)) or "no change"
        print(f"reload applied by process {pid}: {done}")
        if outcome.get("needs_restart"):
            print(f"not applied until a restart: {', '.join(outcome['needs_restart'])}")
        return 0
    for line in outcome.get("errors") or []:
        print(line, file=sys.stderr)
    _err(f"reload {result} by process {pid}; the gateway keeps its running config")
    return 1
