"""History: an embedded SQLite store of samples, and the recorder that fills it from the registry.

``HistoryStore`` is synchronous and thread-safe (one writer and one reader connection, each behind
its own lock); it is only ever called from worker threads (``asyncio.to_thread``), never on the
event loop. The database runs in WAL mode, so reads proceed while a batch is being written.

``HistoryRecorder`` subscribes to the registry, buffers the samples of historized tags in memory
(the registry listener only appends to a list) and writes them in batches from the named task
``history:writer``. Closing it flushes everything still buffered, so a SIGTERM loses nothing the
registry accepted. Retention runs from the same task: rows older than ``retention_days`` (by the
time the gateway received them) and, when the database grows past ``max_db_mb``, the oldest rows
until it is back under 90 % of that size.

Stored per sample: tag, value, status code, source timestamp, server timestamp. Times are integer
microseconds since the Unix epoch (UTC). The OPC UA side lives in ``edge.opcua.history_read``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import structlog

from drivers.sample import Status, TagSample, TagValue, utcnow
from edge.core.names import gateway_diag_key, gateway_diag_path
from edge.core.registry import TagInfo, TagRegistry

log = structlog.get_logger("edge.history.store")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    tag INTEGER NOT NULL REFERENCES tags(id),
    source_us INTEGER NOT NULL,
    server_us INTEGER NOT NULL,
    status INTEGER NOT NULL,
    value
);
CREATE INDEX IF NOT EXISTS samples_by_tag_time ON samples (tag, source_us, id);
CREATE INDEX IF NOT EXISTS samples_by_arrival ON samples (server_us);
"""
SIZE_TARGET = 0.9  # after a size trim the database uses at most this fraction of max_db_mb


