"""Anomaly detectors, NumPy reference (the spec of ``kernels._detect``), and their fitting.

Kernels (one call per tick, or per block of ticks; all state updated in place):

``ewma_detect``  residual e of n channels -> z = (e - mu) / sigma; s <- s + lam (z - s);
                 score = |s| / sqrt(lam / (2 - lam)), i.e. the EWMA in units of its own
                 stationary standard deviation (about N(0, 1) in magnitude when normal).
``cusum_detect`` two-sided tabular CUSUM on z: hi <- max(0, hi + z - k), lo <- max(0, lo - z - k);
                 score = max(hi, lo).
``pca_detect``   samples x (p,) of one asset against a PCA model: z = (x - mean) / scale,
                 t = z P (a scores), T^2 = sum t_i^2 / lambda_i, Q = |z - t P^T|^2 (SPE); the raw
                 score max(T^2 / T2_limit, Q / Q_limit) is EWMA-smoothed with factor lam (1 = none),
                 so about 1 is the control limit.

Alarm (the same for all three, per channel): with ``exceed = score > on``, a bit history of the
last w ticks (w <= 64) counts exceedances; an alarm that is off turns on when at least k of the last
w ticks exceeded (k = w = 1: at once); an alarm that is on turns off when score < off (hysteresis,
off <= on) and the history is cleared. A NaN input (no measurement) leaves every state untouched and
outputs NaN scores and the unchanged alarm.

Arithmetic order is part of the spec: every sum over a feature or component index is accumulated
left to right with separate multiplies and adds, exactly as the compiled loops do, so the two agree
to rtol 1e-12 (bit for bit in practice).

Fitting (``fit_*``, NumPy only, runs once per training window) sets mean/scale, PCA loadings and
eigenvalues, and the control limits: F distribution for T^2, Jackson-Mudholkar for Q. The quantile
functions they need (normal, F) are implemented here with ``math`` (kernels import only NumPy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PcaModel",
    "ResidualModel",
    "beta_inc",
    "cusum_detect",
    "ewma_detect",
    "f_quantile",
    "fit_pca",
    "fit_residual",
    "jackson_mudholkar_limit",
    "norm_quantile",
    "pca_detect",
    "t2_limit",
]

_U64 = np.uint64


def _alarm_update(score: np.ndarray, valid: np.ndarray, on: np.ndarray, off: np.ndarray, k: int, w: int,
                  history: np.ndarray, alarm: np.ndarray) -> None:
    """One tick of the k-of-w persistence + hysteresis alarm for the channels where *valid*."""
    mask = _U64(0xFFFFFFFFFFFFFFFF) if w >= 64 else _U64((1 << w) - 1)
    exceed = (score > on).astype(_U64)
    shifted = ((history << _U64(1)) | exceed) & mask
    history[valid] = shifted[valid]
    is_on = alarm.astype(bool)
    release = valid & is_on & (score < off)
    fire = valid & ~is_on & (np.bitwise_count(history) >= k)
    alarm[release] = 0
    history[release] = 0
    alarm[fire] = 1


def ewma_detect(e: np.ndarray, mu: np.ndarray, sigma: np.ndarray, lam: np.ndarray, on: np.ndarray, off: np.ndarray,
                k: int, w: int, stat: np.ndarray, history: np.ndarray, alarm: np.ndarray,
                score: np.ndarray, alarm_out: np.ndarray) -> None:
    """EWMA residual detector over m ticks of n channels.

    Inputs e (m, n); per channel mu, sigma (> 0), lam in (0, 1], on, off (n,). In place: stat (n,)
    the EWMA of z, history (n,) uint64, alarm (n,) uint8. Outputs score (m, n), alarm_out (m, n) uint8.
    """
    norm = np.sqrt(lam / (2.0 - lam))
    for t in range(e.shape[0]):
        x = e[t]
        valid = ~np.isnan(x)
        z = (x - mu) / sigma
        s = stat + lam * (z - stat)
        stat[valid] = s[valid]
        sc = np.abs(s) / norm
        sc[~valid] = np.nan
        _alarm_update(sc, valid, on, off, k, w, history, alarm)
        score[t] = sc
        alarm_out[t] = alarm


def cusum_detect(e: np.ndarray, mu: np.ndarray, sigma: np.ndarray, kref: np.ndarray, on: np.ndarray, off: np.ndarray,
                 k: int, w: int, hi: np.ndarray, lo: np.ndarray, history: np.ndarray, alarm: np.ndarray,
                 score: np.ndarray, alarm_out: np.ndarray) -> None:
    """Two-sided CUSUM residual detector over m ticks of n channels.

    Like ``ewma_detect`` with the reference value kref (n,) (allowance, in sigma) in place of lam
    and the two sums hi, lo (n,) as state. score = max(hi, lo).
    """
    for t in range(e.shape[0]):
        x = e[t]
        valid = ~np.isnan(x)
        z = (x - mu) / sigma
        h = np.maximum(hi + z - kref, 0.0)
        lw = np.maximum(lo - z - kref, 0.0)
        hi[valid] = h[valid]
        lo[valid] = lw[valid]
        sc = np.maximum(h, lw)
        sc[~valid] = np.nan
        _alarm_update(sc, valid, on, off, k, w, history, alarm)
        score[t] = sc
        alarm_out[t] = alarm


def pca_detect(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, loadings: np.ndarray, eigvals: np.ndarray,
               t2_lim: float, q_lim: float, lam: float, on: float, off: float, k: int, w: int,
               stat: np.ndarray, history: np.ndarray, alarm: np.ndarray,
               t2: np.ndarray, q: np.ndarray, score: np.ndarray, alarm_out: np.ndarray) -> None:
    """PCA T^2 / Q detector over m samples X (m, p) of one asset.

    Model: mean, scale (p,), loadings P (p, a) with orthonormal columns, eigvals (a,) > 0, limits
    t2_lim, q_lim > 0; lam in (0, 1] smooths the combined score. In place: stat, history, alarm,
    each shape (1,). Outputs t2, q, score (m,) and alarm_out (m,) uint8. A sample with any NaN is
    skipped (NaN outputs, state untouched).
    """
    m, p = X.shape
    a = loadings.shape[1]
    z = (X - mean) / scale
    tsc = np.empty((m, a))
    for i in range(a):
        acc = z[:, 0] * loadings[0, i]
        for j in range(1, p):
            acc = acc + z[:, j] * loadings[j, i]
        tsc[:, i] = acc
    tt = np.zeros(m)
    for i in range(a):
        tt = tt + tsc[:, i] * tsc[:, i] / eigvals[i]
    qq = np.zeros(m)
    for j in range(p):
        rec = np.zeros(m) if a == 0 else tsc[:, 0] * loadings[j, 0]
        for i in range(1, a):
            rec = rec + tsc[:, i] * loadings[j, i]
        r = z[:, j] - rec
        qq = qq + r * r
    raw = np.maximum(tt / t2_lim, qq / q_lim)
    on_a, off_a = np.array([on]), np.array([off])
    for t in range(m):
        valid = np.array([not np.isnan(raw[t])])
        if valid[0]:
            stat[0] = stat[0] + lam * (raw[t] - stat[0])
            sc = np.array([stat[0]])
            t2[t], q[t] = tt[t], qq[t]
        else:
            sc = np.array([np.nan])
            t2[t] = q[t] = np.nan
        _alarm_update(sc, valid, on_a, off_a, k, w, history, alarm)
        score[t] = sc[0]
        alarm_out[t] = alarm[0]


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
    return th1 * inner ** (1.0 / h0)


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

    @property
    def components(self) -> int:
        return self.loadings.shape[1]


def fit_pca(train: np.ndarray, explained: float = 0.9, components: int | None = None, alpha: float = 0.99,
            min_scale: float = 1e-9) -> PcaModel:
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
    if components is None:
        frac = np.cumsum(w) / w.sum() if w.sum() > 0 else np.ones(p)
        a = int(np.searchsorted(frac, explained) + 1)
    else:
        a = int(components)
    a = max(1, min(a, p - 1))
    keep = w[:a] > 1e-12 * max(w[0], 1e-300)
    a = max(1, int(keep.sum()))
    eig = np.maximum(w[:a], 1e-12)
    return PcaModel(mean, scale, np.ascontiguousarray(V[:, :a]), eig, t2_limit(alpha, a, n),
                    max(jackson_mudholkar_limit(alpha, w[a:]), 1e-12), w)


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
