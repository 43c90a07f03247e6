"""Model matrices ``(F, Q, H)`` for the twin's linear Kalman filters (pure NumPy, small).

Each model tracks the measured value and ``m`` of its time derivatives; the next derivative is
driven by discrete white noise held constant over each step (Bar-Shalom's piecewise-constant white
noise models):

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
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np

STATE_SIZE: Final[Mapping[str, int]] = MappingProxyType(
    {"random_walk": 1, "constant_velocity": 2, "constant_acceleration": 3}
)


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
