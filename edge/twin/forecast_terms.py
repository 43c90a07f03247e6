"""Forecast terms of the identified first-order models: the input a block acts on, pure NumPy.

**Direct share.** The model runs on block averages (``model_period_s`` ``T``). For a first-order
lag ``tau dy/dt = -y + K u + d`` whose input is held over each block, the block averages obey
exactly::

    ybar[k+1] = a ybar[k] + K (beta - a) u[k] + K (1 - beta) u[k+1] + (1 - a) d
    a = exp(-T / tau),   beta = (1 - a) / (T / tau) = (1 - a) / -ln(a)

so about half of a block's input (``1 - beta``: the input acts within the block it is applied
in) moves that same block's average. The identified ARX model ``y[k+1] = a y[k] + b u[k+1-nk] + c``
has no such term: run as it is, it puts every input change half a period late, and right after a
setpoint step the forecast trails the process by the slope times ``T / 2`` (0.5..1 degC on the
demo tank for a 70 % step). With ``b = K (1 - a)`` the exact recursion is the model's recursion
on the *effective* input ``ue[i] = (1 - s) u[i] + s u[i+1]`` with the direct share
``s = (1 - beta) / (1 - a)`` (0.5 for T << tau); ``effective_inputs`` builds it from the input
history, the running block's projected average and the input now. The same shift applies to a
model with dead time (the delay is whole periods on top of it).
"""

from __future__ import annotations

import numpy as np


def direct_share(a: np.ndarray) -> np.ndarray:
    """Share of a block's input that acts on the same block's average, per channel, for the
    first-order pole *a* (``exp(-T / tau)``); 0 where *a* is not in (0, 1) (no time constant)."""
    a = np.asarray(a, dtype=np.float64)
    ok = (a > 0.0) & (a < 1.0)
    aa = np.where(ok, a, 0.5)
    one_minus = -np.expm1(np.log(aa))  # 1 - a, exact for a near 1
    beta = one_minus / -np.log(aa)
    return np.where(ok, (1.0 - beta) / one_minus, 0.0)


def effective_inputs(uh: np.ndarray, u_next: np.ndarray, u_now: np.ndarray, share: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """``(uh_e (n, m), uf_e (n, horizon))``: the model's input history and future inputs with
    the direct *share* of each block's successor folded in (see the module docstring).

    *uh* (n, m) is the input history, newest first (``uh[:, 0]`` the last complete block);
    *u_next* the running block's average input, *u_now* the input held after it. A NaN successor
    (a gap in the input) leaves the block's own input."""
    share = np.asarray(share, dtype=np.float64)[:, None]
    seq = np.concatenate([u_now[:, None], u_next[:, None], uh], axis=1)  # newest first
    nxt = seq[:, :-1]
    cur = seq[:, 1:]
    eff = np.where(np.isnan(nxt), cur, (1.0 - share) * cur + share * nxt)
    uh_e = eff[:, 1:].copy()  # history: uh[j] mixed with its successor
    uf = np.repeat(u_now[:, None], horizon, axis=1)
    uf[:, 0] = eff[:, 0]  # running block: its average mixed with the input after it
    return np.ascontiguousarray(uh_e), uf
