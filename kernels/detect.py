"""Anomaly detectors with their state: EWMA / CUSUM residual banks and a PCA T^2 / Q monitor.

Each object is fitted on a training window of normal data (``fit``), then stepped with one
kernel call per tick (or per block of ticks: rows are processed in order, exactly as if they had
arrived one by one). Each step returns the score and the alarm, both per tick. Alarms have
hysteresis (on above ``on``, off below ``off``) and optional k-of-w persistence.

The kernels run compiled (``kernels._detect``) or as the NumPy reference
(``kernels.detect_reference``, which documents them), the same choice as ``kernels.IMPLEMENTATION``.
Arguments are checked here, once, so the kernels can trust their inputs.

Fitting (``fit_*``, NumPy only, runs once per training window) sets mean/scale, PCA loadings and
eigenvalues, and the control limits: F distribution for T^2, Jackson-Mudholkar for Q. It lives in
``kernels.detect_fit`` (with the quantile functions it needs) and is re-exported here.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._select import detect_impl as _impl
from .detect_fit import (
    PcaModel,
    ResidualModel,
    beta_inc,
    f_quantile,
    fit_pca,
    fit_residual,
    jackson_mudholkar_limit,
    kept_components,
    norm_quantile,
    t2_limit,
)

__all__ = [
    "AlarmPolicy",
    "PcaDetector",
    "PcaModel",
    "ResidualDetector",
    "ResidualModel",
    "beta_inc",
    "f_quantile",
    "fit_pca",
    "fit_residual",
    "jackson_mudholkar_limit",
    "kept_components",
    "norm_quantile",
    "t2_limit",
]


@dataclass(frozen=True)
class AlarmPolicy:
    """When an alarm turns on and off.

    ``on``: the score threshold (for residual detectors in sigma units, for PCA in units of the
    control limit); ``release`` the fraction of ``on`` below which an active alarm clears
    (hysteresis, 0 < release <= 1); the alarm turns on when at least ``k`` of the last ``window``
    ticks exceeded ``on`` (``k = window = 1``: immediately). ``window`` <= 64.
    """

    on: float
    release: float = 0.8
    k: int = 1
    window: int = 1

    def __post_init__(self) -> None:
        if not (np.isfinite(self.on) and self.on > 0):
            raise ValueError(f"on must be a finite number > 0, got {self.on!r}")
        if not 0 < self.release <= 1:
            raise ValueError(f"release must be in (0, 1], got {self.release!r}")
        k, w = operator.index(self.k), operator.index(self.window)
        if not 1 <= w <= 64:
            raise ValueError(f"window must be in 1..64, got {w}")
        if not 1 <= k <= w:
            raise ValueError(f"k must be in 1..window ({w}), got {k}")

    @property
    def off(self) -> float:
        return self.on * self.release


def _rows(name: str, a: ArrayLike, n: int) -> np.ndarray:
    """One tick (n,) or a block (m, n) of inputs as a C-contiguous float64 (m, n) array."""
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(f"{name} must have shape ({n},) or (m, {n}), got {np.shape(a)}")
    return arr


class ResidualDetector:
    """EWMA or CUSUM detectors for n residual channels, one kernel call per step.

    ``kind="ewma"``: ``param`` is the smoothing factor lambda in (0, 1]; the score is |EWMA of z|
    in units of its stationary standard deviation. ``kind="cusum"``: ``param`` is the allowance k
    (sigma units, >= 0); the score is the larger of the two one-sided sums. z = (e - mu) / sigma
    with mu, sigma from ``fit`` (or given). Policy ``on`` is per channel or shared.
    """

    def __init__(self, kind: str, model: ResidualModel, param: float, policy: AlarmPolicy | list[AlarmPolicy]) -> None:
        if kind not in ("ewma", "cusum"):
            raise ValueError(f"kind must be 'ewma' or 'cusum', got {kind!r}")
        self.kind = kind
        self.mu = np.ascontiguousarray(model.mu, dtype=np.float64).reshape(-1)
        n = self.mu.shape[0]
        self.sigma = np.ascontiguousarray(model.sigma, dtype=np.float64).reshape(-1)
        if self.sigma.shape != (n,) or not np.all(np.isfinite(self.sigma) & (self.sigma > 0)):
            raise ValueError("sigma must be finite, > 0 and one per channel")
        if kind == "ewma" and not 0 < param <= 1:
            raise ValueError(f"EWMA lambda must be in (0, 1], got {param!r}")
        if kind == "cusum" and not (np.isfinite(param) and param >= 0):
            raise ValueError(f"CUSUM allowance must be finite and >= 0, got {param!r}")
        self.param = np.full(n, float(param))
        policies = policy if isinstance(policy, list) else [policy] * n
        if len(policies) != n:
            raise ValueError(f"need one alarm policy or {n}, got {len(policies)}")
        if len({(p.k, p.window) for p in policies}) != 1:
            raise ValueError("all channels of one detector share k and window")
        self.policy = policies[0]
        self.on = np.array([p.on for p in policies])
        self.off = np.array([p.off for p in policies])
        self.n_channels = n
        self.stat = np.zeros(n)
        self.lo = np.zeros(n)
        self.history = np.zeros(n, dtype=np.uint64)
        self.alarm_state = np.zeros(n, dtype=np.uint8)

    @classmethod
    def fit(cls, kind: str, train: ArrayLike, param: float, policy: AlarmPolicy) -> ResidualDetector:
        """Centre and spread from training residuals (m, n); see the class doc for *param*."""
        return cls(kind, fit_residual(np.asarray(train, dtype=np.float64)), param, policy)

    def reset(self) -> None:
        self.stat[:] = 0.0
        self.lo[:] = 0.0
        self.history[:] = 0
        self.alarm_state[:] = 0

    def step(self, e: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Process one tick (n,) or a block (m, n) of residuals; return (score, alarm) of shape (m, n)."""
        rows = _rows("e", e, self.n_channels)
        m = rows.shape[0]
        score = np.empty((m, self.n_channels))
        alarm = np.empty((m, self.n_channels), dtype=np.uint8)
        k, w = self.policy.k, self.policy.window
        if self.kind == "ewma":
            _impl.ewma_detect(rows, self.mu, self.sigma, self.param, self.on, self.off, k, w, self.stat, self.history, self.alarm_state, score, alarm)
        else:
            _impl.cusum_detect(rows, self.mu, self.sigma, self.param, self.on, self.off, k, w, self.stat, self.lo, self.history, self.alarm_state, score, alarm)
        return score, alarm.astype(bool)

    @property
    def alarm(self) -> np.ndarray:
        return self.alarm_state.astype(bool)


