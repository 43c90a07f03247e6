"""What the twin of one asset has learnt, as plain data: filters, identified model with its guard,
detector, and the error a saved file that cannot be used raises. ``edge.twin.state`` encodes and
decodes it (the file format); both are pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


class StateFileError(ValueError):
    """A saved state that cannot be used; ``reason`` is ``"format_version"`` or ``"corrupt"``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class FilterState:
    """One signal's Kalman channel."""

    model: str  # random_walk | constant_velocity | constant_acceleration
    x: np.ndarray  # (s,)
    P: np.ndarray  # (s, s)
    score: float
    updates: int  # measurements so far (the warm-up counts them)


@dataclass(frozen=True, eq=False)
class BankState:
    """One candidate structure of an identified model (one RLS channel)."""

    orders: tuple[int, int, int]  # na, nb, nk
    theta: np.ndarray  # (p,)
    P: np.ndarray  # (p, p)
    yh: np.ndarray  # (na,)
    uh: np.ndarray  # (nk + nb - 1,)
    sigma2: float
    updates: int


@dataclass(frozen=True, eq=False)
class GoodBank:
    """The last good parameters of one candidate structure."""

    theta: np.ndarray  # (p,)
    P: np.ndarray  # (p, p)
    sigma2: float


@dataclass(frozen=True, eq=False)
class GoodState:
    """The last good state of an identified model (one entry per candidate)."""

    banks: tuple[GoodBank, ...]


@dataclass(frozen=True, eq=False)
class GuardState:
    """What the model guard has learnt: the identified input range, the interval quantile, the
    one-step miss rate, the automatic resets so far and the last good state (None: none yet)."""

    seen_lo: float  # NaN: no input learnt yet
    seen_hi: float
    quantile: float
    miss: float
    restores: int
    good: GoodState | None = None
    kappa: float = 0.02  # model-error share of a predicted move in the interval
    step_quantile: float = 1.959963984540054  # interval quantile right after an input change


@dataclass(frozen=True, eq=False)
class ModelState:
    """The identified input->output model of one signal."""

    signal: str
    choice: int  # index of the candidate in use
    warm: bool
    banks: tuple[BankState, ...]
    guard: GuardState | None = None  # None: a fresh guard


@dataclass(frozen=True, eq=False)
class AdaptiveState:
    """What an adapting PCA detector has learnt beyond its model (``kernels.detect_adapt``): the
    exponentially weighted mean and covariance of the learned feature rows, how many rows it has
    learned, how many since the last refit, and the variance floor fixed when it was fitted. The
    delay buffer is not saved (its rows are simply not learned)."""

    mean: np.ndarray  # (p,)
    cov: np.ndarray  # (p, p)
    count: int
    since_refit: int
    var_floor: np.ndarray  # (p,)


@dataclass(frozen=True, eq=False)
class DetectorState:
    """A fitted PCA detector: its model and limits, what its scoring carries between ticks, and
    (when it adapts) its learned statistics."""

    mean: np.ndarray
    scale: np.ndarray
    loadings: np.ndarray
    eigvals: np.ndarray
    all_eigvals: np.ndarray
    t2_limit: float
    q_limit: float
    stat: float
    history: int
    alarm: bool
    adaptive: AdaptiveState | None = None  # absent in files from before adaptation: it restarts from the model


@dataclass(frozen=True, eq=False)
class AssetState:
    asset: str
    config_hash: str
    saved_at: datetime  # tz-aware UTC
    filters: Mapping[str, FilterState] = field(default_factory=dict)  # by signal name
    model: ModelState | None = None
    detector: DetectorState | None = None
    # sensor validation (edge.twin.validation): signal -> SignalValidator.export(); None when not validated
    validation: Mapping[str, Any] | None = None

    def age_s(self, now: datetime) -> float:
        """Seconds since it was saved (0 when the clock says the file is from the future)."""
        return max(0.0, (now - self.saved_at).total_seconds())
