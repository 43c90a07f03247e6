"""Online identification of ARX / first-order-plus-dead-time models, many channels per kernel call.

Public layer over ``kernels._ident`` (Cython) or ``kernels.ident_reference`` (NumPy, the spec),
selected by the same environment switches as every kernel family (``kernels._select``);
``IDENT_IMPLEMENTATION`` says which one runs. See ``kernels.ident_reference`` for the model, the
update equations and the anti-windup rule.

What-if on identified models, pure NumPy and batched over channels like the kernels:
``model_params`` (physical reading: gain, time constant, dead time) and ``interval_half_width``
(Gaussian prediction interval); ``arx_simulate`` runs a model under given inputs.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike

from ._select import IMPLEMENTATION as IDENT_IMPLEMENTATION  # one choice for all kernels
from ._select import ident_impl as _impl
from .kalman import ChannelIndex

__all__ = [
    "IDENT_IMPLEMENTATION",
    "MAX_NA",
    "MAX_NB",
    "MAX_NU",
    "ArxOrders",
    "ModelParams",
    "RlsBank",
    "RlsChannelState",
    "arx_simulate",
    "interval_half_width",
    "model_params",
    "rls_step",
]

MAX_NA: Final[int] = 8
MAX_NB: Final[int] = 8
MAX_NU: Final[int] = 256  # nk + nb - 1 (input history, i.e. dead time in samples)


@dataclass(frozen=True, slots=True)
class ArxOrders:
    """``y[k] = sum a_i y[k-i] (i=1..na) + sum b_i u[k-nk-i+1] (i=1..nb) + c``."""

    na: int
    nb: int
    nk: int

    def __post_init__(self) -> None:
        if not 0 <= self.na <= MAX_NA:
            raise ValueError(f"na must be in 0..{MAX_NA}, got {self.na}")
        if not 1 <= self.nb <= MAX_NB:
            raise ValueError(f"nb must be in 1..{MAX_NB}, got {self.nb}")
        if not 1 <= self.nk <= MAX_NU - self.nb + 1:
            raise ValueError(f"nk must be in 1..{MAX_NU - self.nb + 1}, got {self.nk}")

    @property
    def n_params(self) -> int:
        return self.na + self.nb + 1

    @property
    def n_input_history(self) -> int:
        return self.nk + self.nb - 1

    @classmethod
    def fopdt(cls, dead_time_steps: int = 0) -> ArxOrders:
        """First order plus ``dead_time_steps`` samples of dead time."""
        return cls(1, 1, 1 + operator.index(dead_time_steps))


def _out(name: str, a: object, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} is updated in place and must be a writeable C-contiguous float64 ndarray")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _in(name: str, a: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0 and len(shape) == 1:
        arr = np.full(shape, float(arr))
    arr = np.ascontiguousarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def _orders_of(theta_shape: tuple[int, ...], yh_shape: tuple[int, ...], uh_shape: tuple[int, ...]) -> ArxOrders:
    if len(theta_shape) != 2 or len(yh_shape) != 2 or len(uh_shape) != 2:
        raise ValueError("theta, yh and uh must be 2-D (n, ...)")
    na, nu = yh_shape[1], uh_shape[1]
    nb = theta_shape[1] - na - 1
    return ArxOrders(na, nb, nu - nb + 1)


def rls_step(
    theta: np.ndarray,
    P: np.ndarray,
    yh: np.ndarray,
    uh: np.ndarray,
    y: ArrayLike,
    u: ArrayLike,
    lam: ArrayLike,
    p_max: ArrayLike,
    sigma2: np.ndarray,
    err: np.ndarray,
) -> None:
    """One RLS-with-forgetting update of every channel, in place; see ``ident_reference.rls_step``.

    In place: theta (n, p), P (n, p, p), yh (n, na), uh (n, nk+nb-1), sigma2 (n,), err (n,).
    Inputs: y, u (n,) (NaN y = no measurement), lam in (0, 1] and p_max > 0, scalars or (n,).
    """
    n = np.shape(theta)[0]
    o = _orders_of(np.shape(theta), np.shape(yh), np.shape(uh))
    p = o.n_params
    _out("theta", theta, (n, p))
    _out("P", P, (n, p, p))
    _out("yh", yh, (n, o.na))
    _out("uh", uh, (n, o.n_input_history))
    _out("sigma2", sigma2, (n,))
    _out("err", err, (n,))
    lam_a = _in("lam", lam, (n,))
    if not np.all((lam_a > 0) & (lam_a <= 1)):
        raise ValueError("lam (forgetting factor) must be in (0, 1]")
    pm = _in("p_max", p_max, (n,))
    if not np.all(pm > 0):
        raise ValueError("p_max must be > 0")
    _impl.rls_step(theta, P, yh, uh, _in("y", y, (n,)), _in("u", u, (n,)), lam_a, pm, sigma2, err)


def arx_simulate(
    theta: ArrayLike,
    P: ArrayLike,
    yh: ArrayLike,
    uh: ArrayLike,
    u_future: ArrayLike,
    sigma2: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(mean, var)`` (n, h): each channel's model run under ``u_future`` (n, h).

    Column j predicts y[k+1+j] where u[k+1+j] = u_future[:, j] and the histories end at y[k], u[k];
    ``var`` is the prediction-error variance: equation noise ``sigma2`` (n,) propagated through
    1/A(q) plus parameter uncertainty ``sigma2 * P`` (n, p, p) by the delta method. See
    ``ident_reference.arx_simulate``.
    """
    th = np.ascontiguousarray(theta, dtype=np.float64)
    n = th.shape[0] if th.ndim == 2 else -1
    o = _orders_of(th.shape, np.shape(yh), np.shape(uh))
    uf = np.ascontiguousarray(u_future, dtype=np.float64)
    if uf.ndim != 2 or uf.shape[0] != n:
        raise ValueError(f"u_future must have shape ({n}, h), got {uf.shape}")
    mean = np.empty(uf.shape)
    var = np.empty(uf.shape)
    p = o.n_params
    _impl.arx_simulate(th, _in("P", P, (n, p, p)), _in("yh", yh, (n, o.na)), _in("uh", uh, (n, o.n_input_history)), uf, _in("sigma2", sigma2, (n,)), mean, var)
    return mean, var


