"""NumPy reference of the twin's batched Kalman filter: the spec the compiled kernels must match.

``n`` independent channels share one linear model ``(F, Q, H)``. Channel ``i`` has state ``x[i]``
(``s`` entries), covariance ``P[i]`` (``s x s``), one scalar measurement ``z[i]`` per step and its
own measurement variance ``R[i]``.

Written for clarity, with one rule that keeps it comparable to ``kernels._kalman`` at ``rtol=1e-12``:
every sum over a state index is accumulated left to right with separate multiplies and adds
(``_lsum``), no BLAS, no einsum. The compiled loops accumulate in the same order, so the two agree
to the last bit or close to it. BLAS reorders and fuses operations, and values that land near zero
(a state crossing zero, the innovation of a well-tracked signal) would then differ in their leading
digits.

No argument checking here: ``kernels/kalman.py`` validates, so both implementations see the same
clean input. Arrays named as outputs are updated in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

import numpy as np


class _Addable(Protocol):
    def __add__(self, other: Any, /) -> Any: ...


_T = TypeVar("_T", bound=_Addable)


def _lsum(terms: Iterable[_T]) -> _T:
    """``t0 + t1 + ... + t(m-1)``, added left to right (the compiled kernels' order)."""
    it = iter(terms)
    acc = next(it)
    for t in it:
        acc = acc + t
    return acc


def kalman_step(
    x: np.ndarray,
    P: np.ndarray,
    F: np.ndarray,
    Q: np.ndarray,
    H: np.ndarray,
    R: np.ndarray,
    z: np.ndarray,
    innov: np.ndarray,
    innov_var: np.ndarray,
) -> None:
    """One predict + update for every channel; updates ``x``, ``P``, ``innov``, ``innov_var`` in place.

    Shapes: x (n, s), P (n, s, s), F (s, s), Q (s, s), H (s,), R (n,), z (n,), innov (n,),
    innov_var (n,).

    Predict::

        x_pred = F x
        P_pred = F P F^T + Q            (upper triangle of Q is used; P_pred is mirrored from its upper triangle)

    Update with the scalar measurement z (skipped when z is NaN, meaning "no measurement")::

        innov     = z - H x_pred         (NaN when z is NaN)
        innov_var = S = H P_pred H^T + R (always filled)
        u = P_pred H^T,  K = u / S
        x = x_pred + K innov
        P = P_pred - K u^T               (= P_pred - u u^T / S)

    Covariance update: the symmetric form, upper triangle computed and mirrored, so P stays exactly
    symmetric. For a scalar measurement the Joseph form (I - K H) P_pred (I - K H)^T + K R K^T
    expands to exactly P_pred - u u^T / S, so this is the same update at O(s^2) instead of O(s^3).
    It keeps P positive semi-definite up to rounding; the subtraction loses relative accuracy of
    about eps * (H P_pred H^T) / R, which only matters once the predicted measurement variance
    exceeds R by ~1e12.

    Without a measurement: x = x_pred, P = P_pred, innov = NaN, innov_var = H P_pred H^T + R.
    ``S`` must be > 0 (R > 0 guarantees it); otherwise the update yields inf/NaN.
    """
    s = x.shape[1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Predict. Columns x[:, k] and P[:, k, l] hold one state entry for every channel.
        x_pred = [_lsum(F[a, k] * x[:, k] for k in range(s)) for a in range(s)]
        FP = [[_lsum(F[a, k] * P[:, k, j] for k in range(s)) for j in range(s)] for a in range(s)]
        P_pred: dict[tuple[int, int], np.ndarray] = {}
        for a in range(s):
            for b in range(a, s):
                P_pred[a, b] = P_pred[b, a] = _lsum(FP[a][j] * F[b, j] for j in range(s)) + Q[a, b]

        # Update.
        u = [_lsum(P_pred[a, b] * H[b] for b in range(s)) for a in range(s)]
        hx = _lsum(H[b] * x_pred[b] for b in range(s))
        S = _lsum(H[b] * u[b] for b in range(s)) + R
        y = z - hx
        K = [u[a] * (1.0 / S) for a in range(s)]
        has = ~np.isnan(z)

        for a in range(s):
            x[:, a] = np.where(has, x_pred[a] + K[a] * y, x_pred[a])
            for b in range(a, s):
                P[:, a, b] = P[:, b, a] = np.where(has, P_pred[a, b] - K[a] * u[b], P_pred[a, b])
        innov[:] = np.where(has, y, np.nan)
        innov_var[:] = S


def _measurement_rows(F: np.ndarray, Q: np.ndarray, H: np.ndarray, steps: int) -> tuple[list[float], float]:
    """Return ``g = H F^steps`` and ``c = sum_{j<steps} (H F^j) Q (H F^j)^T`` (channel independent)."""
    s = H.shape[0]
    g = [float(h) for h in H]
    c = 0.0
    for _ in range(steps):
        Qg = [_lsum(Q[a, b] * g[b] for b in range(s)) for a in range(s)]
        c = c + _lsum(g[a] * Qg[a] for a in range(s))
        g = [_lsum(g[j] * F[j, m] for j in range(s)) for m in range(s)]
    return g, c


def kalman_forecast(x: np.ndarray, P: np.ndarray, F: np.ndarray, Q: np.ndarray, H: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Predict the measurement ``steps`` >= 0 steps ahead; return new arrays ``(mean, var)``, each (n,).

    With P_0 = P and P_k = F P_(k-1) F^T + Q::

        mean = H F^k x
        var  = H P_k H^T = g P g^T + sum_{j<k} (H F^j) Q (H F^j)^T,   g = H F^k

    ``var`` is the variance of the predicted *noise-free* measurement H x_k: R is not added (add it
    for the spread of a future raw reading). ``steps = 0`` gives the current estimate H x, H P H^T.
    The channel-independent row g and constant are computed once, so the cost per channel does not
    grow with ``steps``.
    """
    s = x.shape[1]
    g, c = _measurement_rows(F, Q, H, steps)
    mean = _lsum(g[m] * x[:, m] for m in range(s))
    Pg = [_lsum(P[:, a, b] * g[b] for b in range(s)) for a in range(s)]
    var = _lsum(g[a] * Pg[a] for a in range(s)) + c
    return np.array(mean, dtype=np.float64), np.array(var, dtype=np.float64)


def nis_ewma(score: np.ndarray, innov: np.ndarray, innov_var: np.ndarray, alpha: np.ndarray) -> None:
    """Smooth the normalized innovation squared into ``score`` in place; all arrays (n,).

    ``score = (1 - alpha) * score + alpha * (innov * innov / innov_var)`` where innov is not NaN;
    channels without an innovation (no measurement this step) keep their score. ``alpha`` holds one
    factor in (0, 1] per channel (the public wrapper broadcasts a scalar).

    Under the model innov ~ N(0, innov_var), so the normalized innovation squared is chi-square with
    one degree of freedom, expectation 1: the score sits near 1 in normal operation and rises when
    measurements stop fitting the model (a fault, a wrong noise level).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        nis = innov * innov / innov_var
        smoothed = (1.0 - alpha) * score + alpha * nis
    has = ~np.isnan(innov)
    score[has] = smoothed[has]
