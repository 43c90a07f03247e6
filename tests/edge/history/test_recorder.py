"""HistoryRecorder: from the registry into the store, in batches; flushing on close; its task."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample
from edge.core.registry import TagInfo, TagRegistry
from edge.history.recorder import HistoryRecorder
from edge.history.store import HistoryStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def test_recorder_writes_only_historized_tags_and_flushes_on_close(tmp_path) -> None:
    reg = TagRegistry()
    reg.add(TagInfo("a", ("Devices", "d", "a")))
    reg.add(TagInfo("b", ("Devices", "d", "b")))
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=7, max_db_mb=8)
    async with HistoryRecorder(store, reg, ["a"], flush_interval_s=3600) as rec:
        for i in range(100):
            reg.publish([TagSample("a", float(i), Status.Good, T0, T0), TagSample("b", 1.0, Status.Good, T0, T0)])
        await asyncio.sleep(0)
        assert rec.written == 0  # nothing flushed yet: the interval is an hour and the batch is not full
    store.open()
    try:
        assert store.count("a") == 100 and store.count("b") == 0
    finally:
        store.close()


async def test_recorder_writes_a_full_batch_without_waiting_for_the_interval(tmp_path) -> None:
    reg = TagRegistry()
    reg.add(TagInfo("a", ("Devices", "d", "a")))
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=7, max_db_mb=8)
    async with HistoryRecorder(store, reg, ["a"], flush_interval_s=3600, batch_size=10) as rec:
        reg.publish([TagSample("a", float(i), Status.Good, T0, T0) for i in range(10)])
        async with asyncio.timeout(5):
            while rec.written < 10:
                await asyncio.sleep(0.01)


def test_recorder_refuses_unknown_keys(tmp_path) -> None:
    reg = TagRegistry()
    with pytest.raises(ValueError, match="not in the registry: nope"):
        HistoryRecorder(HistoryStore(tmp_path / "h", retention_days=1, max_db_mb=1), reg, ["nope"])


async def test_recorder_publishes_its_diagnostics(tmp_path) -> None:
    reg = TagRegistry()
    reg.add(TagInfo("a", ("Devices", "d", "a")))
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=7, max_db_mb=8)
    async with HistoryRecorder(store, reg, ["a"], flush_interval_s=0.01, diagnostics=True) as rec:
        assert reg.info("_diag.gateway.HistorySamplesWritten").path == ("Diagnostics", "Gateway", "HistorySamplesWritten")
        reg.publish([TagSample("a", float(i), Status.Good, T0, T0) for i in range(7)])
        async with asyncio.timeout(5):
            while reg.latest("_diag.gateway.HistorySamplesWritten").value != 7:
                await asyncio.sleep(0.01)
        assert reg.latest("_diag.gateway.HistorySamplesDropped").value == 0
        assert reg.latest("_diag.gateway.HistoryPendingSamples").status == Status.Good
        assert reg.latest("_diag.gateway.HistoryDatabaseSize").value == rec.db_bytes > 0


async def test_writer_runs_in_the_callers_task_group_and_restarts_after_a_crash(tmp_path) -> None:
    """With ``tasks``, history:writer belongs to the caller's TaskGroup; a crash of the writer loop
    is logged (task_crashed), the loop restarts and still writes; closing flushes the rest."""
    reg = TagRegistry()
    reg.add(TagInfo("a", ("Devices", "d", "a")))
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=7, max_db_mb=8)
    with capture_logs() as logs:
        async with asyncio.TaskGroup() as tg:
            async with HistoryRecorder(store, reg, ["a"], flush_interval_s=0.01, tasks=tg) as rec:
                assert rec._task is not None and rec._task.get_name() == "history:writer"
                flush = rec.flush
                calls: list[int] = []

                async def crash_once() -> None:
                    calls.append(1)
                    if len(calls) == 1:
                        raise RuntimeError("unexpected")
                    await flush()

                rec.flush = crash_once  # type: ignore[method-assign]
                reg.publish([TagSample("a", 1.0, Status.Good, T0, T0)])
                async with asyncio.timeout(5):
                    while rec.written < 1:
                        await asyncio.sleep(0.01)
                rec.flush = flush  # type: ignore[method-assign]
                reg.publish([TagSample("a", 2.0, Status.Good, T0, T0)])
            assert rec._task.done() and not rec._task.cancelled()  # returned on close, not cancelled
    assert [e["task"] for e in logs if e["event"] == "task_crashed"] == ["history:writer"]
    assert [e["task"] for e in logs if e["event"] == "task_restarted"] == ["history:writer"]
    store.open()
    try:
        assert [r.value for r in store.read("a", None, None)] == [1.0, 2.0]
    finally:
        store.close()