@dataclass(frozen=True, slots=True)
class RlsChannelState:
    """Everything one channel of an ``RlsBank`` has learnt (arrays are copies)."""

    theta: np.ndarray  # (p,)
    P: np.ndarray  # (p, p)
    yh: np.ndarray  # (na,), newest first; NaN where not filled yet
    uh: np.ndarray  # (nk + nb - 1,)
    sigma2: float  # NaN before the first update
    updates: int


class RlsBank:
    """*n_channels* online ARX identifications of one model structure, updated by one kernel call.

    Parameters start at ``theta0`` (default: all zero) with covariance ``p0 * I``; every channel has
    its forgetting factor ``lam`` and covariance bound ``p_max`` (the anti-windup rule of
    ``ident_reference.rls_step``). ``updates`` counts the accepted updates per channel.
    """

    def __init__(
        self, orders: ArxOrders, n_channels: int, lam: ArrayLike = 0.998, p_max: ArrayLike = 1e4, p0: float = 1e3, theta0: ArrayLike | None = None
    ) -> None:
        n = operator.index(n_channels)
        if n < 0:
            raise ValueError(f"n_channels must be >= 0, got {n}")
        if not (math.isfinite(p0) and p0 > 0):
            raise ValueError(f"p0 must be a finite number > 0, got {p0!r}")
        self.orders = orders
        self.n_channels = n
        p = orders.n_params
        self.lam = _in("lam", lam, (n,))
        self.p_max = _in("p_max", p_max, (n,))
        if not np.all((self.lam > 0) & (self.lam <= 1)):
            raise ValueError("lam (forgetting factor) must be in (0, 1]")
        if not np.all(self.p_max >= p * p0):
            raise ValueError(f"p_max must be >= trace of the initial covariance ({p} * p0 = {p * p0:g})")
        self._theta0 = np.zeros((n, p))
        if theta0 is not None:
            self._theta0[:] = np.broadcast_to(np.asarray(theta0, dtype=np.float64), (n, p))
        self._p0 = float(p0)
        self.theta = np.empty((n, p))
        self.P = np.empty((n, p, p))
        self.yh = np.empty((n, orders.na))
        self.uh = np.empty((n, orders.n_input_history))
        self.sigma2 = np.empty(n)
        self.err = np.empty(n)
        self.updates = np.zeros(n, dtype=np.int64)
        self.reset()

    def reset(self, i: ChannelIndex | None = None) -> None:
        """Forget everything learnt by channel(s) *i* (all when None)."""
        sel = slice(None) if i is None else i
        self.theta[sel] = self._theta0[sel]
        self.P[sel] = self._p0 * np.eye(self.orders.n_params)
        self.yh[sel] = np.nan
        self.uh[sel] = np.nan
        self.sigma2[sel] = np.nan
        self.err[sel] = np.nan
        self.updates[sel] = 0

    def channel_state(self, i: int) -> RlsChannelState:
        """A copy of what channel *i* has learnt."""
        return RlsChannelState(self.theta[i].copy(), self.P[i].copy(), self.yh[i].copy(), self.uh[i].copy(), float(self.sigma2[i]), int(self.updates[i]))

    def set_channel_state(self, i: int, state: RlsChannelState) -> None:
        """Load channel *i* from ``channel_state`` output (of a bank of the same orders).

        Raises ValueError, leaving the channel unchanged, for a wrong shape, a non-finite theta or
        P, an asymmetric P or one with a negative diagonal, an infinite history entry (NaN means
        "not filled yet"), a negative or infinite sigma2 (NaN: no update yet) or negative updates.
        """
        o = self.orders
        p = o.n_params
        theta, P = np.array(state.theta, dtype=np.float64), np.array(state.P, dtype=np.float64)
        yh, uh = np.array(state.yh, dtype=np.float64), np.array(state.uh, dtype=np.float64)
        want = ((p,), (p, p), (o.na,), (o.n_input_history,))
        got = (theta.shape, P.shape, yh.shape, uh.shape)
        if got != want:
            raise ValueError(f"theta, P, yh, uh must have shapes {want} for orders {o}, got {got}")
        if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(P))):
            raise ValueError("theta and P must be finite")
        if not np.allclose(P, P.T, rtol=1e-9, atol=0.0) or np.any(np.diag(P) < 0):
            raise ValueError("P must be symmetric with a non-negative diagonal")
        if np.any(np.isinf(yh)) or np.any(np.isinf(uh)):
            raise ValueError("history entries must be finite or NaN")
        s2 = float(state.sigma2)
        if not (math.isnan(s2) or (math.isfinite(s2) and s2 >= 0)):
            raise ValueError(f"sigma2 must be NaN or finite and >= 0, got {s2!r}")
        n_up = operator.index(state.updates)
        if n_up < 0:
            raise ValueError(f"updates must be >= 0, got {n_up}")
        self.theta[i] = theta
        self.P[i] = 0.5 * (P + P.T)
        self.yh[i] = yh
        self.uh[i] = uh
        self.sigma2[i] = s2
        self.err[i] = np.nan
        self.updates[i] = n_up

    def step(self, y: ArrayLike, u: ArrayLike) -> None:
        """Feed y[k] (NaN: none) and the input u[k] now applied; one kernel call for all channels."""
        n = self.n_channels
        _impl.rls_step(self.theta, self.P, self.yh, self.uh, _in("y", y, (n,)), _in("u", u, (n,)), self.lam, self.p_max, self.sigma2, self.err)
        self.updates += ~np.isnan(self.err)

    def simulate(self, u_future: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, var)`` (n, h) of y[k+1..k+h] under the inputs *u_future* (n, h)."""
        return arx_simulate(self.theta, self.P, self.yh, self.uh, u_future, self.sigma2)

    def forecast_held(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, var)`` (n,) of y[k+steps] with the last input held (steps >= 1)."""
        k = operator.index(steps)
        if k < 1:
            raise ValueError(f"steps must be >= 1, got {k}")
        u_last = self.uh[:, 0] if self.uh.shape[1] else np.zeros(self.n_channels)
        mean, var = self.simulate(np.repeat(u_last[:, None], k, axis=1))
        return mean[:, -1], var[:, -1]


# -- what-if on identified models ---------------------------------------------------------


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
    sb = th[:, na : na + nb].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = 1.0 - sa
        gain = np.where(one != 0, sb / one, np.nan)
        grad = np.zeros_like(th)
        grad[:, :na] = (sb / (one * one))[:, None]
        grad[:, na : na + nb] = (1.0 / one)[:, None]
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
