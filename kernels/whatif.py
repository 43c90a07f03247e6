"""What-if on identified models: physical parameters and prediction intervals.

Pure NumPy on the output of ``kernels.ident``, batched over channels like the kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .ident import ArxOrders


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Physical reading of identified ARX models, arrays (n,); NaN where not defined."""

    gain: np.ndarray  # steady-state dy/du: sum(b) / (1 - sum(a)); NaN when sum(a) == 1
    gain_std: np.ndarray  # first-order (delta method) standard deviation of gain
    time_constant_s: np.ndarray  # -T / ln(a) for first order with 0 < a < 1, else NaN
    dead_time_s: float  # (nk - 1) T


def model_params(theta: ArrayLike, P: ArrayLike, sigma2: ArrayLike, orders: ArxOrders, period_s: float) -> ModelParams:
    """Gain, its standard deviation, time constant and dead time of each channel's model.

    ``cov(theta) = sigma2 * P`` (the RLS covariance is scaled by the noise variance); the gain's
    variance is ``grad^T cov grad`` with ``d gain/d a_i = sum(b)/(1 - sum(a))^2`` and
    ``d gain/d b_i = 1/(1 - sum(a))``. The time constant exists only for ``na == 1`` and a pole
    in (0, 1) (a non-oscillating, stable first-order lag).
    """
    th = np.asarray(theta, dtype=np.float64)
    cov = np.asarray(P, dtype=np.float64) * np.asarray(sigma2, dtype=np.float64)[:, None, None]
    na, nb = orders.na, orders.nb
    sa = th[:, :na].sum(axis=1)
    sb = th[:, na:na + nb].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = 1.0 - sa
        gain = np.where(one != 0, sb / one, np.nan)
        grad = np.zeros_like(th)
        grad[:, :na] = (sb / (one * one))[:, None]
        grad[:, na:na + nb] = (1.0 / one)[:, None]
        gvar = np.einsum("ni,nij,nj->n", grad, cov, grad)
        gain_std = np.sqrt(np.where(gvar >= 0, gvar, np.nan))
        if na == 1:
            a = th[:, 0]
            tau = np.where((a > 0) & (a < 1), -period_s / np.log(np.where((a > 0) & (a < 1), a, 0.5)), np.nan)
        else:
            tau = np.full(th.shape[0], np.nan)
    return ModelParams(gain, gain_std, tau, (orders.nk - 1) * period_s)


def interval_half_width(var: ArrayLike, level: float = 0.95) -> np.ndarray:
    """Half width of the two-sided Gaussian prediction interval at *level* (0.95: 1.96 sigma)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    z = _norm_ppf(0.5 + level / 2)
    return z * np.sqrt(np.asarray(var, dtype=np.float64))


def _norm_ppf(p: float) -> float:
    """Inverse standard normal CDF by bisection on erf (exact to ~1e-12; no SciPy needed)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
