"""NumPy reference of the anomaly detectors: the spec the compiled ``kernels._detect`` must match.

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

No argument checking here: ``kernels/detect.py`` validates, so both implementations see the same
clean input.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cusum_detect", "ewma_detect", "pca_detect"]

_U64 = np.uint64


def _alarm_update(score: np.ndarray, valid: np.ndarray, on: np.ndarray, off: np.ndarray, k: int, w: int, history: np.ndarray, alarm: np.ndarray) -> None:
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


def ewma_detect(
    e: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    lam: np.ndarray,
    on: np.ndarray,
    off: np.ndarray,
    k: int,
    w: int,
    stat: np.ndarray,
    history: np.ndarray,
    alarm: np.ndarray,
    score: np.ndarray,
    alarm_out: np.ndarray,
) -> None:
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


def cusum_detect(
    e: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    kref: np.ndarray,
    on: np.ndarray,
    off: np.ndarray,
    k: int,
    w: int,
    hi: np.ndarray,
    lo: np.ndarray,
    history: np.ndarray,
    alarm: np.ndarray,
    score: np.ndarray,
    alarm_out: np.ndarray,
) -> None:
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


def pca_detect(
    X: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    loadings: np.ndarray,
    eigvals: np.ndarray,
    t2_lim: float,
    q_lim: float,
    lam: float,
    on: float,
    off: float,
    k: int,
    w: int,
    stat: np.ndarray,
    history: np.ndarray,
    alarm: np.ndarray,
    t2: np.ndarray,
    q: np.ndarray,
    score: np.ndarray,
    alarm_out: np.ndarray,
) -> None:
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
