"""Anomaly detectors with their state: EWMA / CUSUM residual banks and a PCA T^2 / Q monitor.

Each object is fitted on a training window of normal data (``fit``), then stepped with one
kernel call per tick (or per block of ticks: rows are processed in order, exactly as if they had
arrived one by one). Each step returns the score and the alarm, both per tick. Alarms have
hysteresis (on above ``on``, off below ``off``) and optional k-of-w persistence.

The kernels run compiled (``kernels._detect``) or as the NumPy reference
(``kernels.detect_reference``, which documents them), the same choice as ``kernels.IMPLEMENTATION``.
Arguments are checked here, once, so the kernels can trust their inputs.

Fitting (``fit_*``, NumPy only, runs once per training window) sets mean/scale, PCA loadings and
eigenvalues, and the control limits: F distribution for T^2, Jackson-Mudholkar for Q. The quantile
functions they need (normal, F) are implemented here with ``math`` (kernels import only NumPy).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._select import detect_impl as _impl

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


# -- quantile functions ------------------------------------------------------------------------


def norm_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation + one Halley step)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    lo = 0.02425
    if p < lo or p > 1 - lo:
        qq = math.sqrt(-2 * math.log(p if p < lo else 1 - p))
        x = (((((c[0] * qq + c[1]) * qq + c[2]) * qq + c[3]) * qq + c[4]) * qq + c[5]) / ((((d[0] * qq + d[1]) * qq + d[2]) * qq + d[3]) * qq + 1)
        x = x if p < lo else -x
    else:
        qq = p - 0.5
        r = qq * qq
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * qq / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def beta_inc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if not (a > 0 and b > 0):
        raise ValueError("a and b must be > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - beta_inc(b, a, 1.0 - x)
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = tiny if abs(d) < tiny else d
        d = 1.0 / d
        c = 1.0 + num / c
        c = tiny if abs(c) < tiny else c
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    return math.exp(ln_front) * (f - 1.0) / a


def f_quantile(p: float, d1: float, d2: float) -> float:
    """Inverse CDF of the F(d1, d2) distribution, by bisection on I_{d1 x / (d1 x + d2)}(d1/2, d2/2)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not (d1 > 0 and d2 > 0):
        raise ValueError("degrees of freedom must be > 0")
    lo, hi = 0.0, 1.0  # on the beta scale u = d1 x / (d1 x + d2) in [0, 1]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if beta_inc(d1 / 2, d2 / 2, mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-16:
            break
    u = 0.5 * (lo + hi)
    return d2 * u / (d1 * (1.0 - u))


def t2_limit(alpha: float, a: int, n: int) -> float:
    """Upper control limit of Hotelling's T^2 for a new observation: a (n-1)(n+1) / (n (n-a)) F_alpha(a, n-a)."""
    if not 0 < a < n:
        raise ValueError(f"need 0 < components < samples, got {a} and {n}")
    return a * (n - 1) * (n + 1) / (n * (n - a)) * f_quantile(alpha, a, n - a)


def jackson_mudholkar_limit(alpha: float, residual_eigvals: np.ndarray) -> float:
    """Jackson-Mudholkar upper limit of Q (SPE) from the eigenvalues of the discarded components."""
    lam = np.asarray(residual_eigvals, dtype=np.float64)
    lam = lam[lam > 0]
    if lam.size == 0:
        return 0.0
    th1, th2, th3 = (float(np.sum(lam**i)) for i in (1, 2, 3))
    h0 = 1.0 - 2.0 * th1 * th3 / (3.0 * th2 * th2)
    c = norm_quantile(alpha)
    inner = c * math.sqrt(2.0 * th2 * h0 * h0) / th1 + 1.0 + th2 * h0 * (h0 - 1.0) / (th1 * th1)
    return th1 * math.pow(inner, 1.0 / h0)


