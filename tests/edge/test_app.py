"""Gateway shutdown: every task is stopped, even one whose library swallowed a cancellation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from structlog.testing import capture_logs

from edge.app import _stop_tasks

ROOT = Path(__file__).resolve().parents[2]


async def test_a_task_that_swallows_the_first_cancel_is_named_and_cancelled_again() -> None:
    async def stubborn() -> None:
        try:  # noqa: SIM105 (spelled out: swallowing the cancel is the behaviour under test)
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # what a misbehaving library below a driver may do
        await asyncio.sleep(3600)

    async def polite() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn(), name="poll:stubborn"), asyncio.create_task(polite(), name="poll:polite")]
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await _stop_tasks(tasks, 0.05)
    assert all(t.done() for t in tasks)
    slow = [e for e in logs if e["event"] == "shutdown_slow"]
    assert len(slow) == 1 and slow[0]["tasks"] == ["poll:stubborn"]


async def test_well_behaved_tasks_stop_without_a_log_line() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(3600), name=f"t{i}") for i in range(3)]
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await _stop_tasks(tasks, 1.0)
    assert all(t.cancelled() for t in tasks) and logs == []


def test_the_live_runtime_does_not_import_the_offline_replay() -> None:
    """Starting the daemon's modules (app, CLI parser, every runtime package) never loads edge.replay:
    the replay tool may import the twin, not the other way round."""
    code = (
        "import sys, edge.app, edge.cli, edge.twin.runner, edge.twin.detector, edge.opcua.server;"
        "print(sorted(m for m in sys.modules if m.startswith('edge.replay')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