class PcaDetector:
    """Multivariate monitor of one asset's p signals: Hotelling T^2 and Q (SPE) against a PCA model.

    The raw score is max(T^2 / T2_limit, Q / Q_limit) (1 at the tighter control limit), smoothed
    by an EWMA with factor ``smoothing`` (1 = none). The alarm uses *policy* on that score
    (``on = 1`` alarms at the control limit).
    """

    def __init__(self, model: PcaModel, policy: AlarmPolicy, smoothing: float = 1.0) -> None:
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing!r}")
        if model.components > 64:
            raise ValueError("at most 64 principal components")
        self.model = model
        self.policy = policy
        self.smoothing = float(smoothing)
        self._args = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (model.mean, model.scale, model.loadings, model.eigvals))
        self.n_signals = model.mean.shape[0]
        self.stat = np.zeros(1)
        self.history = np.zeros(1, dtype=np.uint64)
        self.alarm_state = np.zeros(1, dtype=np.uint8)

    @classmethod
    def fit(
        cls, train: ArrayLike, policy: AlarmPolicy, smoothing: float = 1.0, explained: float = 0.9, components: int | None = None, alpha: float = 0.99
    ) -> PcaDetector:
        """Fit the PCA model and limits on a normal window (m, p); see ``fit_pca``."""
        return cls(fit_pca(np.asarray(train, dtype=np.float64), explained, components, alpha), policy, smoothing)

    def reset(self) -> None:
        self.stat[:] = 0.0
        self.history[:] = 0
        self.alarm_state[:] = 0

    def step(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Process one sample (p,) or a block (m, p); return (t2, q, score, alarm), each (m,)."""
        rows = _rows("x", x, self.n_signals)
        m = rows.shape[0]
        t2, q, score = np.empty(m), np.empty(m), np.empty(m)
        alarm = np.empty(m, dtype=np.uint8)
        _impl.pca_detect(
            rows,
            *self._args,
            self.model.t2_limit,
            self.model.q_limit,
            self.smoothing,
            self.policy.on,
            self.policy.off,
            self.policy.k,
            self.policy.window,
            self.stat,
            self.history,
            self.alarm_state,
            t2,
            q,
            score,
            alarm,
        )
        return t2, q, score, alarm.astype(bool)

    @property
    def alarm(self) -> bool:
        return bool(self.alarm_state[0])

    def set_model(self, model: PcaModel) -> None:
        """Score with *model* from now on (same number of features); the smoothed score, the k-of-w
        history and the alarm carry over (``kernels.detect_adapt`` refits this way)."""
        if model.mean.shape[0] != self.n_signals:
            raise ValueError(f"the new model has {model.mean.shape[0]} features, this detector {self.n_signals}")
        if model.components > 64:
            raise ValueError("at most 64 principal components")
        self.model = model
        self._args = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (model.mean, model.scale, model.loadings, model.eigvals))

    def runtime_state(self) -> tuple[float, int, bool]:
        """What ``step`` carries from one call to the next: the smoothed score, the k-of-w history
        bits and the alarm (the model and policy are the rest of the detector)."""
        return float(self.stat[0]), int(self.history[0]), self.alarm

    def set_runtime_state(self, stat: float, history: int, alarm: bool) -> None:
        """Load ``runtime_state`` output; ValueError for a score that is not finite and >= 0 or bits
        outside the window (nothing is changed then)."""
        h = operator.index(history)
        if not (math.isfinite(stat) and stat >= 0):
            raise ValueError(f"stat must be finite and >= 0, got {stat!r}")
        if not 0 <= h < (1 << self.policy.window):
            raise ValueError(f"history must be in 0..2^{self.policy.window}-1, got {h}")
        self.stat[0] = stat
        self.history[0] = h
        self.alarm_state[0] = bool(alarm)
