"""Fitting of the detectors (NumPy only, once per training window): the PCA monitoring model
(``PcaModel``, ``fit_pca``, ``kept_components``), the residual detectors' centre and spread
(``ResidualModel``, ``fit_residual``), and the control limits with the quantile functions they need
(normal, incomplete beta, F), implemented with ``math`` because ``kernels`` imports only NumPy:
T^2 from the F distribution (``t2_limit``), Q by Jackson-Mudholkar (``jackson_mudholkar_limit``).

``kernels.detect`` re-exports every name here (the detectors' public layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "PcaModel",
    "ResidualModel",
    "beta_inc",
    "f_quantile",
    "fit_pca",
    "fit_residual",
    "jackson_mudholkar_limit",
    "kept_components",
    "norm_quantile",
    "t2_limit",
    "training_rows",
]


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


def training_rows(train: ArrayLike) -> np.ndarray:
    """The complete rows (no NaN) of a training window (n, p) as float64; ValueError when it is not
    two-dimensional or fewer than p + 2 complete rows remain (the least a covariance and Q need)."""
    X = np.asarray(train, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"train must be (n, p), got shape {X.shape}")
    X = X[~np.isnan(X).any(axis=1)]
    n, p = X.shape
    if n < p + 2:
        raise ValueError(f"need at least {p + 2} complete training rows for {p} signals, got {n}")
    return X


def fit_pca(train: np.ndarray, explained: float = 0.9, components: int | None = None, alpha: float = 0.99, min_scale: float = 1e-9) -> PcaModel:
    """Fit mean, scale (sample std, floored at *min_scale* x the largest), loadings and limits.

    Components: *components* when given, else the fewest that explain at least *explained* of the
    standardised variance (and at most p - 1, so Q is defined). Limits at confidence *alpha*.
    Rows with NaN are dropped. Raises ValueError when fewer than p + 2 rows remain.
    """
    X = training_rows(train)
    n = X.shape[0]
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
