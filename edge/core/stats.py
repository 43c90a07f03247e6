"""Counters kept in the hot path: plain numbers, read by the metrics collector at scrape time.

``Histogram`` counts observations into fixed buckets (cumulative counts are computed only when
read), so recording a poll cycle or a twin tick costs one bisect and two additions; no
prometheus object is touched where the event happens. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import pairwise

# upper bounds in seconds of the poll cycle and twin tick histograms: 1 ms .. 10 s
DURATION_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Observations counted into buckets with upper bounds *bounds* (ascending, finite) plus +Inf."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS_S) -> None:
        b = tuple(float(x) for x in bounds)
        if not b or not all(math.isfinite(x) for x in b) or any(lo >= hi for lo, hi in pairwise(b)):
            raise ValueError(f"histogram bounds must be finite and strictly ascending, got {list(bounds)}")
        self.bounds = b
        self.counts = [0] * (len(b) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count *value* (a value equal to a bound falls in that bound's bucket, as in Prometheus)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` per bucket, the last bound being +Inf."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out
