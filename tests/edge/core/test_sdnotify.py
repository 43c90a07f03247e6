"""The systemd notify protocol: addresses, watchdog settings and messages on a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edge.core import sdnotify
from edge.core.sdnotify import Notifier, reloading_message, socket_address, status_message, watchdog_period_s


@pytest.mark.parametrize(
    ("value", "address"),
    [
        (None, None),
        ("", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/123", "\0/org/freedesktop/systemd1/notify/123"),
    ],
)
def test_socket_address(value: str | None, address: str | None) -> None:
    assert socket_address(value) == address


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "4242"}, 0.2),  # ours
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_period(env: dict[str, str], period: float | None) -> None:
    assert watchdog_period_s(env, 4242) == period


def test_messages() -> None:
    assert status_message("serving 3 nodes,\n 1/1 devices up") == "STATUS=serving 3 nodes, 1/1 devices up"
    assert reloading_message(12_345_678_901) == "RELOADING=1\nMONOTONIC_USEC=12345678"


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def test_messages_arrive_on_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with _bind(path) as sock:
        n = Notifier.from_env({"NOTIFY_SOCKET": path})
        try:
            assert n.ready("serving 3 nodes, 1/1 devices up")
            assert n.watchdog()
            assert n.stopping()
            assert n.reloading()
        finally:
            n.close()
        got = [sock.recv(4096).decode() for _ in range(4)]
    assert got[0] == "READY=1\nSTATUS=serving 3 nodes, 1/1 devices up"
    assert got[1] == "WATCHDOG=1"
    assert got[2] == "STOPPING=1\nSTATUS=stopping"
    lines = got[3].split("\n")
    assert lines[0] == "RELOADING=1" and lines[2] == "STATUS=reloading configuration"
    sent_usec = int(lines[1].removeprefix("MONOTONIC_USEC="))
    assert abs(sent_usec - time.monotonic_ns() // 1000) < 5_000_000  # CLOCK_MONOTONIC, in microseconds


def test_messages_arrive_on_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"edgetwin-test-{os.getpid()}-{time.monotonic_ns()}"
    with _bind("\0" + name) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify_reloading()
        assert sdnotify.notify_ready("serving 1 nodes, 0/0 devices up")
        assert sdnotify.notify_status("reloaded")
        assert sock.recv(4096).decode().startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert sock.recv(4096).decode() == "READY=1\nSTATUS=serving 1 nodes, 0/0 devices up"
        assert sock.recv(4096).decode() == "STATUS=reloaded"


def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier.from_env().enabled
    assert not sdnotify.notify_ready() and not sdnotify.notify_reloading()


def test_a_missing_socket_is_logged_once_and_counted(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    with capture_logs() as logs:
        assert not n.watchdog()
        assert not n.watchdog()
        assert not n.status("x")
    n.close()
    assert n.failed == 3 and n.sent == 0
    assert [e["event"] for e in logs] == ["sd_notify_failed"]
