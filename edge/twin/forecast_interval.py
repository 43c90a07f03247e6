"""Calibration of the identified models' forecast intervals, per regime: pure NumPy, no I/O.

A published forecast (``Model/Forecast`` with ``ForecastLow/High``) is ``mean ± q sd``; ``sd``
is the model's prediction std widened by the model-error share of the predicted move
(``edge.twin.model_guard``), ``q`` a quantile calibrated online on the forecasts that come true.
Forecasts fall in two regimes with errors of different kinds, each with its own quantile:

* **steady**: the input has not changed for a whole horizon. The error is the equation noise and
  the slow unmeasured disturbances.
* **step**: the input changed less than a horizon ago (``forecast_horizon_s``), the forecast
  included. The error is mostly the model's gain and time-constant error times the input move,
  which one blanket quantile fitted on the steady forecasts (four in five) does not cover: right
  after a setpoint step the demo tank's coverage was 82 % while the steady one was 96 %.

``ForecastRing`` keeps every forecast (made at a period boundary, or on the tick the input
changed) until the block average it predicts has come in, with its regime, and returns the
normalised errors of those made with the input as it has been since (a forecast overtaken by a
later input change predicted another input, and is not scored).
"""

from __future__ import annotations

import numpy as np

NEVER = -(2**62)  # tick of an input change that never happened


class ForecastRing:
    """Forecasts of *n* channels waiting for their block; ``horizons`` (n,) in model periods."""

    def __init__(self, n: int, horizons: np.ndarray, period_ticks: int) -> None:
        self.horizons = np.asarray(horizons, dtype=np.intp)
        self.window = self.horizons.astype(np.int64) * period_ticks  # step regime: ticks after an input change
        size = int(self.horizons.max()) + 1 if n else 1
        self.mean = np.full((size, n), np.nan)
        self.sd = np.full((size, n), np.nan)
        self.moving = np.zeros((size, n), dtype=bool)
        self.step = np.zeros((size, n), dtype=bool)
        self.target = np.full((size, n), -1, dtype=np.int64)  # block each slot predicts (-1: empty)
        self.made = np.zeros((size, n), dtype=np.int64)  # tick it was made at
        self.u_last = np.full(n, np.nan)
        self.changed = np.full(n, NEVER, dtype=np.int64)  # tick of the last input change

    def reset(self, i: int) -> None:
        self.target[:, i] = -1
        self.changed[i] = NEVER
        self.u_last[i] = np.nan

    def note_input(self, u: np.ndarray, tick: int) -> None:
        """The input of tick *tick* (NaN: missing); a value other than the last one is a change."""
        self.changed[~np.isnan(u) & (u != self.u_last)] = tick
        self.u_last = u.copy()

    def in_step(self, tick: int) -> np.ndarray:
        """Channels whose forecast made at *tick* is in the step regime."""
        return tick - self.changed < self.window

    def record(self, mask: np.ndarray, block: int, tick: int, mean: np.ndarray, sd: np.ndarray, moving: np.ndarray) -> None:
        """Keep the forecasts of the *mask* channels, made at *tick* in the running block *block*:
        the average of block ``block + horizon - 1`` (a later forecast for the same block replaces it)."""
        idx = np.flatnonzero(mask)
        target = block + self.horizons[idx] - 1
        slot = target % self.target.shape[0]
        self.mean[slot, idx] = mean[idx]
        self.sd[slot, idx] = sd[idx]
        self.moving[slot, idx] = moving[idx]
        self.step[slot, idx] = self.in_step(tick)[idx]
        self.target[slot, idx] = target
        self.made[slot, idx] = tick

    def due(self, block: int, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Block *block* has come in with averages *y* (n,): ``(z, scored, moving, step)``, each
        (n,), of the forecasts made for it (``z = |y - mean| / sd``; ``scored``: there is one, made
        with the input as it has been since). The slots are freed."""
        here = self.target == block
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(y[None, :] - self.mean) / self.sd
        scored = here & (self.made >= self.changed[None, :])
        self.target[here] = -1
        r = np.argmax(here, axis=0)  # at most one slot per channel predicts a given block
        cols = np.arange(here.shape[1])
        return z[r, cols], scored[r, cols], self.moving[r, cols], self.step[r, cols]
