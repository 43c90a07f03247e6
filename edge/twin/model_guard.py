"""Guards of the identified models: when they learn, their last good state, their score, their interval.

One ``ModelGuard`` per ``edge.twin.identified.ModelGroup``, arrays over its channels; pure NumPy.

* **Pause.** A model period is learnt only when every tick of it had ``learn`` set (the runner
  clears it while the asset is in alarm; a caller clears it for a signal it does not trust) and
  its input lies within the range the model was identified on (``seen_lo..seen_hi``, widened by
  ``INPUT_MARGIN`` of the input tag's span). A warm model meeting an input it has not seen stops
  learning; after ``ADOPT_PERIODS`` such periods with learning otherwise allowed (asset out of
  alarm, signal trusted) the range grows to include it: a sustained new operating point is
  normal change, and the model learns it. Before the model is warm every input is learnt.
* **Last good state.** After each learnt period of a warm, determined model whose parameters are
  plausible and whose one-step errors are consistent with its interval (miss rate at most
  ``GOOD_MISS``), the parameters, covariance and noise variance of every candidate are copied.
* **Automatic reset.** A warm model that, after learning, has implausible parameters (a pole
  outside (0, 1), a gain or time constant more than ``MAX_CHANGE`` times off the last good one)
  or whose one-step errors miss the last good interval too often (miss rate above ``BAD_MISS``;
  not judged for ``GRACE_PERIODS`` after it adopted a new input range) goes back to its last good
  state: histories are kept, parameters restored.
* **Score.** The anomaly score of an identified signal is the EWMA (factor ``alpha`` per model
  period) of its normalised one-step model error (each term capped at ``NIS_CAP``): a move the
  model explains does not score. On an unseen input the model extrapolates and does not score
  (the signal's Kalman score stands). The one-step prediction includes the input changes inside the
  period (first-order models without dead time; the others get none).
* **Disturbance.** The forecasts add the EWMA (``BIAS_RATE`` per period) of the one-step errors
  to the model's constant: a slow unmeasured disturbance (the plant room's temperature swing)
  moves the steady state away from the identified one, and this carries it forward.
* **Calibrated interval.** The forecast interval is ``quantile x sqrt(var + (kappa x move)^2)``:
  ``var`` the model's prediction variance, ``move`` the forecast's distance from the last period's
  output (an input step's transient, where a model a few % off errs most). Both factors are
  adapted online so that 95 % of the forecasts cover the block average that comes true with the
  input held (adaptive conformal steps in log space, rate ``CALIB_RATE``): ``quantile`` (start
  1.96) on every forecast of the steady regime, ``kappa`` (start ``KAPPA0``) on those of a move;
  not in periods held by an alarm or an untrusted signal. Forecasts made less than a horizon
  after an input change (the step regime of ``edge.twin.forecast_interval``, including those made
  on the tick of the change) have their own quantile ``step_quantile`` (start 1.96), calibrated on
  them alone.
"""

from __future__ import annotations

import math

import numpy as np

from edge.twin.state import GuardState

Z95 = 1.959963984540054
INPUT_MARGIN = 0.05  # of the input tag's span (or of the seen range when the tag has no limits)
ADOPT_PERIODS = 18
GRACE_PERIODS = 60
GOOD_MISS = 0.10
BAD_MISS = 0.35
MISS_RATE = 1.0 / 20.0  # EWMA factor of the one-step miss rate
MAX_CHANGE = 2.0
NIS_CAP = 36.0
CALIB_RATE = 0.1
BIAS_RATE = 0.1
KAPPA0 = 0.02
KAPPA_MIN = 0.005
TARGET_MISS = 0.05


