"""The signature of an anomaly episode: which signals deviate, which way, how fast, how noisy.

Pure: arrays in, numbers out. Every figure is in units of the signal's own normal behaviour,
taken from a baseline window before the episode, so signatures of different assets, operating
points and fault strengths compare.

Per signal *s*, with the baseline window ``b`` (normal operation before the episode) and the
episode window ``e``:

* ``trend_s(t)``: the baseline's least-squares line, followed into the episode for at most
  ``MAX_EXTRAPOLATE_S`` and held after: where normal operation was heading (a temperature still
  settling after a setpoint move, the ambient's daily swing), so it is not taken for a fault;
* ``sigma_s = max(std(b - trend), noise_s)``: the spread of normal operation, never below the
  sensor's configured noise (a signal that sat still while the baseline was taken is not
  infinitely sensitive);
* ``z_s = (e - trend_s(t)) / sigma_s`` over the episode, and ``deviation_s = median(z_s)`` over its
  last quarter (at least ``MIN_RECENT`` samples): where the signal went (a few spikes do not move
  the median);
* ``slope_s``: the least-squares slope of ``z_s`` against time, in sigma per minute: how fast it
  went there;
* ``spread_s = log10(std(diff(w)) / max(std(diff(b)), noise_s))`` for ``w`` the recent part or the
  whole episode, whichever changed more: how the sample-to-sample noise changed; far below 0 for a
  reading that froze (recently), far above for spikes (now and then);
* ``flag_s``: the sensor-validation kind raised on the signal during the episode ("" if none).

The contribution of each signal is its share of the episode's squared standardized deviation,
``c_s = deviation_s**2 / sum(deviation**2)``. That is the reconstruction-based contribution
(RBC, Alcala & Qin 2009: ``(xi_s' M x)**2 / (xi_s' M xi_s)`` with ``M`` the inverse covariance)
of each signal to the Mahalanobis distance of the recent mean, for the baseline's diagonal
covariance, where it reduces to ``deviation_s**2``; when every deviation is within noise, the
spread changes rank the signals instead. An asset with a PCA detector ranks its signals by the
full-covariance RBC to the detector's index instead (``pca_contrib``).

Two signatures compare by ``compare``: the cosine of their ``vector`` s, or ``SHAPE_WEIGHT`` times
the cosine of their ``shape_vector`` s (strength-free), whichever is larger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

FLAG_KINDS = ("stuck", "drift", "contradiction", "spike")
MIN_RECENT = 5
SIGNIFICANT = 3.0  # |deviation| (sigma) below this counts as no deviation when comparing
SPREAD_CLIP = 1.5  # decades of noise change that count fully
SLOPE_SCALE = 5.0  # sigma per minute that counts fully
MAX_EXTRAPOLATE_S = 300.0  # the baseline's trend is followed this far into the episode, then held
SHAPE_WEIGHT = 0.9  # a shape-only match (same deviations and slopes, another strength) counts this much


@dataclass(frozen=True, slots=True)
class Signature:
    """An episode's signature over an asset's signals (tuples in the order of ``signals``)."""

    signals: tuple[str, ...]
    deviation: tuple[float, ...]
    slope: tuple[float, ...]
    spread: tuple[float, ...]
    flags: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.signals)
        for field in ("deviation", "slope", "spread", "flags"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"signature {field} has {len(getattr(self, field))} entries for {n} signals")
        for field in ("deviation", "slope", "spread"):
            if not all(math.isfinite(v) for v in getattr(self, field)):
                raise ValueError(f"signature {field} must be finite: {getattr(self, field)}")
        unknown = sorted({f for f in self.flags if f and f not in FLAG_KINDS})
        if unknown:
            raise ValueError(f"unknown sensor flag kind(s) {unknown}; known: {', '.join(FLAG_KINDS)}")

    def contributions(self) -> tuple[float, ...]:
        """Each signal's share (0..1, sum 1) of the episode; see the module docstring."""
        dev = np.square(np.asarray(self.deviation, dtype=float))
        if dev.sum() <= SIGNIFICANT**2:  # nothing moved: rank by the change in noise
            dev = np.square(np.asarray(self.spread, dtype=float)) + 1e-12
        return tuple(float(v) for v in dev / dev.sum())

    def contributors(self) -> list[str]:
        """The signals in order of contribution, largest first (ties in signal order)."""
        c = self.contributions()
        return [self.signals[i] for i in sorted(range(len(c)), key=lambda i: -c[i])]

    def to_json(self) -> dict[str, list]:
        return {
            "signals": list(self.signals),
            "deviation": [round(v, 4) for v in self.deviation],
            "slope": [round(v, 4) for v in self.slope],
            "spread": [round(v, 4) for v in self.spread],
            "flags": list(self.flags),
        }

    @classmethod
    def from_json(cls, data: object) -> Signature:
        if not isinstance(data, dict):
            raise ValueError(f"a signature is an object, got {type(data).__name__}")
        missing = [k for k in ("signals", "deviation", "slope", "spread", "flags") if k not in data]
        if missing:
            raise ValueError(f"signature lacks {', '.join(missing)}")
        try:
            return cls(
                tuple(str(s) for s in data["signals"]),
                tuple(float(v) for v in data["deviation"]),
                tuple(float(v) for v in data["slope"]),
                tuple(float(v) for v in data["spread"]),
                tuple(str(f) for f in data["flags"]),
            )
        except TypeError as exc:
            raise ValueError(f"signature: {exc}") from None


