"""The history recorder: fills the ``HistoryStore`` from the registry.

``HistoryRecorder`` subscribes to the registry, buffers the samples of historized tags in memory
(the registry listener only appends to a list) and writes them in batches from its loop ``run``
(task ``history:writer``, supervised: a crash is logged and the loop restarts; owned by the
TaskGroup passed as ``tasks``, else by the recorder). Closing it flushes everything still
buffered, so a SIGTERM loses nothing the registry accepted. Retention (``HistoryStore.trim``) runs
from the same loop every ``trim_interval_s``, and at once after a flush that took the database past
``max_db_mb``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Collection, Iterable

import structlog

from drivers.sample import Status, TagSample, utcnow
from edge.core.names import gateway_diag_key, gateway_diag_path
from edge.core.registry import TagInfo, TagRegistry
from edge.core.tasks import start_supervised
from edge.history.store import HistoryStore

log = structlog.get_logger("edge.history.recorder")


# (leaf below Diagnostics/Gateway, data type, description), registry keys ``_diag.gateway.<leaf>``;
# the leaves are edge.core.names.HISTORY_DIAGNOSTICS
DIAGNOSTICS = (
    ("HistorySamplesWritten", "uint64", "samples written to the history database since start"),
    ("HistorySamplesDropped", "uint64", "samples dropped because the history writer fell behind"),
    ("HistoryPendingSamples", "uint64", "samples accepted but not yet written"),
    ("HistoryDatabaseSize", "uint64", "bytes used by the history database (with its write-ahead log)"),
)


class HistoryRecorder:
    """Record the registry's samples of *keys* into *store*. Use as ``async with``.

    With *diagnostics*, the recorder declares the ``DIAGNOSTICS`` tags in the registry (before the
    OPC UA server builds its tree) and publishes them after every flush.
    """

    def __init__(
        self,
        store: HistoryStore,
        registry: TagRegistry,
        keys: Collection[str],
        *,
        flush_interval_s: float = 1.0,
        batch_size: int = 5000,
        trim_interval_s: float = 60.0,
        max_buffer: int = 200_000,
        diagnostics: bool = False,
        tasks: asyncio.TaskGroup | None = None,
    ) -> None:
        unknown = sorted(set(keys) - {i.key for i in registry.infos()})
        if unknown:
            raise ValueError(f"historized keys not in the registry: {', '.join(unknown)}")
        self.store = store
        self.keys = frozenset(keys)
        self._registry = registry
        self._tasks = tasks
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._trim_interval_s = trim_interval_s
        self._max_buffer = max_buffer
        self._buffer: list[TagSample] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = None
        self._failing = False
        self.written = 0
        self.dropped = 0
        self.db_bytes = 0
        self._diagnostics = diagnostics
        if diagnostics:
            for leaf, dtype, description in DIAGNOSTICS:
                if gateway_diag_key(leaf) not in registry:
                    registry.add(TagInfo(gateway_diag_key(leaf), gateway_diag_path(leaf), dtype, description=description))

    @property
    def pending(self) -> int:
        """Samples accepted but not yet written (the writer's queue depth)."""
        return len(self._buffer)

    def set_keys(self, keys: Collection[str]) -> None:
        """Record *keys* from now on (a config reload). Samples of a key no longer recorded that
        are buffered already are still written; its stored history stays in the database."""
        unknown = sorted(set(keys) - {i.key for i in self._registry.infos()})
        if unknown:
            raise ValueError(f"historized keys not in the registry: {', '.join(unknown)}")
        self.keys = frozenset(keys)

    async def __aenter__(self) -> HistoryRecorder:
        await asyncio.to_thread(self.store.open)
        await asyncio.to_thread(self.store.trim)
        self.db_bytes = await asyncio.to_thread(self.store.used_bytes)
        self._unsubscribe = self._registry.subscribe(self._on_samples)
        self._task = start_supervised(self.run, name="history:writer", tasks=self._tasks)
        self._publish_diagnostics()
        log.info("history_opened", path=str(self.store.path), tags=len(self.keys), rows=await asyncio.to_thread(self.store.count))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stopping = True
        self._wake.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            # a cancelled writer may have left rows behind: write them before closing
            await self.flush()
            await asyncio.to_thread(self.store.close)
            log.info("history_closed", written=self.written, dropped=self.dropped, pending=len(self._buffer))

    def _on_samples(self, batch: Iterable[TagSample]) -> None:
        self._buffer.extend(s for s in batch if s.tag in self.keys)
        if len(self._buffer) > self._max_buffer:
            excess = len(self._buffer) - self._max_buffer
            del self._buffer[:excess]
            self.dropped += excess
            if not self._failing:
                log.error("history_buffer_overflow", dropped=excess, max_buffer=self._max_buffer)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything buffered so far (also used before a history read). A write already in
        flight finishes first, so on return every sample buffered before the call is stored
        (unless the database refused it: then it stays buffered for the next attempt)."""
        async with self._flush_lock:
            if not self._buffer:
                return
            rows, self._buffer = self._buffer, []
            try:
                await asyncio.to_thread(self.store.append, rows)
            except asyncio.CancelledError:
                raise  # the worker thread still finishes its transaction
            except (sqlite3.Error, OSError) as exc:
                self._buffer[:0] = rows  # keep them for the next attempt, oldest first
                if not self._failing:
                    self._failing = True
                    log.error("history_write_failed", error=str(exc), pending=len(self._buffer))
                return
            self.written += len(rows)
            if self._failing:
                self._failing = False
                log.info("history_write_recovered", written=len(rows))

    async def run(self) -> None:
        """The writer loop: flush every ``flush_interval_s`` (sooner when a batch is full), trim
        every ``trim_interval_s``; returns once the recorder is closing."""
        loop = asyncio.get_running_loop()
        next_trim = loop.time() + self._trim_interval_s
        while not self._stopping:
            try:
                async with asyncio.timeout(self._flush_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            if loop.time() >= next_trim or await self._over_budget():
                next_trim = loop.time() + self._trim_interval_s
                await self.trim()
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        if not self._diagnostics:
            return
        now = utcnow()
        values = (self.written, self.dropped, len(self._buffer), self.db_bytes)
        self._registry.publish([TagSample(gateway_diag_key(leaf), v, Status.Good, now, now) for (leaf, _, _), v in zip(DIAGNOSTICS, values, strict=True)])

    async def _over_budget(self) -> bool:
        """Whether the database has grown past max_db_mb since the last trim (checked after each
        flush, so the file stays within a flush of its budget)."""
        try:
            return await asyncio.to_thread(self.store.over_budget)
        except (sqlite3.Error, OSError):
            return False  # the next trim reports it

    async def trim(self) -> None:
        try:
            by_age, by_size = await asyncio.to_thread(self.store.trim)
        except (sqlite3.Error, OSError) as exc:
            log.error("history_trim_failed", error=str(exc))
            return
        if by_age or by_size:
            log.info("history_trimmed", by_age=by_age, by_size=by_size)
        try:
            self.db_bytes = await asyncio.to_thread(self.store.used_bytes)
        except (sqlite3.Error, OSError) as exc:
            log.error("history_size_failed", error=str(exc))
