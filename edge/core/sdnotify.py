"""The systemd notify protocol (``sd_notify(3)``), written over a plain ``AF_UNIX`` datagram socket.

systemd passes the address of its notification socket in ``$NOTIFY_SOCKET`` (a path, or an abstract
socket name when it starts with ``@``). A message is one datagram of ``KEY=value`` lines:
``READY=1`` (start-up finished), ``STATUS=...`` (one line shown by ``systemctl status``),
``WATCHDOG=1`` (keep-alive), ``STOPPING=1`` (shutdown began) and ``RELOADING=1`` with
``MONOTONIC_USEC=`` (a reload began; ``READY=1`` ends it).

Without ``$NOTIFY_SOCKET`` (not started by systemd, or a unit that is not ``Type=notify``) every
call is a no-op. Sending never raises: a failure is logged once (``sd_notify_failed``) and counted.

For code outside the gateway's own lifecycle (the config reload), ``notify_reloading()`` and
``notify_ready()`` send one message each with a short-lived socket.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("edge.core.sdnotify")


def socket_address(value: str | None) -> str | None:
    """The address to send to for a ``$NOTIFY_SOCKET`` value: ``@name`` is the abstract socket
    ``\\0name``; an empty or missing value means no notifications."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    return value


def watchdog_period_s(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog period systemd asks for (``$WATCHDOG_USEC``), or None when there is none or it
    is meant for another process (``$WATCHDOG_PID`` set and not *pid*). A malformed value is None."""
    usec = environ.get("WATCHDOG_USEC", "")
    try:
        period = int(usec)
    except ValueError:
        return None
    if period <= 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            return None
    return period / 1_000_000


def status_message(text: str) -> str:
    """``STATUS=<text>`` on one line (systemd shows a single line; newlines would start new keys)."""
    return "STATUS=" + " ".join(text.split())


def reloading_message(monotonic_ns: int | None = None) -> str:
    """``RELOADING=1`` with the ``CLOCK_MONOTONIC`` time in microseconds, as ``Type=notify-reload`` requires."""
    ns = time.monotonic_ns() if monotonic_ns is None else monotonic_ns
    return f"RELOADING=1\nMONOTONIC_USEC={ns // 1000}"


class Notifier:
    """Sends notifications to one systemd notification socket; a no-op without an address."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.sent = 0
        self.failed = 0
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(socket_address(env.get("NOTIFY_SOCKET")))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram made of *lines*; True if it was sent (False without a socket, or on error)."""
        if self.address is None or not lines:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # never stall the event loop; a full queue drops the message
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            self.failed += 1
            if not self._failing:
                self._failing = True
                log.warning("sd_notify_failed", socket=self.address.replace("\0", "@"), error=str(exc))
            return False
        self.sent += 1
        if self._failing:
            self._failing = False
            log.info("sd_notify_recovered", failed=self.failed)
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([status_message(status)] if status is not None else []))

    def status(self, text: str) -> bool:
        return self.send(status_message(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = "stopping") -> bool:
        return self.send("STOPPING=1", *([status_message(status)] if status is not None else []))

    def reloading(self, status: str | None = "reloading configuration") -> bool:
        return self.send(reloading_message(), *([status_message(status)] if status is not None else []))

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def notify_reloading(status: str | None = "reloading configuration") -> bool:
    """Tell systemd a reload began (``RELOADING=1``, ``MONOTONIC_USEC=``); call ``notify_ready`` when it ends."""
    notifier = Notifier.from_env()
    try:
        return notifier.reloading(status)
    finally:
        notifier.close()


def notify_ready(status: str | None = None) -> bool:
    """Tell systemd the gateway is ready (again, after a reload), with an optional status line."""
    notifier = Notifier.from_env()
    try:
        return notifier.ready(status)
    finally:
        notifier.close()


def notify_status(text: str) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    notifier = Notifier.from_env()
    try:
        return notifier.status(text)
    finally:
        notifier.close()