class Baseline(NamedTuple):
    """Normal behaviour of one signal before an episode: a level with its trend, and spreads."""

    level: float  # fitted value at t_end
    slope_per_s: float  # trend (0 without times)
    t_end: float
    sigma: float  # spread around the trend, never below the sensor noise
    noise: float  # sample-to-sample noise, never below the sensor noise

    def expected(self, t: np.ndarray) -> np.ndarray:
        """Where normal operation was heading at times *t* (the trend held after MAX_EXTRAPOLATE_S)."""
        return self.level + self.slope_per_s * np.clip(t - self.t_end, 0.0, MAX_EXTRAPOLATE_S)


def baseline_stats(baseline: Sequence[float], noise: float, times_s: Sequence[float] | None = None) -> Baseline | None:
    """The ``Baseline`` of a window (with *times_s*, its linear trend); None when it has < 2 values."""
    b = np.asarray(baseline, dtype=float)
    t = np.asarray(times_s, dtype=float) if times_s is not None and len(times_s) == len(b) else np.zeros(len(b))
    b, t = _finite_pairs(b, t)
    if len(b) < 2:
        return None
    noise = max(float(noise), 1e-12)
    dt = t - t.mean()
    denom = float(np.dot(dt, dt))
    slope = float(np.dot(dt, b - b.mean()) / denom) if denom > 0 else 0.0
    resid = b - (b.mean() + slope * dt)
    t_end = float(t.max())
    level = float(b.mean() + slope * (t_end - t.mean()))
    return Baseline(level, slope, t_end, max(float(resid.std()), noise), max(float(np.diff(b).std()) if len(b) > 2 else 0.0, noise))


