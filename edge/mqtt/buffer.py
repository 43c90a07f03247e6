"""Store and forward: an SQLite spool of the messages the broker has not taken yet.

While the broker (or the primary host application) is unreachable, the sink appends each batch of
reported samples here as one row (a stored payload of one Sparkplug device, see
``edge.mqtt.payloads.stored_payload``). After reconnecting it reads rows oldest first, publishes
them flagged historical and deletes each once the broker acknowledged it, so a crash in between
repeats a row (as QoS 1 may) but never loses one. The spool survives a restart.

Bounds: when the stored payload bytes pass ``max_bytes``, or a row is older than ``max_age_s``,
the oldest rows are deleted first; their metrics are counted in ``dropped`` (and logged once per
overflow episode by the sink). The spool also keeps the edge node's ``bdSeq`` across restarts.

Synchronous; the sink calls it from worker threads (``asyncio.to_thread``), one call at a time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    metrics INTEGER NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def spool_path(mqtt_dir: Path) -> Path:
    """The spool's file in the MQTT state folder (``edge.mqtt.mqtt_state_dir``)."""
    return mqtt_dir / "spool.sqlite"


class Spool:
    def __init__(self, path: Path, *, max_bytes: int, max_age_s: float, clock: object = time.time) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self.bytes = 0  # stored payload bytes
        self.metrics = 0  # stored metrics
        self.rows = 0
        self.dropped = 0  # metrics dropped by the bounds since open

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        row = db.execute("SELECT count(*), coalesce(sum(size), 0), coalesce(sum(metrics), 0) FROM spool").fetchone()
        self.rows, self.bytes, self.metrics = row

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("spool is not open")
        return self._db

    # -- rows ------------------------------------------------------------------------------------
    def append(self, rows: Sequence[tuple[int, bytes]]) -> int:
        """Store (metric count, payload) rows in order; apply the bounds; return metrics dropped now."""
        if not rows:
            return self.enforce()
        now = self._clock()  # type: ignore[operator]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO spool (created, metrics, size, payload) VALUES (?, ?, ?, ?)",
                [(now, n, len(p), p) for n, p in rows],
            )
        self.rows += len(rows)
        self.bytes += sum(len(p) for _, p in rows)
        self.metrics += sum(n for n, _ in rows)
        return self.enforce()

    def enforce(self) -> int:
        """Delete rows past the age bound, then the oldest rows past the size bound; return metrics dropped."""
        if not self.rows:
            return 0
        dropped = 0
        cutoff = self._clock() - self.max_age_s  # type: ignore[operator]
        old = self.db.execute("SELECT max(id), count(*), coalesce(sum(size), 0), coalesce(sum(metrics), 0) FROM spool WHERE created < ?", (cutoff,)).fetchone()
        if old[1]:
            dropped += self._delete_through(old[0], old[1], old[2], old[3])
        while self.bytes > self.max_bytes and self.rows:
            # the oldest rows that bring the spool back under 90 % of the bound
            excess = self.bytes - int(self.max_bytes * 0.9)
            ids = self.db.execute("SELECT id, size, metrics FROM spool ORDER BY id LIMIT 1000").fetchall()
            total = n = metrics = 0
            last = None
            for rid, size, m in ids:
                last, total, n, metrics = rid, total + size, n + 1, metrics + m
                if total >= excess:
                    break
            dropped += self._delete_through(last, n, total, metrics)
        self.dropped += dropped
        return dropped

    def _delete_through(self, last_id: int | None, n: int, size: int, metrics: int) -> int:
        self.db.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
        self.rows -= n
        self.bytes -= size
        self.metrics -= metrics
        return metrics

    def head(self, limit: int = 100) -> list[tuple[int, int, bytes]]:
        """The oldest rows: (id, metric count, payload)."""
        return self.db.execute("SELECT id, metrics, payload FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall()

    def delete(self, row_id: int, metrics: int, size: int) -> None:
        """Remove one row that was delivered."""
        cur = self.db.execute("DELETE FROM spool WHERE id = ?", (row_id,))
        if cur.rowcount:
            self.rows -= 1
            self.bytes -= size
            self.metrics -= metrics

    def delete_rows(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        """Remove rows (as ``head`` returned them) that were delivered, in one transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM spool WHERE id = ?", [(r[0],) for r in rows])
        self.rows -= len(rows)
        self.bytes -= sum(len(r[2]) for r in rows)
        self.metrics -= sum(r[1] for r in rows)

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: int = 0) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def set_meta(self, key: str, value: int) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