# -- fitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PcaModel:
    """A fitted PCA monitoring model: what ``pca_detect`` needs."""

    mean: np.ndarray  # (p,)
    scale: np.ndarray  # (p,)
    loadings: np.ndarray  # (p, a)
    eigvals: np.ndarray  # (a,)
    t2_limit: float
    q_limit: float
    all_eigvals: np.ndarray  # (p,), for reports

    def __post_init__(self) -> None:
        # a model also comes back from a file (the twin's saved state): check it is one pca_detect can run
        p = np.shape(self.mean)[0] if np.ndim(self.mean) == 1 else -1
        a = np.shape(self.loadings)[1] if np.ndim(self.loadings) == 2 else -1
        if p < 1 or np.shape(self.scale) != (p,) or np.shape(self.loadings) != (p, a) or not 1 <= a <= p or np.shape(self.eigvals) != (a,):
            raise ValueError(
                f"inconsistent PCA model shapes: mean {np.shape(self.mean)}, scale {np.shape(self.scale)}, "
                f"loadings {np.shape(self.loadings)}, eigvals {np.shape(self.eigvals)}"
            )
        if np.shape(self.all_eigvals) != (p,):
            raise ValueError(f"all_eigvals must have shape ({p},), got {np.shape(self.all_eigvals)}")
        arrays = (self.mean, self.scale, self.loadings, self.eigvals, self.all_eigvals)
        if not all(np.all(np.isfinite(x)) for x in arrays):
            raise ValueError("PCA model arrays must be finite")
        if not (np.all(self.scale > 0) and np.all(self.eigvals > 0)):
            raise ValueError("PCA scale and eigenvalues must be > 0")
        if not all(math.isfinite(v) and v > 0 for v in (self.t2_limit, self.q_limit)):
            raise ValueError(f"control limits must be finite and > 0, got T2 {self.t2_limit!r}, Q {self.q_limit!r}")

    @property
    def components(self) -> int:
        return int(self.loadings.shape[1])


def kept_components(w: np.ndarray, explained: float, components: int | None) -> int:
    """How many principal components to keep of the eigenvalues *w* (descending, p of them):
    *components* when given, else the fewest explaining *explained* of the variance; at most p - 1,
    at least 1, and never one with a numerically zero eigenvalue."""
    p = len(w)
    if components is None:
        frac = np.cumsum(w) / w.sum() if w.sum() > 0 else np.ones(p)
        a = int(np.searchsorted(frac, explained) + 1)
    else:
        a = int(components)
    a = max(1, min(a, p - 1))
    return max(1, int((w[:a] > 1e-12 * max(w[0], 1e-300)).sum()))


def fit_pca(train: np.ndarray, explained: float = 0.9, components: int | None = None, alpha: float = 0.99, min_scale: float = 1e-9) -> PcaModel:
    """Fit mean, scale (sample std, floored at *min_scale* x the largest), loadings and limits.

    Components: *components* when given, else the fewest that explain at least *explained* of the
    standardised variance (and at most p - 1, so Q is defined). Limits at confidence *alpha*.
    Rows with NaN are dropped. Raises ValueError when fewer than p + 2 rows remain.
    """
    X = np.asarray(train, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"train must be (n, p), got shape {X.shape}")
    X = X[~np.isnan(X).any(axis=1)]
    n, p = X.shape
    if n < p + 2:
        raise ValueError(f"need at least {p + 2} complete training rows for {p} signals, got {n}")
    mean = X.mean(axis=0)
    sd = X.std(axis=0, ddof=1)
    floor = max(float(sd.max()), 1.0) * min_scale
    scale = np.where(sd > floor, sd, max(floor, 1e-12))
    Z = (X - mean) / scale
    w, V = np.linalg.eigh(np.cov(Z, rowvar=False))
    order = np.argsort(w)[::-1]
    w, V = np.clip(w[order], 0.0, None), V[:, order]
    a = kept_components(w, explained, components)
    eig = np.maximum(w[:a], 1e-12)
    return PcaModel(mean, scale, np.ascontiguousarray(V[:, :a]), eig, t2_limit(alpha, a, n), max(jackson_mudholkar_limit(alpha, w[a:]), 1e-12), w)


@dataclass(frozen=True)
class ResidualModel:
    """Per-channel centre and spread of a residual, from a training window."""

    mu: np.ndarray
    sigma: np.ndarray


def fit_residual(train: np.ndarray, min_sigma: float = 1e-12) -> ResidualModel:
    """Mean and standard deviation per channel of training residuals (m, n), ignoring NaN."""
    E = np.asarray(train, dtype=np.float64)
    if E.ndim == 1:
        E = E[:, None]
    counts = np.sum(~np.isnan(E), axis=0)
    if np.any(counts < 2):
        raise ValueError("every channel needs at least 2 training values")
    return ResidualModel(np.nanmean(E, axis=0), np.maximum(np.nanstd(E, axis=0, ddof=1), min_sigma))