def episode_features(stats: Baseline | None, episode: Sequence[float], times_s: Sequence[float]) -> tuple[float, float, float]:
    """(deviation, slope per minute, spread) of an episode against its ``Baseline``."""
    e, t = np.asarray(episode, dtype=float), np.asarray(times_s, dtype=float)
    if len(t) != len(e):
        raise ValueError(f"{len(e)} episode samples but {len(t)} times")
    e, t = _finite_pairs(e, t)
    if stats is None or len(e) < 2:
        return 0.0, 0.0, 0.0
    z = (e - stats.expected(t)) / stats.sigma
    n_recent = max(MIN_RECENT, len(e) // 4)
    deviation = float(np.median(z[-n_recent:]))  # the median: a few spikes do not move it
    dt = t - t.mean()
    denom = float(np.dot(dt, dt))
    slope = float(np.dot(dt, z - z.mean()) / denom) * 60.0 if denom > 0 else 0.0
    recent = e[-n_recent:]
    spreads = [math.log10(max(float(np.diff(w).std()), 1e-6 * stats.noise) / stats.noise) for w in (recent, e) if len(w) > 2]
    spread = max(spreads, key=abs) if spreads else 0.0
    return deviation, slope, spread


def signal_features(
    baseline: Sequence[float], episode: Sequence[float], times_s: Sequence[float], noise: float, baseline_times_s: Sequence[float] | None = None
) -> tuple[float, float, float]:
    """(deviation, slope per minute, spread) of one signal; see the module docstring.

    *times_s* are the episode samples' times, *baseline_times_s* the baseline's (same clock; without
    them the baseline has no trend). Empty windows give zeros (nothing known).
    """
    return episode_features(baseline_stats(baseline, noise, baseline_times_s), episode, times_s)


def _finite_pairs(e: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(e) & np.isfinite(t)
    return e[ok], t[ok]


def extract(
    signals: Sequence[str],
    baseline: Sequence[Sequence[float]],
    episode: Sequence[Sequence[float]],
    times_s: Sequence[Sequence[float]],
    noise: Sequence[float],
    flags: Sequence[str] | None = None,
    baseline_times_s: Sequence[Sequence[float]] | None = None,
) -> Signature:
    """The signature of one episode: per signal, its baseline values, episode values and their
    times, and the baseline's times (the lists may differ in length between signals: history is
    irregular)."""
    n = len(signals)
    if not (len(baseline) == len(episode) == len(times_s) == len(noise) == n):
        raise ValueError("baseline, episode, times and noise need one entry per signal")
    bt = baseline_times_s if baseline_times_s is not None else [None] * n
    feats = [signal_features(baseline[i], episode[i], times_s[i], noise[i], bt[i]) for i in range(n)]
    return Signature(
        tuple(signals),
        tuple(f[0] for f in feats),
        tuple(f[1] for f in feats),
        tuple(f[2] for f in feats),
        tuple(flags) if flags is not None else ("",) * n,
    )


def vector(sig: Signature, signals: Sequence[str]) -> np.ndarray:
    """The comparison vector of *sig* over *signals* (a signal *sig* lacks counts as normal).

    Blocks, each scaled so a full-strength feature is 1: the direction of the significant
    deviations (unit length), the slopes (``SLOPE_SCALE`` sigma/min = 1, clipped), the noise
    change (``SPREAD_CLIP`` decades = 1, clipped) and one-hot sensor flags.
    """
    index = {s: i for i, s in enumerate(sig.signals)}
    n = len(signals)
    dev, slope, spread = np.zeros(n), np.zeros(n), np.zeros(n)
    flags = np.zeros((n, len(FLAG_KINDS)))
    for j, s in enumerate(signals):
        i = index.get(s)
        if i is None:
            continue
        d = sig.deviation[i]
        dev[j] = d if abs(d) >= SIGNIFICANT else 0.0
        slope[j] = np.clip(sig.slope[i] / SLOPE_SCALE, -1.0, 1.0) if abs(d) >= SIGNIFICANT else 0.0
        spread[j] = np.clip(sig.spread[i] / SPREAD_CLIP, -1.0, 1.0) if abs(sig.spread[i]) >= 0.3 else 0.0
        if sig.flags[i]:
            flags[j, FLAG_KINDS.index(sig.flags[i])] = 1.0
    norm = float(np.linalg.norm(dev))
    direction = dev / norm if norm > 0 else dev
    return np.concatenate([direction, 0.5 * slope, spread, flags.ravel()])


def shape_vector(sig: Signature, signals: Sequence[str]) -> np.ndarray:
    """The strength-free part of *sig* over *signals*: the direction of the significant deviations
    and the direction of their slopes (weight 0.5), each of unit length; zeros when nothing
    deviates significantly. The same fault at another strength moves the same signals the same
    way, while its slopes (sigma/min), noise change and even its validation flag scale or vanish
    with the strength (a flowmeter reading 0 freezes, one losing 40 % keeps its noise)."""
    index = {s: i for i, s in enumerate(sig.signals)}
    dev, slope = np.zeros(len(signals)), np.zeros(len(signals))
    for j, s in enumerate(signals):
        i = index.get(s)
        if i is not None and abs(sig.deviation[i]) >= SIGNIFICANT:
            dev[j], slope[j] = sig.deviation[i], sig.slope[i]
    return np.concatenate([_unit(dev), 0.5 * _unit(slope)])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def vectors(sig: Signature, signals: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(``vector``, ``shape_vector``) of *sig* over *signals*: what ``compare`` takes."""
    return vector(sig, signals), shape_vector(sig, signals)


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Similarity of two signatures' ``vectors``: the cosine of the full vectors, or
    ``SHAPE_WEIGHT`` times the cosine of their shapes, whichever is larger. A pattern recorded at
    one strength so recognises the same fault at another (at most ``SHAPE_WEIGHT``), and an
    equally close full match always wins over a shape-only one. Without a significant deviation
    in both there is no shape, and the full cosine alone counts."""
    full = cosine(a[0], b[0])
    if not (a[1].any() and b[1].any()):
        return full
    return max(full, SHAPE_WEIGHT * cosine(a[1], b[1]))


def similarity(a: Signature, b: Signature) -> float:
    """Similarity (-1..1) of two signatures over the union of their signals (``compare``); 0 when
    either shows nothing."""
    signals = list(dict.fromkeys([*a.signals, *b.signals]))
    return compare(vectors(a, signals), vectors(b, signals))


def cosine(va: np.ndarray, vb: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(va, vb) / (na * nb))
