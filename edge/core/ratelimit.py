"""Log once per burst: a keyed limiter that lets the first event of a key through, counts the
ones that follow within a window, and reports that count with the next event let through.

Pure (time comes from *clock*) and bounded (at most *max_keys* keys; the least recently seen are
forgotten first), so a peer that invents a new key per message cannot grow it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["BurstLimiter"]


@dataclass(slots=True)
class _Entry:
    logged_at: float
    suppressed: int = 0


class BurstLimiter:
    """``allow(key)`` answers ``None`` (suppress: counted) or the number of events suppressed for
    *key* since the last one allowed (0 for the first)."""

    def __init__(self, window_s: float = 60.0, *, max_keys: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0 or max_keys < 1:
            raise ValueError("window_s must be > 0 and max_keys >= 1")
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self.suppressed_total = 0

    def allow(self, key: Hashable) -> int | None:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(now)
            if len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
            return 0
        self._entries.move_to_end(key)
        if now - entry.logged_at >= self.window_s:
            count, entry.suppressed, entry.logged_at = entry.suppressed, 0, now
            return count
        entry.suppressed += 1
        self.suppressed_total += 1
        return None

    def pending(self, key: Hashable) -> int:
        """Events of *key* suppressed since the last one allowed."""
        entry = self._entries.get(key)
        return entry.suppressed if entry else 0

    def __len__(self) -> int:
        return len(self._entries)