class ModelGuard:
    def __init__(self, n: int, n_banks: int, n_params: int, low: np.ndarray, high: np.ndarray, alpha: np.ndarray) -> None:
        self.n = n
        span = high - low
        self.margin = np.where(np.isfinite(span), INPUT_MARGIN * span, np.nan)
        self.seen_lo = np.full(n, np.nan)
        self.seen_hi = np.full(n, np.nan)
        self.adopt = np.zeros(n, dtype=np.int64)
        self.alpha = alpha
        self.score = np.zeros(n)
        self.miss = np.full(n, TARGET_MISS)
        self.quantile = np.full(n, Z95)
        self.step_quantile = np.full(n, Z95)  # the quantile of forecasts in the step regime
        self.has_good = np.zeros(n, dtype=bool)
        self.good_theta = np.zeros((n_banks, n, n_params))
        self.good_P = np.zeros((n_banks, n, n_params, n_params))
        self.good_sigma2 = np.full((n_banks, n), np.nan)
        self.good_gain = np.full(n, np.nan)
        self.good_tau = np.full(n, np.nan)
        self.restores = np.zeros(n, dtype=np.int64)  # automatic resets to the last good state
        self.paused = np.zeros(n, dtype=bool)  # the last model period was not learnt
        self.held_periods = np.zeros(n, dtype=np.int64)  # model periods not learnt (counter)
        self.kappa = np.full(n, KAPPA0)  # model-error share of a predicted move (calibrated)
        self.bias = np.zeros(n)  # EWMA of the one-step errors: the forecasts carry it forward
        self.grace = np.zeros(n, dtype=np.int64)  # periods left without the consistency check
        self.unseen = np.zeros(n, dtype=bool)  # the last period's input was outside the identified range
        self.sigma_ratio = np.ones(n)  # current sigma2 / last good sigma2 of the chosen bank (set per period)

    def reset(self, i: int) -> None:
        self.seen_lo[i] = self.seen_hi[i] = np.nan
        self.adopt[i] = 0
        self.score[i] = 0.0
        self.miss[i] = TARGET_MISS
        self.quantile[i] = Z95
        self.step_quantile[i] = Z95
        self.has_good[i] = False
        self.good_sigma2[:, i] = np.nan
        self.good_gain[i] = self.good_tau[i] = np.nan
        self.paused[i] = False
        self.unseen[i] = False
        self.grace[i] = 0
        self.bias[i] = 0.0
        self.kappa[i] = KAPPA0

    def load(self, i: int, st: GuardState | None) -> None:
        """Channel *i* from saved state (None: fresh); ValueError when it does not fit."""
        self.reset(i)
        if st is None:
            return
        if st.good is not None and len(st.good.banks) != self.good_theta.shape[0]:
            raise ValueError(f"saved last good state has {len(st.good.banks)} candidates, the model {self.good_theta.shape[0]}")
        if not (math.isfinite(st.quantile) and st.quantile > 0):
            raise ValueError(f"saved interval quantile {st.quantile!r} is not a positive number")
        if st.good is not None:
            p = self.good_theta.shape[2]
            for j, b in enumerate(st.good.banks):
                if b.theta.shape != (p,) or b.P.shape != (p, p) or not (np.all(np.isfinite(b.theta)) and np.all(np.isfinite(b.P))):
                    raise ValueError("saved last good state does not fit the model")
                self.good_theta[j, i], self.good_P[j, i], self.good_sigma2[j, i] = b.theta, b.P, b.sigma2
            self.has_good[i] = True
        self.seen_lo[i], self.seen_hi[i] = st.seen_lo, st.seen_hi
        self.quantile[i] = st.quantile
        self.kappa[i] = st.kappa if math.isfinite(st.kappa) and st.kappa > 0 else KAPPA0
        self.step_quantile[i] = st.step_quantile if math.isfinite(st.step_quantile) and st.step_quantile > 0 else Z95
        self.miss[i] = st.miss if math.isfinite(st.miss) else TARGET_MISS
        self.restores[i] = st.restores

    # -- pause --------------------------------------------------------------------------------
    def outside(self, u: np.ndarray, warm: np.ndarray) -> np.ndarray:
        """Channels whose input *u* (n, m: the inputs of this update) lies outside the identified range."""
        lo, hi = self.seen_lo, self.seen_hi
        margin = np.where(np.isnan(self.margin), INPUT_MARGIN * (hi - lo), self.margin)
        with np.errstate(invalid="ignore"):
            out = np.any((u < (lo - margin)[:, None]) | (u > (hi + margin)[:, None]), axis=1)
        return out & warm & ~np.isnan(lo)

    def widen(self, learnt: np.ndarray, u: np.ndarray) -> None:
        """Learnt periods extend the identified input range by their inputs *u* (n, m)."""
        u_lo = np.min(np.where(np.isnan(u), np.inf, u), axis=1)
        u_hi = np.max(np.where(np.isnan(u), -np.inf, u), axis=1)
        ok = learnt & np.isfinite(u_lo)
        self.seen_lo[ok] = np.fmin(self.seen_lo[ok], u_lo[ok])
        self.seen_hi[ok] = np.fmax(self.seen_hi[ok], u_hi[ok])

    def adopt_step(self, unseen: np.ndarray, others_ok: np.ndarray, u: np.ndarray) -> None:
        """Count periods on an unseen input otherwise allowed to learn; adopt after ADOPT_PERIODS."""
        self.adopt = np.where(unseen, self.adopt + others_ok, 0)  # held periods pause the count
        self.unseen = unseen
        done = self.adopt >= ADOPT_PERIODS
        if done.any():
            self.widen(done, u)
            self.adopt[done] = 0
            self.unseen = unseen & ~done
            self.score[done] = 0.0  # its errors there were extrapolation, not anomalies
            self.grace[done] = GRACE_PERIODS  # and it learns the new range before it is judged there

    # -- score and consistency ----------------------------------------------------------------
    def observe(self, err: np.ndarray, var: np.ndarray, learnt: np.ndarray) -> np.ndarray:
        """One-step error *err* and its variance *var* of this period; returns NIS (NaN: none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            nis = err * err / var
        ok = np.isfinite(nis)
        self.score = np.where(ok, (1 - self.alpha) * self.score + self.alpha * np.minimum(nis, NIS_CAP), self.score)
        # Misses against the last good interval (the current one widens with a model going wrong).
        with np.errstate(invalid="ignore", divide="ignore"):
            nis_good = np.where(self.has_good, nis * np.fmax(self.sigma_ratio, 1.0), nis)
        miss = (nis_good > Z95 * Z95).astype(np.float64)
        upd = ok & learnt
        self.miss = np.where(upd, (1 - MISS_RATE) * self.miss + MISS_RATE * miss, self.miss)
        return nis

    def calibrate(self, z: np.ndarray, use: np.ndarray, moving: np.ndarray, step: np.ndarray | None = None) -> None:
        """Adapt the interval on normalised forecast errors *z* = |error| / std. Steady regime:
        the quantile on all its forecasts, the model-error share ``kappa`` also on those of a move
        (*moving*). Step regime (*step*, default none): ``step_quantile`` alone."""
        ok = use & np.isfinite(z)
        step = np.zeros(len(z), dtype=bool) if step is None else step
        q = self.quantiles(step)
        miss = (z > q).astype(np.float64)
        factor = np.exp(CALIB_RATE * (miss - TARGET_MISS))
        steady = ok & ~step
        self.quantile = np.where(steady, np.clip(self.quantile * factor, 0.5, 10.0), self.quantile)
        self.kappa = np.where(steady & moving, np.clip(self.kappa * factor, KAPPA_MIN, 1.0), self.kappa)
        self.step_quantile = np.where(ok & step, np.clip(self.step_quantile * factor, 0.5, 10.0), self.step_quantile)

    def quantiles(self, step: np.ndarray) -> np.ndarray:
        """The interval quantile of each channel's forecast in the step regime (*step*) or not."""
        return np.where(step, self.step_quantile, self.quantile)

    # -- last good state ----------------------------------------------------------------------
    def plausible(self, a: np.ndarray | None, gain: np.ndarray, tau: np.ndarray) -> np.ndarray:
        ok = np.isfinite(gain)
        if a is not None:
            ok &= (a > 0) & (a < 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rg = np.abs(gain / self.good_gain)
            rt = tau / self.good_tau
        far = (rg > MAX_CHANGE) | (rg < 1 / MAX_CHANGE) | (np.sign(gain) != np.sign(self.good_gain))
        if a is not None:
            far |= (rt > MAX_CHANGE) | (rt < 1 / MAX_CHANGE) | ~np.isfinite(rt)
        return ok & ~(self.has_good & far)

    def went_wrong(self, learnt: np.ndarray, warm: np.ndarray, plausible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(implausible, inconsistent)`` masks of warm channels that learnt this period and have a good state."""
        base = learnt & warm & self.has_good
        self.grace = np.maximum(self.grace - learnt, 0)
        return base & ~plausible, base & plausible & (self.miss > BAD_MISS) & (self.grace == 0)

    def take_good(self, mask: np.ndarray, banks: list, gain: np.ndarray, tau: np.ndarray) -> None:
        mask = mask & (self.miss <= GOOD_MISS)
        if not mask.any():
            return
        for j, b in enumerate(banks):
            self.good_theta[j, mask] = b.theta[mask]
            self.good_P[j, mask] = b.P[mask]
            self.good_sigma2[j, mask] = b.sigma2[mask]
        self.good_gain[mask] = gain[mask]
        self.good_tau[mask] = tau[mask]
        self.has_good |= mask

    def restore(self, i: int, banks: list) -> None:
        for j, b in enumerate(banks):
            b.theta[i] = self.good_theta[j, i]
            b.P[i] = self.good_P[j, i]
            b.sigma2[i] = self.good_sigma2[j, i]
        self.miss[i] = TARGET_MISS
        self.restores[i] += 1


def intra_period_weight(tick_in_period: int, period_ticks: int, tick_s: float, tau: np.ndarray) -> np.ndarray:
    """Weight of an input change held over tick *tick_in_period* in the period's average output of a
    first-order lag (time constant *tau*): ``dt * (1 - exp(-(T - t_mid) / tau)) / T``."""
    T = period_ticks * tick_s
    t_left = T - (tick_in_period + 0.5) * tick_s
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        w = tick_s * (1.0 - np.exp(-t_left / tau)) / T
    return np.where(np.isfinite(w), w, 0.0)


def period_alpha(score_alpha: float, period_ticks: int) -> float:
    """Per-period EWMA factor matching *score_alpha* per tick, at most 0.3 (one period's error is noisy)."""
    return min(0.3, 1.0 - math.pow(1.0 - score_alpha, period_ticks))


def step_resumed(banks: list, resumed: np.ndarray, y_avg: np.ndarray, u_avg: np.ndarray) -> np.ndarray:
    """A model period with restored channels (*resumed*): their histories end when the gateway
    stopped, so a regression on them would span the downtime. They skip this update and their
    histories restart from this period's averages (steady state assumed further back: exact for a
    first order model without dead time); until such a period comes, they keep the saved
    histories. Returns the channels whose histories restarted."""
    saved = [(b.yh.copy(), b.uh.copy()) for b in banks]
    y_step = np.where(resumed, np.nan, y_avg)
    for b in banks:
        b.step(y_step, u_avg)
    fill = resumed & np.isfinite(y_avg) & np.isfinite(u_avg)
    for b, (yh0, uh0) in zip(banks, saved):
        b.yh[resumed] = yh0[resumed]
        b.uh[resumed] = uh0[resumed]
        b.yh[fill] = y_avg[fill, None]
        b.uh[fill] = u_avg[fill, None]
    return fill