def to_us(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (t - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One stored sample; ``id`` orders samples that share a source timestamp."""

    id: int
    source_us: int
    server_us: int
    status: int
    value: TagValue

    def to_sample(self, tag: str) -> TagSample:
        return TagSample(tag, self.value, self.status, from_us(self.source_us), from_us(self.server_us))


class HistoryStore:
    """SQLite (WAL) storage of samples with time-range reads and retention by age and size."""

    def __init__(self, path: str | Path, *, retention_days: float, max_db_mb: float) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.max_bytes = int(max_db_mb * 1024 * 1024)
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._tag_ids: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._wlock:
            w = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # auto_vacuum must be chosen before the first table exists; later it is a no-op.
            w.execute("PRAGMA auto_vacuum = INCREMENTAL")
            w.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a committed batch survives a crash or kill of the process; only a
            # power loss can drop the last commits since the previous checkpoint.
            w.execute("PRAGMA synchronous = NORMAL")
            w.executescript(_SCHEMA)
            self._tag_ids = dict(w.execute("SELECT key, id FROM tags"))
            self._w = w
        with self._rlock:
            self._r = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close. Idempotent."""
        with self._wlock:
            if self._w is not None:
                try:
                    self._w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    self._w.close()
                    self._w = None
        with self._rlock:
            if self._r is not None:
                self._r.close()
                self._r = None

    # -- writing -----------------------------------------------------------------------------
    def append(self, samples: Sequence[TagSample]) -> None:
        """Store *samples* in one transaction (all or nothing)."""
        with self._wlock:
            w = self._require(self._w)
            w.execute("BEGIN")
            try:
                rows = [(self._tag_id(w, s.tag), to_us(s.source_time), to_us(s.server_time), int(s.status), _db_value(s.value)) for s in samples]
                w.executemany("INSERT INTO samples (tag, source_us, server_us, status, value) VALUES (?, ?, ?, ?, ?)", rows)
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                self._tag_ids = dict(w.execute("SELECT key, id FROM tags"))
                raise

    def _tag_id(self, w: sqlite3.Connection, key: str) -> int:
        tag_id = self._tag_ids.get(key)
        if tag_id is None:
            tag_id = w.execute("INSERT INTO tags (key) VALUES (?)", (key,)).lastrowid
            assert tag_id is not None
            self._tag_ids[key] = tag_id
        return tag_id

    # -- reading -----------------------------------------------------------------------------
    def read(
        self,
        tag: str,
        start_us: int | None,
        end_us: int | None,
        *,
        reverse: bool = False,
        after: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        """Rows of *tag* with ``start_us <= source_us <= end_us`` (either bound may be None), ordered
        by (source time, id), newest first when *reverse*. *after* is the (source_us, id) of the last
        row already returned, for continuation; it is excluded."""
        sql = ["SELECT s.id, s.source_us, s.server_us, s.status, s.value FROM samples s JOIN tags t ON s.tag = t.id WHERE t.key = ?"]
        args: list[object] = [tag]
        if start_us is not None:
            sql.append("AND s.source_us >= ?")
            args.append(start_us)
        if end_us is not None:
            sql.append("AND s.source_us <= ?")
            args.append(end_us)
        if after is not None:
            sql.append("AND (s.source_us, s.id) < (?, ?)" if reverse else "AND (s.source_us, s.id) > (?, ?)")
            args.extend(after)
        sql.append("ORDER BY s.source_us DESC, s.id DESC" if reverse else "ORDER BY s.source_us, s.id")
        if limit is not None:
            sql.append("LIMIT ?")
            args.append(limit)
        with self._rlock:
            cur = self._require(self._r).execute(" ".join(sql), args)
            return [HistoryRow(*row) for row in cur.fetchall()]

    def count(self, tag: str | None = None) -> int:
        with self._rlock:
            r = self._require(self._r)
            if tag is None:
                return r.execute("SELECT count(*) FROM samples").fetchone()[0]
            return r.execute("SELECT count(*) FROM samples s JOIN tags t ON s.tag = t.id WHERE t.key = ?", (tag,)).fetchone()[0]

    def used_bytes(self) -> int:
        """Bytes of the database in use (pages minus free pages) plus the write-ahead log."""
        with self._wlock:
            return self._used_bytes(self._require(self._w))

    def _used_bytes(self, w: sqlite3.Connection) -> int:
        pages = w.execute("PRAGMA page_count").fetchone()[0] - w.execute("PRAGMA freelist_count").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        return pages * w.execute("PRAGMA page_size").fetchone()[0] + (wal.stat().st_size if wal.exists() else 0)

    # -- retention ---------------------------------------------------------------------------
    def trim(self, now: datetime | None = None) -> tuple[int, int]:
        """Apply retention; return (rows removed for age, rows removed for size)."""
        cutoff = to_us((now or utcnow()) - timedelta(days=self.retention_days))
        with self._wlock:
            w = self._require(self._w)
            by_age = w.execute("DELETE FROM samples WHERE server_us < ?", (cutoff,)).rowcount
            if by_age:
                w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            by_size = 0
            target = int(self.max_bytes * SIZE_TARGET)
            while self._used_bytes(w) > self.max_bytes:
                total = w.execute("SELECT count(*) FROM samples").fetchone()[0]
                if total == 0:
                    break
                share = 1.0 - target / max(self._used_bytes(w), 1)
                n = max(1, min(total, int(total * share) + 1))
                by_size += w.execute("DELETE FROM samples WHERE id IN (SELECT id FROM samples ORDER BY id LIMIT ?)", (n,)).rowcount
                # the WAL counts against the budget: fold it back and release the free pages
                w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                w.executescript("PRAGMA incremental_vacuum;")  # execute() would free only one page
                w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if by_age:
                w.executescript("PRAGMA incremental_vacuum;")  # execute() would free only one page
            return by_age, by_size

    @staticmethod
    def _require(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError("history store is not open")
        return conn


_INT64 = range(-(2**63), 2**63)


def _db_value(value: TagValue) -> TagValue:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value not in _INT64:
        return str(value)  # SQLite integers are 64-bit signed; a large uint64 is kept exactly as text
    return value


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
    ) -> None:
        unknown = sorted(set(keys) - {i.key for i in registry.infos()})
        if unknown:
            raise ValueError(f"historized keys not in the registry: {', '.join(unknown)}")
        self.store = store
        self.keys = frozenset(keys)
        self._registry = registry
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

    async def __aenter__(self) -> HistoryRecorder:
        await asyncio.to_thread(self.store.open)
        await asyncio.to_thread(self.store.trim)
        self.db_bytes = await asyncio.to_thread(self.store.used_bytes)
        self._unsubscribe = self._registry.subscribe(self._on_samples)
        self._task = asyncio.create_task(self._run(), name="history:writer")
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
        """Write everything buffered so far (also used before a history read)."""
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

    async def _run(self) -> None:
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
            if loop.time() >= next_trim:
                next_trim = loop.time() + self._trim_interval_s
                await self.trim()
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        if not self._diagnostics:
            return
        now = utcnow()
        values = (self.written, self.dropped, len(self._buffer), self.db_bytes)
        self._registry.publish([TagSample(gateway_diag_key(leaf), v, Status.Good, now, now) for (leaf, _, _), v in zip(DIAGNOSTICS, values, strict=True)])

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

