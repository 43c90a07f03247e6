"""The redundancy model of the ``contradiction`` test: a reading against one related reading."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .params import CLIP_SIGMA, RELATED_LAMBDA, RELATED_P0, RELATED_VAR_ALPHA, SUPPORT_BINS, SUPPORT_CAP, SUPPORT_MIN


@dataclass(slots=True)
class RelatedModel:
    """``y ~ theta . [1, x, x^2]`` by recursive least squares with forgetting (plain floats: 3x3
    in Python is faster than NumPy's per-call overhead). Learns the range of x it has seen."""

    p0: float = RELATED_P0  # prior covariance (in units of the residual variance)
    theta: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    P: list[list[float]] = field(default_factory=list)
    var: float = math.nan  # residual variance learnt (NaN: none yet)
    updates: int = 0
    support: list[int] = field(default_factory=lambda: [0] * SUPPORT_BINS)  # readings learnt per bin of x (0..1)
    smooth: float = 0.0  # EWMA of the normalised residual

    def __post_init__(self) -> None:
        if not self.P:
            self.P = [[self.p0 if i == j else 0.0 for j in range(3)] for i in range(3)]

    def residual(self, y: float, x: float) -> tuple[float, float]:
        """``(residual, its prediction variance)`` of reading *y* against related reading *x*."""
        phi = (1.0, x, x * x)
        th, P = self.theta, self.P
        e = y - (th[0] + th[1] * x + th[2] * phi[2])
        q = sum(phi[i] * P[i][j] * phi[j] for i in range(3) for j in range(3))
        return e, self.var * (1.0 + q)

    @staticmethod
    def bin_of(x: float) -> int:
        return -1 if not 0.0 <= x <= 1.0 else min(int(x * SUPPORT_BINS), SUPPORT_BINS - 1)

    def seen(self, x: float) -> bool:
        """Whether the model learnt from at least ``SUPPORT_MIN`` readings in *x*'s bin (a
        hundredth of the related tag's range): elsewhere it extrapolates and gives no verdict."""
        b = self.bin_of(x)
        return b >= 0 and self.support[b] >= SUPPORT_MIN

    def learn(self, y: float, x: float) -> None:
        phi = (1.0, x, x * x)
        th, P = self.theta, self.P
        e = y - (th[0] + th[1] * x + th[2] * phi[2])
        g = [P[i][0] + P[i][1] * x + P[i][2] * phi[2] for i in range(3)]
        s = RELATED_LAMBDA + g[0] + g[1] * x + g[2] * phi[2]
        k = [gi / s for gi in g]
        self.theta = [th[i] + k[i] * e for i in range(3)]
        Pn = [[P[i][j] - k[i] * g[j] for j in range(3)] for i in range(3)]
        lam = RELATED_LAMBDA if Pn[0][0] + Pn[1][1] + Pn[2][2] < 3 * self.p0 else 1.0  # anti-windup, as kernels.ident
        self.P = [[(Pn[i][j] + Pn[j][i]) / (2.0 * lam) for j in range(3)] for i in range(3)]
        e2 = e * e if math.isnan(self.var) else min(e * e, CLIP_SIGMA**2 * self.var)
        self.var = e2 if math.isnan(self.var) else (1 - RELATED_VAR_ALPHA) * self.var + RELATED_VAR_ALPHA * e2
        self.updates += 1
        b = self.bin_of(x)
        if b >= 0 and self.support[b] < SUPPORT_CAP:
            self.support[b] += 1
