"""Detection metrics of the SKAB protocol, and a small CSV reader for recorded signals.

Two families, both summed over files before the final score is formed:

Outlier (binary) metrics, on point labels (``anomaly``) and point predictions:
    F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN) * 100, MAR = FN / (FN + TP) * 100.

Changepoint metrics (NAB style), on ``changepoint`` labels and the changepoints of the prediction,
``|diff(prediction)|`` with the first row taken as the first prediction:
    each true changepoint at time t opens a window [t, t + window_s] (when windows overlap, the
    later one starts where the earlier one ends). Per window only the first predicted changepoint
    inside it (bounds inclusive) counts and scores

        s(x) = (A_tp - A_fp) / 2 * (-tanh(x) / tanh(pi / 2)) + (A_tp - A_fp) / 2 + A_fp

    with x the detection's position in the window mapped linearly to [-pi/2, pi/2] on a grid of
    1000 points (index ``int(1000 * (t - start) / (end - start))``, at most 999): A_tp for a
    detection at the window's start, falling to A_fp at its end. A window with no detection adds
    A_fn; each predicted changepoint outside every window adds A_fp. The summed score S is
    normalised as ``100 * (S - S_null) / (S_perfect - S_null)``, S_null = windows * A_fn and
    S_perfect = windows * A_tp.

Everything here is pure (NumPy in, numbers out). The CSV input is ``edge.replay.table`` (its
``SignalTable`` and ``read_signal_csv`` are re-exported here for existing callers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.replay.table import LABEL_COLUMNS, CsvError, SignalTable, read_signal_csv

__all__ = [
    "LABEL_COLUMNS",
    "NAB_PROFILES",
    "Confusion",
    "CsvError",
    "NabCounts",
    "Scores",
    "SignalTable",
    "nab_counts",
    "nab_windows",
    "predicted_changepoints",
    "read_signal_csv",
]

# (A_tp, A_fp, A_fn) of the three NAB profiles used by the SKAB leaderboard.
NAB_PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, -0.11, -1.0),
    "low_fp": (1.0, -0.22, -1.0),
    "low_fn": (1.0, -0.11, -2.0),
}
NAB_GRID = 1000


@dataclass
class Confusion:
    """Point-wise confusion counts; add them up over files with ``+=``."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, truth: np.ndarray, pred: np.ndarray) -> Confusion:
        t = np.asarray(truth).astype(bool)
        p = np.asarray(pred).astype(bool)
        if t.shape != p.shape:
            raise ValueError(f"truth and prediction differ in shape: {t.shape} vs {p.shape}")
        return cls(int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p)), int(np.sum(~t & ~p)))

    def __iadd__(self, other: Confusion) -> Confusion:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    @property
    def f1(self) -> float:
        denom = self.tp + (self.fp + self.fn) / 2
        return self.tp / denom if denom else math.nan

    @property
    def far(self) -> float:
        """False alarm rate, percent of normal points flagged."""
        return 100.0 * self.fp / (self.fp + self.tn) if self.fp + self.tn else math.nan

    @property
    def mar(self) -> float:
        """Missed alarm rate, percent of anomalous points not flagged."""
        return 100.0 * self.fn / (self.fn + self.tp) if self.fn + self.tp else math.nan


def predicted_changepoints(pred: np.ndarray) -> np.ndarray:
    """Changepoints of a binary prediction: ``|diff|`` with the first entry equal to ``pred[0]``."""
    p = np.asarray(pred).astype(np.int8)
    if p.size == 0:
        return p.astype(bool)
    return np.concatenate([p[:1], np.abs(np.diff(p))]).astype(bool)


def nab_windows(true_cp_times: Sequence[float], window_s: float = 60.0) -> list[tuple[float, float]]:
    """Windows ``[t, t + window_s]`` (seconds), sorted; an overlapping one starts where the previous ends."""
    out: list[tuple[float, float]] = []
    for t in sorted(true_cp_times):
        start, end = t, t + window_s
        if out and start < out[-1][1]:
            start = out[-1][1]
        out.append((start, end))
    return out


