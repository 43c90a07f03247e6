"""A PCA monitor that follows slow normal change: exponentially weighted statistics, a delay buffer
and a guard that never learns from alarms.

``AdaptivePca`` scores every row with ``PcaDetector`` (the ``pca_detect`` kernel) and keeps, next
to the model in use, an exponentially weighted mean and covariance of the raw features:

* **forgetting**: a learned row x updates them with weight a = 1 / min(count, memory)
  (``d = x - mean; mean += a d; C = (1 - a) (C + a d d^T)``), so after ``memory`` learned rows the
  statistics forget with factor 1 - 1/memory (a time constant of ``memory`` rows); before that
  they are the plain running mean and covariance of everything learned so far (the training
  window included);
* **refit**: every ``refit_every`` learned rows the model is refitted from those statistics
  (``fit_pca_cov``): mean, scale, loadings, eigenvalues, and both control limits (T^2 with
  n = min(count, memory) rows rounded down to 1 significant digit, Q by Jackson-Mudholkar), so
  the limits move with the model;
* **guard**: a row is learned only ``delay`` rows after it was scored, and only if no row in
  between exceeded ``on`` and the alarm stayed off; an exceedance or an alarm empties the delay
  buffer (the rows before an onset are never learned) and rows are not buffered while it lasts.
  Rows the caller marks as not learnable (an input not Good, another alarm) are scored, never
  learned, and empty the buffer the same way.

**Variance floor** (``fit_pca_cov``): each feature's variance is raised to at least
``var_floor[j]`` before standardising, by adding ``max(0, floor_j - C_jj)`` to the diagonal: a
feature that barely moved during training becomes an independent direction of unit standardised
variance instead of one with (near) zero variance, so a move of one floor standard deviation
scores about 1 (not 1e15). The caller chooses the floor from what it knows of the signal (its
noise, its resolution, a fraction of its range); ``data_floor`` estimates one from data alone.

NumPy only (as all of ``kernels``); the per-row scoring is the compiled or reference kernel.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .detect import AlarmPolicy, PcaDetector, PcaModel, jackson_mudholkar_limit, kept_components, t2_limit
from .detect_fit import training_rows
from .detect_release import PeakRelease

__all__ = ["Adaptation", "AdaptivePca", "AdaptiveStats", "covariance_of", "data_floor", "fit_pca_cov"]


def _one_digit(n: int) -> int:
    """*n* rounded down to one significant digit (1999 -> 1000, 470 -> 400)."""
    step: int = 10 ** (len(str(int(n))) - 1)
    return int(n) // step * step


@functools.lru_cache(maxsize=512)
def _t2_limit(alpha: float, a: int, n: int) -> float:
    return float(t2_limit(alpha, a, n))  # a bisection on the incomplete beta: worth caching, n saturates at memory


def fit_pca_cov(
    mean: np.ndarray, cov: np.ndarray, n: int, var_floor: np.ndarray | None = None, explained: float = 0.95, components: int | None = None, alpha: float = 0.99
) -> PcaModel:
    """A PCA monitoring model from a mean (p,) and covariance (p, p) estimated from *n* rows.

    The diagonal is raised to *var_floor* (see the module doc); scale = sqrt of the floored
    diagonal; the standardised covariance is eigen-decomposed; components: *components* when
    given, else the fewest explaining *explained* (at most p - 1); limits at confidence *alpha*.
    """
    mean = np.asarray(mean, dtype=np.float64)
    C = np.array(cov, dtype=np.float64)
    p = mean.shape[0]
    if C.shape != (p, p) or p < 2:
        raise ValueError(f"need a (p, p) covariance for p >= 2 features, got {C.shape} for p = {p}")
    if n < p + 2:
        raise ValueError(f"need at least {p + 2} rows for {p} features, got {n}")
    floor = np.zeros(p) if var_floor is None else np.asarray(var_floor, dtype=np.float64)
    d = np.diag(C).copy()
    C[np.diag_indices(p)] = np.maximum(d, floor)
    var = np.diag(C)
    tiny = max(float(var.max()), 1.0) * 1e-18
    scale = np.sqrt(np.maximum(var, tiny))
    Z = C / np.outer(scale, scale)
    w, V = np.linalg.eigh((Z + Z.T) / 2)
    order = np.argsort(w)[::-1]
    w, V = np.clip(w[order], 0.0, None), V[:, order]
    a = kept_components(w, explained, components)
    eig = np.maximum(w[:a], 1e-12)
    q_lim = max(jackson_mudholkar_limit(alpha, w[a:]), 1e-12)
    return PcaModel(mean.copy(), scale, np.ascontiguousarray(V[:, :a]), eig, _t2_limit(alpha, a, int(n)), q_lim, w)


def data_floor(train: np.ndarray, fraction: float = 0.0) -> np.ndarray:
    """A variance floor per column from data alone: the square of the larger of the column's
    resolution (its smallest non-zero step between rows) and *fraction* of its typical magnitude
    (the mean absolute value). A column that never changed and is 0 gets 0 (the model keeps a
    1e-18 relative floor)."""
    X = np.asarray(train, dtype=np.float64)
    X = X[~np.isnan(X).any(axis=1)]
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        steps = np.abs(np.diff(X[:, j]))
        steps = steps[steps > 0]
        res = float(steps.min()) if steps.size else 0.0
        mag = float(np.mean(np.abs(X[:, j]))) if X.shape[0] else 0.0
        out[j] = max(res, fraction * mag) ** 2
    return out


@dataclass(frozen=True)
class Adaptation:
    """How the model follows normal change. ``memory`` (rows; 0 = never adapt) sets the forgetting
    factor 1 - 1/memory; ``delay`` rows pass between scoring a row and learning it; the model and
    limits are refitted every ``refit_every`` learned rows."""

    memory: int = 0
    delay: int = 60
    refit_every: int = 10

    def __post_init__(self) -> None:
        if self.memory < 0 or self.delay < 0 or self.refit_every < 1:
            raise ValueError(f"need memory >= 0, delay >= 0, refit_every >= 1; got {self.memory}, {self.delay}, {self.refit_every}")


@dataclass(frozen=True, eq=False)
class AdaptiveStats:
    """What the adaptation has learnt beyond the model in use (for saving and restoring)."""

    mean: np.ndarray  # (p,) exponentially weighted mean of the learned rows
    cov: np.ndarray  # (p, p) their exponentially weighted covariance
    count: int  # rows learned, the training window included
    since_refit: int  # learned rows since the last refit


class AdaptivePca:
    """``PcaDetector`` whose model follows slow normal change (module doc). ``step`` takes rows and
    whether each may be learned; with ``Adaptation(memory=0)`` the model stays as fitted. The alarm
    it returns ends early by the peak-relative release (``peak_release``, ``kernels.detect_release``;
    0 = off); the guard still sees the kernel's alarm, so nothing is learnt while the score is high."""

    def __init__(
        self,
        det: PcaDetector,
        stats: AdaptiveStats,
        adaptation: Adaptation,
        var_floor: np.ndarray,
        explained: float = 0.95,
        components: int | None = None,
        alpha: float = 0.99,
        peak_release: float = 0.0,
    ) -> None:
        p = det.n_signals
        if stats.mean.shape != (p,) or stats.cov.shape != (p, p) or np.shape(var_floor) != (p,):
            raise ValueError(f"adaptive statistics do not match the {p} features of the model")
        if not (np.all(np.isfinite(stats.mean)) and np.all(np.isfinite(stats.cov)) and np.all(np.isfinite(var_floor))):
            raise ValueError("adaptive statistics must be finite")
        if np.any(np.asarray(var_floor) < 0):
            raise ValueError("var_floor must be >= 0")
        if stats.count < 1 or stats.since_refit < 0:
            raise ValueError(f"count must be >= 1 and since_refit >= 0, got {stats.count}, {stats.since_refit}")
        self.det = det
        self.adaptation = adaptation
        self.var_floor = np.asarray(var_floor, dtype=np.float64)
        self.explained, self.components, self.alpha = explained, components, alpha
        self.mean = np.array(stats.mean, dtype=np.float64)
        self.cov = np.array(stats.cov, dtype=np.float64)
        self.count = int(stats.count)
        self.since_refit = int(stats.since_refit)
        self.pending: deque[np.ndarray] = deque()
        self.learned = 0  # rows learned since construction (a counter for reports)
        self.refits = 0
        self.release_rule = PeakRelease(det.policy.on, det.policy.release, peak_release)

    @classmethod
    def fit(
        cls,
        train: ArrayLike,
        policy: AlarmPolicy,
        smoothing: float = 1.0,
        explained: float = 0.95,
        components: int | None = None,
        alpha: float = 0.99,
        var_floor: ArrayLike | None = None,
        adaptation: Adaptation | None = None,
        peak_release: float = 0.0,
    ) -> AdaptivePca:
        """Fit on a normal window (m, p) (rows with NaN are dropped) with the variance floor (p,)."""
        X = training_rows(train)
        n, p = X.shape
        floor = np.zeros(p) if var_floor is None else np.asarray(var_floor, dtype=np.float64).reshape(-1)
        if floor.shape != (p,) or not np.all(np.isfinite(floor) & (floor >= 0)):
            raise ValueError(f"var_floor must be {p} finite values >= 0")
        mean, cov = X.mean(axis=0), np.cov(X, rowvar=False)
        model = fit_pca_cov(mean, cov, n, floor, explained, components, alpha)
        det = PcaDetector(model, policy, smoothing)
        return cls(det, AdaptiveStats(mean, cov, n, 0), adaptation or Adaptation(), floor, explained, components, alpha, peak_release)

    @property
    def model(self) -> PcaModel:
        return self.det.model

    @property
    def alarm(self) -> bool:
        """The alarm as reported: the kernel's, unless the peak-relative release ended it."""
        return self.det.alarm and not self.release_rule.released

    def stats(self) -> AdaptiveStats:
        return AdaptiveStats(self.mean.copy(), self.cov.copy(), self.count, self.since_refit)

    def step(self, x: ArrayLike, learnable: ArrayLike | bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Score one row (p,) or a block (m, p) in order; return (t2, q, score, alarm), each (m,).
        *learnable* (one flag, or one per row) says whether a row may be learned at all; a row that
        may not also empties the delay buffer, as an exceedance does."""
        X = np.atleast_2d(np.asarray(x, dtype=np.float64))
        m = X.shape[0]
        ok = np.broadcast_to(np.asarray(learnable, dtype=bool), (m,))
        if self.adaptation.memory == 0:
            t2, q, score, alarm = self.det.step(X)
            return t2, q, score, self.release_rule.step(score, alarm)
        t2, q, score, alarm = np.empty(m), np.empty(m), np.empty(m), np.zeros(m, dtype=bool)
        on = self.det.policy.on
        t = 0
        while t < m:
            # the model changes only at a refit, after refit_every - since_refit more learned rows
            # at the soonest: score that many rows in one kernel call, then walk them in order
            end = min(m, t + self.adaptation.refit_every - self.since_refit)
            r = self.det.step(X[t:end])
            t2[t:end], q[t:end], score[t:end], alarm[t:end] = r
            for i in range(t, end):
                if np.isnan(score[i]):
                    continue  # a row with NaN: not scored, not learned, the guard unchanged
                if alarm[i] or score[i] > on or not ok[i]:
                    self.pending.clear()  # the onset of what raised the score (or made the row suspect) is not learned
                    continue
                self.pending.append(X[i].copy())
                while len(self.pending) > self.adaptation.delay:
                    self._learn(self.pending.popleft())
            t = end
        return t2, q, score, self.release_rule.step(score, alarm)

    def _learn(self, x: np.ndarray) -> None:
        self.count += 1
        a = 1.0 / min(self.count, self.adaptation.memory)
        d = x - self.mean
        self.mean += a * d
        self.cov = (1.0 - a) * (self.cov + a * np.outer(d, d))
        self.learned += 1
        self.since_refit += 1
        if self.since_refit >= self.adaptation.refit_every:
            self.refit()

    def refit(self) -> None:
        """Refit the model and limits from the current statistics (keeps the score and alarm state)."""
        n = min(self.count, self.adaptation.memory) if self.adaptation.memory else self.count
        n = max(_one_digit(n), self.mean.shape[0] + 2)  # the T^2 limit barely moves with n (and is cached)
        model = fit_pca_cov(self.mean, self.cov, n, self.var_floor, self.explained, self.components, self.alpha)
        self.det.set_model(model)
        self.since_refit = 0
        self.refits += 1


def covariance_of(model: PcaModel) -> np.ndarray:
    """An approximate raw covariance of *model* (for a saved detector without adaptive statistics):
    the kept components exactly, the discarded variance spread evenly over their subspace."""
    P, lam = model.loadings, model.eigvals
    p, a = P.shape
    rest = float(np.sum(model.all_eigvals[a:])) / max(p - a, 1)
    Z: np.ndarray = P @ np.diag(lam) @ P.T + rest * (np.eye(p) - P @ P.T)
    return np.asarray(Z * np.outer(model.scale, model.scale), dtype=np.float64)
