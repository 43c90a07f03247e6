"""The SKAB leaderboard's causal T^2+Q detector, re-implemented from its description (for
``bench_skab.py``: it must print the published row, which validates our metric code).

Two quirks of the published implementation are reproduced to get its numbers exactly: its Q limit
uses theta_i = (sum of the discarded eigenvalues)^i instead of sum lambda^i, taking the eigenvalues
in the order a general eigen-solver returns them, and both quantiles come from a 10,000-point grid
on [0, 15].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kernels import detect

TRAIN = 400  # rows of each file that fit the detector (the SKAB protocol)


def _grid_quantile(cdf: Callable[[float], float], p: float) -> float:
    """The recipe's quantile: the largest point of a 10,000-point grid on [0, 15] with cdf < p."""
    grid = np.linspace(0, 15, 10000)
    below = [x for x in grid if cdf(x) < p]
    return float(below[-1])


def upstream_t2q(values: np.ndarray, explained: float = 0.85, p: float = 0.999, median: int = 5) -> np.ndarray:
    """Leaderboard T^2+Q: standardise on the training rows (population std), PCA keeping the fewest
    components that explain more than *explained*, T^2 limit from the F distribution, Q limit by
    Jackson-Mudholkar computed with theta_i = (sum of the discarded eigenvalues)^i, where the
    eigenvalues are taken in the order the general (non-symmetric) eigen-solver returns them; both
    statistics filtered by a trailing median of *median* samples; alarm when either exceeds its limit.
    """
    train, test = values[:TRAIN], values[TRAIN:]
    mu, sd = train.mean(axis=0), train.std(axis=0)
    Z, Zt = (train - mu) / sd, (test - mu) / sd
    n, m = Z.shape
    C = np.cov(Z, rowvar=False)
    w, V = np.linalg.eigh(C)
    w, V = w[::-1], V[:, ::-1]
    a = int(np.sum(np.cumsum(w) / w.sum() < explained) + 1)
    P = V[:, :a]
    inv = np.linalg.inv(np.atleast_2d(np.cov(Z @ P, rowvar=False)))
    T = Zt @ P
    t2 = np.einsum("ij,jk,ik->i", T, inv, T)
    f_cdf = lambda x: detect.beta_inc(a / 2, (n - a) / 2, a * x / (a * x + n - a)) if x > 0 else 0.0  # noqa: E731
    t2_lim = a * (n - 1) * (n + 1) / (n * (n - a)) * _grid_quantile(f_cdf, p)
    q = np.einsum("ij,jk,ik->i", Zt, np.eye(m) - P @ P.T, Zt)
    s = float(np.real(np.linalg.eigvals(C))[a:].sum())
    th1, th2, th3 = s, s**2, s**3
    h0 = 1 - 2 * th1 * th3 / (3 * th2**2)
    c = _grid_quantile(lambda x: 0.5 * math.erfc(-x / math.sqrt(2)), p)
    q_lim = th1 * (1 + c * h0 * math.sqrt(2 * th2) / th1 + th2 * h0 * (h0 - 1) / th1**2) ** (1 / h0)

    def trailing_median(x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), np.nan)
        if len(x) >= median:
            out[median - 1 :] = np.median(np.lib.stride_tricks.sliding_window_view(x, median), axis=1)
        return out

    with np.errstate(invalid="ignore"):
        return (trailing_median(t2) > t2_lim) | (trailing_median(q) > q_lim)