@dataclass
class NabCounts:
    """Per-file NAB outcome: the positions of scored detections plus miss and false-positive counts.

    Kept profile-free so that one pass serves all profiles; ``score`` applies one.
    """

    windows: int = 0
    missed: int = 0
    false_positives: int = 0
    positions: list[int] = field(default_factory=list)  # grid index of each window's first detection

    def __iadd__(self, other: NabCounts) -> NabCounts:
        self.windows += other.windows
        self.missed += other.missed
        self.false_positives += other.false_positives
        self.positions.extend(other.positions)
        return self

    def raw(self, profile: str) -> float:
        a_tp, a_fp, a_fn = NAB_PROFILES[profile]
        x = np.linspace(-math.pi / 2, math.pi / 2, NAB_GRID)[np.asarray(self.positions, dtype=int)]
        half = (a_tp - a_fp) / 2
        hits = float(np.sum(half * (-np.tanh(x) / math.tanh(math.pi / 2)) + half + a_fp))
        return hits + self.missed * a_fn + self.false_positives * a_fp

    def score(self, profile: str) -> float:
        """Normalised NAB score, 100 for a perfect detector and 0 for one that never fires."""
        a_tp, _, a_fn = NAB_PROFILES[profile]
        null, perfect = self.windows * a_fn, self.windows * a_tp
        if perfect == null:
            return math.nan
        return 100.0 * (self.raw(profile) - null) / (perfect - null)


def nab_counts(times_s: np.ndarray, true_cp: np.ndarray, pred: np.ndarray, window_s: float = 60.0) -> NabCounts:
    """Score one file: *times_s* (seconds, increasing), true changepoint flags and the binary prediction."""
    t = np.asarray(times_s, dtype=np.float64)
    detections = t[predicted_changepoints(pred)]
    windows = nab_windows(t[np.asarray(true_cp).astype(bool)].tolist(), window_s)
    out = NabCounts(windows=len(windows))
    inside = np.zeros(detections.shape, dtype=bool)
    for start, end in windows:
        hit = (detections >= start) & (detections <= end)
        inside |= hit
        if not hit.any():
            out.missed += 1
            continue
        first = detections[np.argmax(hit)]
        out.positions.append(min(int(NAB_GRID * (first - start) / (end - start)), NAB_GRID - 1))
    out.false_positives = int(np.sum(~inside))
    return out


@dataclass
class Scores:
    """Binary and changepoint results summed over any number of files."""

    confusion: Confusion = field(default_factory=Confusion)
    nab: NabCounts = field(default_factory=NabCounts)
    files: int = 0

    def add(self, times_s: np.ndarray, anomaly: np.ndarray | None, changepoint: np.ndarray | None, pred: np.ndarray) -> None:
        if anomaly is not None:
            self.confusion += Confusion.of(anomaly, pred)
        if changepoint is not None:
            self.nab += nab_counts(times_s, changepoint, pred)
        self.files += 1

    def summary(self) -> dict[str, float]:
        c = self.confusion
        return {
            "f1": c.f1,
            "far": c.far,
            "mar": c.mar,
            "nab_standard": self.nab.score("standard"),
            "nab_low_fp": self.nab.score("low_fp"),
            "nab_low_fn": self.nab.score("low_fn"),
        }

    def lines(self) -> list[str]:
        s = self.summary()
        c, n = self.confusion, self.nab
        return [
            f"binary: F1 {s['f1']:.2f}  FAR {s['far']:.2f} %  MAR {s['mar']:.2f} %  (TP {c.tp}, FP {c.fp}, FN {c.fn}, TN {c.tn})",
            f"changepoint (NAB): standard {s['nab_standard']:.2f}  low FP {s['nab_low_fp']:.2f}  low FN {s['nab_low_fn']:.2f}"
            f"  ({n.windows} windows, {n.missed} missed, {n.false_positives} false positives)",
        ]
