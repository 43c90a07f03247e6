"""History: an embedded SQLite store of samples (filled by ``edge.history.recorder``).

``HistoryStore`` is synchronous and thread-safe (one writer and one reader connection, each behind
its own lock); it is only ever called from worker threads (``asyncio.to_thread``), never on the
event loop. The database runs in WAL mode, so reads proceed while a batch is being written.

Retention (``trim``): rows older than ``retention_days`` (by the time the gateway received them)
and, when the database grows past ``max_db_mb``, the oldest rows until it is back under 90 % of
that size. The recorder runs it periodically.

Stored per sample: tag, value, status code, source timestamp, server timestamp. Times are integer
microseconds since the Unix epoch (UTC). The OPC UA side lives in ``edge.opcua.history_read``.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from drivers.sample import TagSample, TagValue, utcnow
from edge.core.private_files import private_dir, private_sqlite

log = structlog.get_logger("edge.history.store")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
        t = t.replace(tzinfo=UTC)
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
        """Create or open the database; an OSError that names the file when that fails."""
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OSError(f"cannot open the history database {self.path}: {reason}") from exc

    def _open(self) -> None:
        private_dir(self.path.parent)  # created 0700; the database and its WAL/SHM files 0600
        private_sqlite(self.path)
        with self._wlock:
            w = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # auto_vacuum must be chosen before the first table exists; later it is a no-op.
            w.execute("PRAGMA auto_vacuum = INCREMENTAL")
            w.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a committed batch survives a crash or kill of the process; only a
            # power loss can drop the last commits since the previous checkpoint.
            w.execute("PRAGMA synchronous = NORMAL")
            # the WAL is checkpointed (and cut back) at a twentieth of the budget, so a small
            # max_db_mb is not overshot by the default 4 MB log
            page = w.execute("PRAGMA page_size").fetchone()[0]
            w.execute(f"PRAGMA wal_autocheckpoint = {max(16, min(1000, self.max_bytes // page // 20))}")
            w.execute(f"PRAGMA journal_size_limit = {max(64 * 1024, self.max_bytes // 20)}")
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
        """Bytes of the database pages in use (pages minus free pages). The write-ahead log holds
        copies of pages that are counted here already; it is kept small (``open``) and not counted."""
        with self._wlock:
            return self._used_bytes(self._require(self._w))

    def over_budget(self) -> bool:
        """Whether the pages in use exceed ``max_db_mb`` (cheap: two pragmas; the writer asks after each flush)."""
        return self.used_bytes() > self.max_bytes

    def _used_bytes(self, w: sqlite3.Connection) -> int:
        pages = w.execute("PRAGMA page_count").fetchone()[0] - w.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages * w.execute("PRAGMA page_size").fetchone()[0])

    # -- retention ---------------------------------------------------------------------------
    def trim(self, now: datetime | None = None) -> tuple[int, int]:
        """Apply retention; return (rows removed for age, rows removed for size).

        By size: when the pages in use exceed ``max_db_mb``, the oldest rows are removed until they
        fit in ``SIZE_TARGET`` of it, the number of rows estimated from the average row size (so a
        pass removes what is needed, not more), and the free pages are given back to the file system."""
        cutoff = to_us((now or utcnow()) - timedelta(days=self.retention_days))
        with self._wlock:
            w = self._require(self._w)
            by_age = w.execute("DELETE FROM samples WHERE server_us < ?", (cutoff,)).rowcount
            by_size = 0
            target = int(self.max_bytes * SIZE_TARGET)
            for _ in range(8):  # one pass is normally enough; another only if the estimate fell short
                used = self._used_bytes(w)
                if used <= self.max_bytes:
                    break
                total = w.execute("SELECT count(*) FROM samples").fetchone()[0]
                if total == 0:
                    break
                n = max(1, min(total, math.ceil(total * (used - target) / used)))
                by_size += w.execute("DELETE FROM samples WHERE id IN (SELECT id FROM samples ORDER BY id LIMIT ?)", (n,)).rowcount
                self._release(w)
            if by_age and not by_size:
                self._release(w)
            return by_age, by_size

    @staticmethod
    def _release(w: sqlite3.Connection) -> None:
        """Fold the WAL back into the file and give the free pages back to the file system."""
        w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        w.executescript("PRAGMA incremental_vacuum;")  # execute() would free only one page
        w.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
