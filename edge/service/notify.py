"""What the running gateway tells systemd: ready, what it is doing, that its event loop is alive,
and that it is stopping.

* ``READY=1`` once the OPC UA endpoint listens and every device has made its first connect attempt
  (connected or not; ``DeviceRunner.started``), or after ``ready_timeout_s`` at the latest, so a
  device whose connect hangs cannot hold the whole service in "activating".
* ``STATUS=serving 67 nodes, 1/1 devices up`` (``status_text``), sent again whenever it changes.
* ``WATCHDOG=1`` every half watchdog period from a task on the event loop (``systemd:watchdog``):
  a blocked loop stops the pings, and systemd restarts the service after ``WatchdogSec``.
* ``STOPPING=1`` with ``STATUS=stopping`` as soon as shutdown begins.

Without ``$NOTIFY_SOCKET`` nothing is started and every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from drivers.base import LinkState
from edge.core.sdnotify import Notifier, watchdog_period_s
from edge.core.tasks import cancel_and_wait

log = structlog.get_logger("edge.service.notify")

STATUS_INTERVAL_S = 1.0  # how often the status line is recomputed (sent only when it changed)
READY_TIMEOUT_S = 60.0  # READY=1 at the latest this long after the endpoint listens


class _Runner(Protocol):
    name: str
    started: asyncio.Event
    health: Any


class _Gateway(Protocol):
    """What the notifications read from the gateway (``edge.app.Gateway``)."""

    registry: Any
    supervisor: Any


def status_text(nodes: int, link_states: Sequence[LinkState], *, starting: int = 0) -> str:
    """The one-line status: ``serving 67 nodes, 1/1 devices up`` (``, 2 starting`` while devices
    have not yet made their first connect attempt)."""
    up = sum(1 for s in link_states if s is LinkState.CONNECTED)
    text = f"serving {nodes} nodes, {up}/{len(link_states)} devices up"
    if starting:
        text += f", {starting} starting"
    return text


class ServiceNotifications:
    """The systemd notifications of one gateway run; an async context entered before the server.

    ``started(gw)`` once the server listens and the poll tasks exist; ``await stopping()`` when the
    shutdown trigger fires. The tasks it starts are owned by *tasks* (the gateway's TaskGroup) and
    ended when the context exits.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        tasks: asyncio.TaskGroup,
        watchdog_s: float | None = None,
        status_interval_s: float = STATUS_INTERVAL_S,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.notifier = notifier
        self.watchdog_s = watchdog_s if notifier.enabled else None
        self.status_interval_s = status_interval_s
        self.ready_timeout_s = ready_timeout_s
        self.last_status: str | None = None
        self.watchdog_pings = 0
        self._tasks = tasks
        self._watchdog_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, *, tasks: asyncio.TaskGroup, environ: Mapping[str, str] | None = None) -> ServiceNotifications:
        env = os.environ if environ is None else environ
        return cls(Notifier.from_env(env), tasks=tasks, watchdog_s=watchdog_period_s(env, os.getpid()))

    async def __aenter__(self) -> ServiceNotifications:
        if self.notifier.enabled:
            self._send_status("starting")
        if self.watchdog_s is not None:
            self._watchdog_task = self._tasks.create_task(self._watchdog(self.watchdog_s / 2), name="systemd:watchdog")
            log.info("watchdog_enabled", period_s=self.watchdog_s, ping_every_s=self.watchdog_s / 2)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await cancel_and_wait(self._status_task)
        await cancel_and_wait(self._watchdog_task)
        self.notifier.close()

    def started(self, gw: _Gateway) -> None:
        """The endpoint listens and every poll task exists: send READY=1 once each device has made
        its first connect attempt, then keep the status line current."""
        if self.notifier.enabled and self._status_task is None:
            self._status_task = self._tasks.create_task(self._status(gw), name="systemd:status")

    async def stopping(self) -> None:
        """Shutdown began: STOPPING=1 and STATUS=stopping (the watchdog keeps pinging until the end)."""
        await cancel_and_wait(self._status_task)
        self._status_task = None
        if self.notifier.enabled:
            self.notifier.stopping("stopping")
            self.last_status = "stopping"

    async def _watchdog(self, every_s: float) -> None:
        # Runs on the event loop on purpose: if the loop is blocked, no ping goes out.
        while True:
            if self.notifier.watchdog():
                self.watchdog_pings += 1
            await asyncio.sleep(every_s)

    async def _status(self, gw: _Gateway) -> None:
        runners: Sequence[_Runner] = gw.supervisor.runners
        deadline = time.monotonic() + self.ready_timeout_s
        for r in runners:
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    await r.started.wait()
            except TimeoutError:
                break
        waiting = sorted(r.name for r in runners if not r.started.is_set())
        if waiting:
            log.warning("devices_slow_to_start", devices=waiting, waited_s=self.ready_timeout_s)
        text = self._text(gw)
        self.notifier.ready(text)
        self.last_status = text
        log.info("service_ready", status=text)
        while True:
            await asyncio.sleep(self.status_interval_s)
            self._send_status(self._text(gw))

    def _text(self, gw: _Gateway) -> str:
        runners: Sequence[_Runner] = gw.supervisor.runners
        states = [r.health.link_state for r in runners]
        return status_text(len(gw.registry), states, starting=sum(1 for r in runners if not r.started.is_set()))

    def _send_status(self, text: str) -> None:
        if text != self.last_status:
            self.notifier.status(text)
            self.last_status = text
