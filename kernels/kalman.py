"""Kalman family: a batched linear Kalman filter (n channels sharing one model), compiled or NumPy.

The public functions here validate their arguments and then call the active implementation:
``kernels._kalman`` (Cython) when it is built, otherwise ``kernels.kalman_reference`` (NumPy, the
spec); ``kernels.IMPLEMENTATION`` says which one runs (``kernels._select``, one choice for every
family).

Dtypes and layout: everything is float64. Read-only inputs are converted with
``np.ascontiguousarray`` (a copy only when needed). Arrays updated in place (``x``, ``P``,
``innov``, ``innov_var``, ``score``) must already be writeable C-contiguous float64 ndarrays,
because a converted copy would silently swallow the update; anything else is a ValueError.

Model matrices ``(F, Q, H)`` (``model_matrices``, pure NumPy): each model tracks the measured
value and ``m`` of its time derivatives; the next derivative is driven by discrete white noise held
constant over each step (Bar-Shalom's piecewise-constant white noise models):

======================  =  ==========================  ============================================
kind                    s  state                       noise (variance ``q``) and gain ``G``
======================  =  ==========================  ============================================
random_walk             1  level                       velocity:     G = [dt]
constant_velocity       2  level, rate                 acceleration: G = [dt^2/2, dt]
constant_acceleration   3  level, rate, acceleration   jerk:         G = [dt^3/6, dt^2/2, dt]
======================  =  ==========================  ============================================

``F`` is the Taylor transition (``F[i, j] = dt^(j-i) / (j-i)!`` for ``j >= i``), ``Q = q G G^T``
and ``H = [1, 0, ...]`` (the level is measured). ``q`` is the variance of the driving derivative
in (unit / s^s)^2. ``constant_velocity`` equals filterpy's ``Q_discrete_white_noise(2, dt, q)``;
for ``constant_acceleration`` filterpy's ``dim=3`` variant drives the acceleration instead of the
jerk (``G = [dt^2/2, dt, 1]``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._select import kalman_impl as _impl

__all__ = [
    "MAX_STATE_SIZE",
    "STATE_SIZE",
    "ChannelIndex",
    "KalmanBank",
    "kalman_forecast",
    "kalman_step",
    "model_matrices",
    "nis_ewma",
    "transition_power",
]

MAX_STATE_SIZE: Final[int] = 8  # the compiled kernels keep per-channel scratch on the stack

ChannelIndex: TypeAlias = int | slice | Sequence[int] | NDArray[np.integer[Any]] | NDArray[np.bool_]
"""Selects channels of a bank (``reset``): an index, a slice, indices or a boolean mask."""

STATE_SIZE: Final[Mapping[str, int]] = MappingProxyType({"random_walk": 1, "constant_velocity": 2, "constant_acceleration": 3})


def model_matrices(kind: str, dt_s: float, q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return new float64 arrays ``(F (s, s), Q (s, s), H (s,))`` for model *kind* at step *dt_s*.

    Raises ValueError for an unknown *kind*, ``dt_s`` not finite and > 0, or ``q`` not finite and >= 0.
    """
    try:
        s = STATE_SIZE[kind]
    except (KeyError, TypeError):
        raise ValueError(f"kind must be one of {', '.join(STATE_SIZE)}; got {kind!r}") from None
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise ValueError(f"dt_s must be a finite number > 0, got {dt_s!r}")
    if not (math.isfinite(q) and q >= 0):
        raise ValueError(f"q must be a finite number >= 0, got {q!r}")
    dt = float(dt_s)
    F = np.zeros((s, s))
    for i in range(s):
        for j in range(i, s):
            F[i, j] = dt ** (j - i) / math.factorial(j - i)
    # G[i] = dt^(s-i) / (s-i)!: the effect over one step of a constant unit s-th derivative.
    G = np.array([dt ** (s - i) / math.factorial(s - i) for i in range(s)])
    Q = float(q) * np.outer(G, G)
    H = np.zeros(s)
    H[0] = 1.0
    return F, Q, H


