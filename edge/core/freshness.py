"""Which Good values are too old to stay Good (pure; the supervisor owns the timer).

A polled value is Good only while it is fresh: once it is older (by its source time) than its
poll interval plus the request timeout, the next read is overdue, and the value is shown as
UncertainNoCommunicationLastUsableValue until that read arrives. Without this, a value could stay
Good for as long as a slow or lossy poll cycle takes to end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from drivers.sample import Status, TagSample


class FreshnessWatch:
    """The age limit of each key of one device, and the check against the registry's latest samples."""

    def __init__(self, limits: Mapping[str, float]) -> None:
        for key, limit in limits.items():
            if not limit > 0:
                raise ValueError(f"{key}: the age limit must be > 0, got {limit}")
        by_limit: dict[float, list[str]] = {}
        for key, limit in limits.items():
            by_limit.setdefault(float(limit), []).append(key)
        self._groups = [(timedelta(seconds=limit), keys) for limit, keys in sorted(by_limit.items())]

    def expired(self, latest: Callable[[str], TagSample], now: datetime) -> tuple[list[str], datetime | None]:
        """The keys whose latest sample is Good but older than its limit at *now*, and the time at
        which the next Good value will expire (None when no value is Good)."""
        good = Status.Good
        out: list[str] = []
        next_due: datetime | None = None
        for limit, keys in self._groups:
            cutoff = now - limit
            oldest: datetime | None = None  # oldest source time still fresh in this group
            for key in keys:
                s = latest(key)
                if s.status != good:
                    continue
                if s.source_time <= cutoff:
                    out.append(key)
                elif oldest is None or s.source_time < oldest:
                    oldest = s.source_time
            if oldest is not None and (next_due is None or oldest + limit < next_due):
                next_due = oldest + limit
        return out, next_due
