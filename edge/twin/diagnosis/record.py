"""A fault pattern built from a window of history (RecordFaultPattern, ``edgetwin patterns record``).

For each signal of the asset it reads the signal's Measured history (``<asset>.<signal>.measured``,
kept when the asset or signal is historized; else the device tag itself) over the episode
``[start, end]`` and over the baseline ``[start - baseline_s, start)``, and, when the sensor
validation's flags are historized, the flag raised most often during the episode. Only Good
samples count. The signature is ``signature.extract`` of those windows: the same function the live
diagnoser uses, so a recorded pattern matches the live episodes of the same fault.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from drivers.sample import Status
from edge.core import names
from edge.history.store import HistoryRow, to_us
from edge.twin.diagnosis.library import Episode, Library, LibraryError, Pattern, check_name
from edge.twin.diagnosis.match import DEFAULT_MIN_SIMILARITY, overlaps
from edge.twin.diagnosis.signature import Signature, extract

if TYPE_CHECKING:
    from edge.config import AssetConfig

MIN_SAMPLES = 5  # per signal, in each window
MAX_ROWS = 200_000  # per key and window


class History(Protocol):
    def read(self, tag: str, start_us: int | None, end_us: int | None, *, limit: int | None = None) -> list[HistoryRow]: ...


@dataclass(frozen=True, slots=True)
class Recorded:
    library: Library  # the library with the pattern added
    pattern: Pattern
    signature: Signature
    overlaps: list[tuple[str, float]]  # other patterns this episode also matches

    def message(self) -> str:
        what = f"pattern {self.pattern.name!r} now has {len(self.pattern.signatures)} episode(s); contributors {', '.join(self.signature.contributors()[:3])}"
        if self.overlaps:
            what += "; overlaps " + ", ".join(f"{n} (similarity {v:.2f})" for n, v in self.overlaps)
        return what


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def episode_signature(history: History, asset: AssetConfig, start: datetime, end: datetime, baseline_s: float | None = None) -> Signature:
    """The signature of *asset*'s history over [start, end]; ``LibraryError`` when history lacks
    the data (naming the signal and window)."""
    start, end = _utc(start), _utc(end)
    if not end > start:
        raise LibraryError(f"the episode must end after it starts (start {start.isoformat()}, end {end.isoformat()})")
    if asset.diagnosis is None and baseline_s is None:
        raise LibraryError(f"asset {asset.name!r} has no diagnosis section")
    base_s = baseline_s if baseline_s is not None else asset.diagnosis.baseline_s  # type: ignore[union-attr]
    b0 = start - timedelta(seconds=base_s)
    baselines, base_times, episodes, times, noise, flags = [], [], [], [], [], []
    for sig in asset.signals:
        key = names.signal_output_key(asset.name, sig.name, "measured")
        rows_b = _good(history.read(key, to_us(b0), to_us(start) - 1, limit=MAX_ROWS))
        rows_e = _good(history.read(key, to_us(start), to_us(end), limit=MAX_ROWS))
        if len(rows_b) < MIN_SAMPLES or len(rows_e) < MIN_SAMPLES:  # not historized as a signal: the device tag
            rows_b = _good(history.read(sig.tag, to_us(b0), to_us(start) - 1, limit=MAX_ROWS))
            rows_e = _good(history.read(sig.tag, to_us(start), to_us(end), limit=MAX_ROWS))
        if len(rows_b) < MIN_SAMPLES or len(rows_e) < MIN_SAMPLES:
            raise LibraryError(
                f"signal {sig.name!r}: history holds {len(rows_b)} Good samples before the episode "
                f"({b0.isoformat()} .. {start.isoformat()}) and {len(rows_e)} during it; need {MIN_SAMPLES} of each (is it historized?)"
            )
        baselines.append([float(r.value) for r in rows_b])  # type: ignore[arg-type]
        base_times.append([r.source_us / 1e6 for r in rows_b])
        episodes.append([float(r.value) for r in rows_e])  # type: ignore[arg-type]
        times.append([r.source_us / 1e6 for r in rows_e])
        noise.append(float(sig.measurement_noise))
        flags.append(_flag(history, asset.name, sig.name, start, end))
    return extract([s.name for s in asset.signals], baselines, episodes, times, noise, flags, base_times)


def record(
    library: Library,
    history: History,
    asset: AssetConfig,
    name: str,
    start: datetime,
    end: datetime,
    description: str = "",
    action: str = "",
    user: str = "",
) -> Recorded:
    """*library* with the pattern *name* learned from [start, end] (added, or merged into the
    pattern of that name)."""
    check_name(name)
    sig = episode_signature(history, asset, start, end)
    if not any(abs(d) >= 3.0 for d in sig.deviation) and not any(abs(s) >= 0.3 for s in sig.spread) and not any(sig.flags):
        raise LibraryError("nothing in that window differs from the normal operation before it; check start and end")
    min_sim = asset.diagnosis.min_similarity if asset.diagnosis is not None else DEFAULT_MIN_SIMILARITY
    episode = Episode(asset.name, _utc(start).isoformat(), _utc(end).isoformat(), "operator", user)
    pattern = Pattern(name, description, action, (sig,), (episode,))
    new = library.with_pattern(pattern)
    return Recorded(new, new.get(name), sig, overlaps(sig, library, name, min_sim))  # type: ignore[arg-type]


def _good(rows: list[HistoryRow]) -> list[HistoryRow]:
    return [r for r in rows if r.status == Status.Good and isinstance(r.value, (int, float)) and not isinstance(r.value, bool) and math.isfinite(r.value)]


def _flag(history: History, asset: str, signal: str, start: datetime, end: datetime) -> str:
    key = names.sensor_fault_key(asset, signal)
    seen = Counter(r.value for r in history.read(key, to_us(start), to_us(end), limit=MAX_ROWS) if isinstance(r.value, str) and r.value)
    return seen.most_common(1)[0][0] if seen else ""  # type: ignore[return-value]