def transition_power(F: ArrayLike, Q: ArrayLike, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Return new arrays ``(Phi, Qk)`` (s, s): *steps* >= 0 predictions without a measurement in one.

    ``Phi = F^k`` and ``Qk = sum_{j<k} F^j Q F^jT``, so that ``x_k = Phi x`` and
    ``P_k = Phi P Phi^T + Qk`` equal k predict-only steps of ``kalman_step`` (up to rounding). Built
    by repeated squaring (O(log k) matrix products), so a day of ticks costs microseconds: used to
    carry a restored filter state across the time the gateway was down.
    """
    k = operator.index(steps)
    if k < 0:
        raise ValueError(f"steps must be >= 0, got {k}")
    Fa = np.array(F, dtype=np.float64)
    Qa = np.array(Q, dtype=np.float64)
    s = Fa.shape[0]
    if Fa.shape != (s, s) or Qa.shape != (s, s):
        raise ValueError(f"F and Q must be square and of the same shape, got {Fa.shape} and {Qa.shape}")
    phi, acc = np.eye(s), np.zeros((s, s))  # the result so far: (F^m, Q_m) for the bits consumed
    base_phi, base_q = Fa, Qa  # (F^(2^i), Q_(2^i))
    with np.errstate(over="ignore", invalid="ignore"):
        while k:
            if k & 1:  # append 2^i steps after the m done: Q_(m+2^i) = F^(2^i) Q_m F^(2^i)^T + Q_(2^i)
                acc = base_phi @ acc @ base_phi.T + base_q
                phi = base_phi @ phi
            k >>= 1
            if k:
                base_q = base_phi @ base_q @ base_phi.T + base_q
                base_phi = base_phi @ base_phi
    return phi, 0.5 * (acc + acc.T)


def _output(name: str, a: object, shape: tuple[int, ...]) -> np.ndarray:
    """Check an array that the kernel updates in place."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or not a.flags.c_contiguous or not a.flags.writeable:
        if isinstance(a, np.ndarray):
            got = f"dtype={a.dtype}, c_contiguous={a.flags.c_contiguous}, writeable={a.flags.writeable}"
        else:
            got = type(a).__name__
        raise ValueError(f"{name} is updated in place and must be a writeable C-contiguous float64 ndarray; got {got}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _input(name: str, a: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """Convert a read-only input to a C-contiguous float64 array of *shape*."""
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def _state_shape(name: str, x: ArrayLike) -> tuple[int, int]:
    shape = np.shape(x)
    if len(shape) != 2 or not 1 <= shape[1] <= MAX_STATE_SIZE:
        raise ValueError(f"{name} must have shape (n, s) with 1 <= s <= {MAX_STATE_SIZE}, got {shape}")
    return shape[0], shape[1]


def kalman_step(
    x: np.ndarray,
    P: np.ndarray,
    F: ArrayLike,
    Q: ArrayLike,
    H: ArrayLike,
    R: ArrayLike,
    z: ArrayLike,
    innov: np.ndarray,
    innov_var: np.ndarray,
) -> None:
    """One predict + update for n channels sharing the model ``(F, Q, H)``; see ``kernels.kalman_reference.kalman_step``.

    In place: x (n, s), P (n, s, s), innov (n,), innov_var (n,). Inputs: F (s, s), Q (s, s)
    (upper triangle used), H (s,), R (n,) measurement variances, z (n,) measurements, NaN for
    "no measurement" (predict only). s <= MAX_STATE_SIZE.
    """
    n, s = _state_shape("x", x)
    _output("x", x, (n, s))
    _output("P", P, (n, s, s))
    _output("innov", innov, (n,))
    _output("innov_var", innov_var, (n,))
    _impl.kalman_step(
        x,
        P,
        _input("F", F, (s, s)),
        _input("Q", Q, (s, s)),
        _input("H", H, (s,)),
        _input("R", R, (n,)),
        _input("z", z, (n,)),
        innov,
        innov_var,
    )


def kalman_forecast(x: ArrayLike, P: ArrayLike, F: ArrayLike, Q: ArrayLike, H: ArrayLike, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Return new arrays ``(mean (n,), var (n,))``: the measurement predicted *steps* >= 0 steps ahead.

    ``mean = H F^k x`` and ``var = H P_k H^T`` with P propagated k times by ``F P F^T + Q``; R is not
    included. ``steps=0`` gives the current estimate. See ``kernels.kalman_reference.kalman_forecast``.
    """
    n, s = _state_shape("x", x)
    k = operator.index(steps)
    if k < 0:
        raise ValueError(f"steps must be >= 0, got {k}")
    mean_var: tuple[np.ndarray, np.ndarray] = _impl.kalman_forecast(
        _input("x", x, (n, s)),
        _input("P", P, (n, s, s)),
        _input("F", F, (s, s)),
        _input("Q", Q, (s, s)),
        _input("H", H, (s,)),
        k,
    )
    return mean_var


def nis_ewma(score: np.ndarray, innov: ArrayLike, innov_var: ArrayLike, alpha: ArrayLike) -> None:
    """Smooth the normalized innovation squared into *score* (n,) in place; see ``kernels.kalman_reference.nis_ewma``.

    *alpha* is one factor in (0, 1] or one per channel. Channels whose innovation is NaN keep their
    score.
    """
    shape = np.shape(score)
    if len(shape) != 1:
        raise ValueError(f"score must have shape (n,), got {shape}")
    n = shape[0]
    _output("score", score, (n,))
    a = np.asarray(alpha, dtype=np.float64)
    if a.ndim > 1 or (a.ndim == 1 and a.shape != (n,)):
        raise ValueError(f"alpha must be a scalar or have shape ({n},), got {a.shape}")
    if not np.all((a > 0) & (a <= 1)):
        raise ValueError("alpha must be in (0, 1]")
    _impl.nis_ewma(score, _input("innov", innov, (n,)), _input("innov_var", innov_var, (n,)), np.broadcast_to(a, (n,)))


class KalmanBank:
    """A bank of *n_channels* Kalman filters of one model kind, stepped together by one kernel call.

    Owns the state and covariance, the model ``(F, Q, H)`` from ``model_matrices(kind, dt_s, q)``,
    the measurement variances ``r`` (scalar or (n,), > 0), the last innovation and its variance,
    and the anomaly score (EWMA of the normalized innovation squared, starting at its expected
    value 1). ``x0`` is the initial level (scalar or (n,)) or the full initial state (n, s); the
    other state entries start at 0. Every channel starts with covariance ``p0 * I``.

    Attributes ``x`` (n, s) and ``P`` (n, s, s) are the live filter state; ``F``, ``Q``, ``H`` and
    ``R`` are read-only arrays.
    """

    def __init__(
        self,
        kind: str,
        n_channels: int,
        dt_s: float,
        q: float,
        r: ArrayLike,
        x0: ArrayLike | None = None,
        p0: float = 1e3,
    ) -> None:
        self.F, self.Q, self.H = model_matrices(kind, dt_s, q)
        n = operator.index(n_channels)
        if n < 0:
            raise ValueError(f"n_channels must be >= 0, got {n}")
        s = STATE_SIZE[kind]
        self.kind = kind
        self.n_channels = n
        self.dt_s = float(dt_s)
        R = np.asarray(r, dtype=np.float64)
        if R.ndim > 1 or (R.ndim == 1 and R.shape != (n,)):
            raise ValueError(f"r must be a scalar or have shape ({n},), got {R.shape}")
        if not np.all(np.isfinite(R) & (R > 0)):
            raise ValueError("r (measurement variance) must be finite and > 0")
        self.R = np.array(np.broadcast_to(R, (n,)))
        if not (np.isfinite(p0) and p0 > 0):
            raise ValueError(f"p0 must be a finite number > 0, got {p0!r}")
        self._x0 = np.zeros((n, s))
        if x0 is not None:
            init = np.asarray(x0, dtype=np.float64)
            if init.shape == (n, s):
                self._x0[:] = init
            elif init.ndim == 0 or init.shape == (n,):
                self._x0[:, 0] = init
            else:
                raise ValueError(f"x0 must be a scalar, shape ({n},) or shape ({n}, {s}); got {init.shape}")
        self._p0 = float(p0)
        self.x = np.empty((n, s))
        self.P = np.empty((n, s, s))
        self._innov = np.empty(n)
        self._innov_var = np.empty(n)
        self._score = np.empty(n)
        for model_array in (self.F, self.Q, self.H, self.R):
            model_array.flags.writeable = False
        self.reset()

    def reset(self, i: ChannelIndex | None = None) -> None:
        """Restart channel(s) *i* (an index, slice or index array; all when None) from x0 and p0 * I."""
        sel = slice(None) if i is None else i
        self.x[sel] = self._x0[sel]
        self.P[sel] = self._p0 * np.eye(self.x.shape[1])
        self._innov[sel] = np.nan
        self._innov_var[sel] = np.nan
        self._score[sel] = 1.0

    def channel_state(self, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Copies of channel *i*'s state ``x`` (s,), covariance ``P`` (s, s) and anomaly score."""
        return self.x[i].copy(), self.P[i].copy(), float(self._score[i])

    def set_channel_state(self, i: int, x: ArrayLike, P: ArrayLike, score: float, coast_steps: int = 0) -> None:
        """Load channel *i* from ``channel_state`` output, then predict it *coast_steps* steps ahead
        without a measurement (the ticks it missed; see ``transition_power``).

        Raises ValueError for a wrong shape, a non-finite entry, an asymmetric P or one with a
        negative diagonal, or a score that is not finite and >= 0; the channel is then unchanged.
        """
        s = self.x.shape[1]
        xa = np.array(x, dtype=np.float64)
        Pa = np.array(P, dtype=np.float64)
        if xa.shape != (s,) or Pa.shape != (s, s):
            raise ValueError(f"x must have shape ({s},) and P ({s}, {s}) for {self.kind}, got {xa.shape} and {Pa.shape}")
        if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(Pa))):
            raise ValueError("x and P must be finite")
        if not np.allclose(Pa, Pa.T, rtol=1e-9, atol=0.0) or np.any(np.diag(Pa) < 0):
            raise ValueError("P must be symmetric with a non-negative diagonal")
        if not (math.isfinite(score) and score >= 0):
            raise ValueError(f"score must be finite and >= 0, got {score!r}")
        if coast_steps:
            phi, qk = transition_power(self.F, self.Q, coast_steps)
            xa, Pa = phi @ xa, phi @ Pa @ phi.T + qk
            if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(Pa))):
                raise ValueError(f"coasting {coast_steps} steps overflows the state")
        self.x[i] = xa
        self.P[i] = 0.5 * (Pa + Pa.T)
        self._innov[i] = np.nan
        self._innov_var[i] = np.nan
        self._score[i] = score

    def step(self, z: ArrayLike) -> None:
        """Predict every channel one step and update with *z* (n,); NaN means no measurement."""
        zz = _input("z", z, (self.n_channels,))
        _impl.kalman_step(self.x, self.P, self.F, self.Q, self.H, self.R, zz, self._innov, self._innov_var)

    def forecast(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(mean, var)`` (n,) of the measurement *steps* steps ahead (R not included)."""
        return kalman_forecast(self.x, self.P, self.F, self.Q, self.H, steps)

    def update_score(self, alpha: ArrayLike, skip: ArrayLike | None = None) -> None:
        """Fold the last innovations into the score: EWMA with factor *alpha* (scalar or (n,), in (0, 1]).

        Channels where the boolean mask *skip* (n,) is set keep their score.
        """
        innov = self._innov
        if skip is not None:
            innov = np.where(np.asarray(skip, dtype=bool), np.nan, innov)
        nis_ewma(self._score, innov, self._innov_var, alpha)

    @property
    def estimate(self) -> np.ndarray:
        """Current estimate of the measured value, H x, as a new (n,) array."""
        return kalman_forecast(self.x, self.P, self.F, self.Q, self.H, 0)[0]

    @property
    def innovation(self) -> np.ndarray:
        """Last innovation z - H x_pred (NaN where the last step had no measurement), a copy."""
        return self._innov.copy()

    @property
    def innovation_var(self) -> np.ndarray:
        """Variance H P_pred H^T + R of the last innovation, a copy (NaN before the first step)."""
        return self._innov_var.copy()

    @property
    def score(self) -> np.ndarray:
        """Anomaly score (EWMA of innov^2 / innov_var, about 1 in normal operation), a copy."""
        return self._score.copy()
