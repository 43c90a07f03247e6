"""Small helpers for owned asyncio tasks."""

from __future__ import annotations

import asyncio


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
