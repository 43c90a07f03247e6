"""Owned asyncio tasks: cancel-and-wait, and supervised long-lived loops.

Every long-lived task has a name and one owner. Northbound loops (the OPC UA publish loop, the
history writer, the alarms loop, and any later sink) run under ``supervise``: a loop that raises
is logged at once (``task_crashed``, with the traceback) and started again after a capped,
jittered backoff (``task_restarted``), so one unexpected error never silently ends the data flow.
Cancellation is never caught: it ends the loop and its supervisor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from edge.core.backoff import Backoff

log = structlog.get_logger("edge.core.tasks")

Loop = Callable[[], Awaitable[None]]

RESTART_INITIAL_S = 0.1
RESTART_MAX_S = 10.0
HEALTHY_AFTER_S = 60.0  # a loop that ran this long before crashing restarts after the initial delay


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a task this object owns and wait for it to finish.

    The task's own CancelledError is absorbed; a cancellation of the *caller* (shutdown of the
    caller's task) is re-raised, never swallowed.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def supervise(loop: Loop, *, name: str, backoff: Backoff | None = None) -> None:
    """Run ``loop()`` until it returns; after a crash log it and run it again after a backoff.

    Each crash is logged once (``task_crashed``) and each restart once (``task_restarted``).
    """
    backoff = backoff or Backoff(RESTART_INITIAL_S, RESTART_MAX_S)
    crashes = 0
    while True:
        started = time.monotonic()
        try:
            await loop()
            return
        except Exception as exc:  # CancelledError is not an Exception: it always propagates
            crashes += 1
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                backoff.reset()
            delay = backoff.next_delay()
            log.error("task_crashed", task=name, error=repr(exc), crashes=crashes, restart_in_s=round(delay, 3), exc_info=exc)
        await asyncio.sleep(delay)
        log.warning("task_restarted", task=name, crashes=crashes)


def start_supervised(loop: Loop, *, name: str, tasks: asyncio.TaskGroup | None = None, backoff: Backoff | None = None) -> asyncio.Task[None]:
    """Start ``supervise(loop)`` as the task *name*.

    With *tasks* (the gateway's TaskGroup) the group owns it; without, the caller does and ends it
    with ``cancel_and_wait`` (standalone use, tests).
    """
    coro = supervise(loop, name=name, backoff=backoff)
    if tasks is not None:
        return tasks.create_task(coro, name=name)
    return asyncio.create_task(coro, name=name)
