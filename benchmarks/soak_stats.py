"""The soak benchmark's arithmetic (pure; tested in tests/test_bench_soak.py): the RSS growth
slope, percentiles, and poll-cycle overruns from the gateway's Prometheus text."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass


def slope_per_hour(samples: Sequence[tuple[float, float]], warmup_s: float = 0.0) -> float:
    """Least-squares slope of (t seconds, y) after *warmup_s*, in y per hour; nan with < 2 points."""
    pts = [(t, y) for t, y in samples if t >= warmup_s]
    n = len(pts)
    if n < 2:
        return math.nan
    mt = sum(t for t, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((t - mt) ** 2 for t, _ in pts)
    if sxx == 0:
        return math.nan
    return sum((t - mt) * (y - my) for t, y in pts) / sxx * 3600.0


def percentile(values: Sequence[float], q: float) -> float:
    """The *q* quantile (0..1) by nearest rank of sorted *values*; nan when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text exposition -> {(name, sorted labels): value}; comments skipped."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


@dataclass
class CycleStats:
    cycles: float = 0.0
    overruns: float = 0.0  # cycles longer than the poll interval


def poll_cycles(metrics: dict, interval_of: dict[str, float]) -> dict[str, CycleStats]:
    """Per device: poll cycles and the cycles that took longer than the device's poll interval
    (count minus the cumulative bucket at the interval, which must be a bucket bound)."""
    out: dict[str, CycleStats] = {}
    for device, interval in interval_of.items():
        count = metrics.get(("edgetwin_poll_cycle_seconds_count", (("device", device),)))
        if count is None:
            continue
        within = metrics.get(("edgetwin_poll_cycle_seconds_bucket", (("device", device), ("le", repr(float(interval))))))
        if within is None:
            raise KeyError(f"no bucket le={interval} for {device}")
        out[device] = CycleStats(count, count - within)
    return out
