"""Supervised loops: a crash is logged at once and the loop restarts; cancellation always ends it."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from edge.core.backoff import Backoff
from edge.core.tasks import cancel_and_wait, start_supervised, supervise


async def test_a_crashed_loop_is_logged_once_and_restarted() -> None:
    """Each crash gives one task_crashed (with the error) and one task_restarted; the loop runs again."""
    runs: list[int] = []
    done = asyncio.Event()

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise ValueError(f"bad batch {len(runs)}")
        done.set()
        await asyncio.sleep(3600)

    with capture_logs() as logs:
        task = start_supervised(loop, name="test:loop", backoff=Backoff(0.01, 0.02))
        async with asyncio.timeout(5):
            await done.wait()
        await cancel_and_wait(task)
    assert task.get_name() == "test:loop" and task.cancelled()
    assert len(runs) == 3
    crashed = [e for e in logs if e["event"] == "task_crashed"]
    restarted = [e for e in logs if e["event"] == "task_restarted"]
    assert [e["task"] for e in crashed] == ["test:loop", "test:loop"]
    assert "bad batch 1" in crashed[0]["error"] and crashed[0]["log_level"] == "error"
    assert [e["crashes"] for e in restarted] == [1, 2]


async def test_a_loop_that_returns_ends_its_supervisor() -> None:
    calls = []

    async def loop() -> None:
        calls.append(1)

    with capture_logs() as logs:
        await supervise(loop, name="test:once")
    assert calls == [1] and logs == []


async def test_cancellation_is_never_taken_for_a_crash() -> None:
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        await asyncio.sleep(3600)

    with capture_logs() as logs:
        async with asyncio.TaskGroup() as tg:
            task = start_supervised(loop, name="test:owned", tasks=tg)
            await started.wait()
            task.cancel()
    assert task.cancelled() and logs == []


async def test_cancel_and_wait_reraises_the_callers_own_cancellation() -> None:
    inner = asyncio.create_task(asyncio.sleep(3600), name="test:inner")

    async def owner() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await cancel_and_wait(inner)

    outer = asyncio.create_task(owner(), name="test:owner")
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner.cancelled()
