"""Identified input->output models of the twin: online RLS identification, forecast, what-if.

A signal with an ``input`` tag gets an ARX model (first order plus dead time by default) from that
input to the signal, identified online by ``kernels.ident.RlsBank``. Channels of all assets of a
runner that share a model structure and sample period are stacked into one bank: one kernel call
per model period for all of them. With ``max_dead_time_s`` there is one bank per candidate dead
time, and each channel uses the candidate with the smallest residual variance.

Sampling: the model runs at ``model_period_s`` (a whole number ``m`` of ticks). Each tick adds the
fresh output measurement and the current input value to per-channel sums; every ``m`` ticks the
block averages are one model sample. Averaging keeps sensor noise out of the regressor: a slow
process (the tank's 300 s time constant) sampled at the tick rate would move far less per sample
than its noise, and least squares would then misplace the pole (errors in variables).

Published per identified signal (keys ``<asset>.<signal>.model_*``, nodes
``Assets/<asset>/<signal>/Model/<Leaf>``), refreshed once per model period: Gain, GainStd,
TimeConstant and DeadTime (first-order models), ResidualStd, Forecast with ForecastLow/High (the
95 % prediction interval, ``forecast_horizon_s`` ahead with the input held).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import structlog

from drivers.sample import Status, TagSample
from edge.core.names import model_output_key, model_outputs
from edge.core.registry import TagRegistry
from edge.twin.forecast_interval import ForecastRing
from edge.twin.forecast_terms import direct_share, effective_inputs
from edge.twin.io import gather, held_values, sample, severity
from edge.twin.model_guard import BIAS_RATE, ModelGuard, intra_period_weight, period_alpha, step_resumed
from edge.twin.state import BankState, GoodBank, GoodState, GuardState, ModelState
from kernels.ident import ArxOrders, RlsBank, RlsChannelState, arx_simulate, interval_half_width, model_params

log = structlog.get_logger("edge.twin.identified")

Z95 = float(interval_half_width(1.0, 0.95))  # 1.959964
MAX_SIM_STEPS = 100_000
BAD_WAITING = int(Status.BadWaitingForInitialData)
BAD_OUT_OF_RANGE = int(Status.BadOutOfRange)
GOOD = int(Status.Good)
UNCERTAIN = int(Status.UncertainSubNormal)
EXCITATION = 100.0


@dataclass(slots=True)
class ModelChannel:
    asset: str
    signal: str
    tag: str
    input_tag: str
    low: float  # input limits (the input tag's low/high; +-inf when not configured)
    high: float
    horizon: int  # model steps of the Forecast outputs (>= 1)
    warmup: int
    max_gain_rel_std: float
    first_order: bool
    score_alpha: float = 0.05  # the asset's, per tick (edge.twin.model_guard.period_alpha)
    keys: tuple[str, ...] = ()
    warm: bool = False


class ModelGroup:
    """Identified channels sharing a model structure and a sample period: one RLS bank per
    candidate structure (one, or one per candidate dead time when the dead time is identified).

    ``tick(registry, now, learn)``: *learn* (bool per channel, default all True) says whether this
    tick may teach the model; a model period is learnt only if all its ticks may (see
    ``edge.twin.model_guard`` for the pause, the last good state and the automatic reset)."""

    def __init__(
        self, candidates: list[ArxOrders], period_ticks: int, period_s: float, channels: list[ModelChannel], lam: np.ndarray, p_max: np.ndarray
    ) -> None:
        n = len(channels)
        self.candidates = candidates
        self.period_ticks = period_ticks
        self.period_s = period_s
        self.channels = channels
        n_params = candidates[0].n_params  # the same for every candidate (they differ in nk only)
        p0 = float(np.min(p_max)) / (10 * n_params) if n else 1.0
        self.banks = [RlsBank(o, n, lam=lam, p_max=p_max, p0=p0) for o in candidates]
        self.choice = np.zeros(n, dtype=np.intp)  # index of the candidate each channel uses
        # Excited: every parameter direction has gained at least EXCITATION times the prior's
        # information, i.e. trace(P) <= p * p0 / EXCITATION. A constant input leaves one direction
        # at the prior, whatever the gain's apparent spread says.
        self.excited_trace = n_params * p0 / EXCITATION
        self.sum_y = np.zeros(n)
        self.n_y = np.zeros(n)
        self.sum_u = np.zeros(n)
        self.n_u = np.zeros(n)
        self.ticks = 0
        self.tags = [c.tag for c in channels]
        self.input_tags = [c.input_tag for c in channels]
        self.last_source: list[datetime | None] = [None] * n
        self.warm = np.zeros(n, dtype=bool)
        self.warmup = np.array([c.warmup for c in channels], dtype=np.int64)
        self.max_rel = np.array([c.max_gain_rel_std for c in channels])
        self.orders_first = bool(channels) and channels[0].first_order  # the runner groups fopdt and arx apart
        self.horizons = np.array([c.horizon for c in channels], dtype=np.intp)
        self.max_horizon = int(self.horizons.max()) if n else 1
        for c in channels:
            c.keys = tuple(model_output_key(c.asset, c.signal, k) for k in model_outputs(c.first_order))
        self.resumed = np.zeros(n, dtype=bool)  # restored: histories end before the gateway stopped
        self._refresh = False  # publish the outputs at the next tick (restored models)
        alpha = np.array([period_alpha(c.score_alpha, period_ticks) for c in channels])
        self.guard = ModelGuard(n, len(candidates), n_params, np.array([c.low for c in channels]), np.array([c.high for c in channels]), alpha)
        self._hold = np.zeros(n, dtype=bool)  # a tick of this period said not to learn
        self._v_w = np.zeros(n)  # input changes inside the period, weighted (model_guard.intra_period_weight)
        self._gain = np.full(n, np.nan)  # chosen model's gain and time constant at the last period
        self._tau = np.full(n, np.nan)
        self._u_fc = np.full(n, np.nan)  # input of the last published forecast
        self._status = np.full(n, UNCERTAIN, dtype=np.int64)
        self.ring = ForecastRing(n, self.horizons, period_ticks)  # forecasts waiting for their block (interval calibration)
        self._moving = np.zeros(n, dtype=bool)
        self.block = 0

    @property
    def score(self) -> np.ndarray:
        """Anomaly score of each channel from its model's one-step errors (NaN until warm)."""
        return np.where(self.warm & ~self.guard.unseen, self.guard.score, np.nan)

    def bank_of(self, i: int) -> RlsBank:
        """The bank whose model channel *i* uses now."""
        return self.banks[self.choice[i]]

    def reset(self, i: int) -> None:
        for b in self.banks:
            b.reset(i)
        self.resumed[i] = False
        self.choice[i] = 0
        self.sum_y[i] = self.n_y[i] = self.sum_u[i] = self.n_u[i] = 0.0
        self.warm[i] = False
        self.channels[i].warm = False
        self.guard.reset(i)
        self._v_w[i] = 0.0
        self._gain[i] = self._tau[i] = np.nan
        self.ring.reset(i)

    def tick(self, registry: TagRegistry, now: datetime, learn: np.ndarray | None = None) -> list[TagSample]:
        """Accumulate this tick's samples; on a model period, update and return the outputs. Between
        periods, a changed input republishes the forecast at once."""
        y = gather(registry, self.tags, self.last_source)
        u, u_status = held_values(registry, self.input_tags)
        self.sum_y += np.where(y.fresh, y.value, 0.0)
        self.n_y += y.fresh
        u_ok = ~np.isnan(u)
        self.sum_u += np.where(u_ok, u, 0.0)
        self.n_u += u_ok
        if learn is not None:
            self._hold |= ~learn
        self.ring.note_input(u, self.ticks + 1)
        j = self.ticks % self.period_ticks
        w = intra_period_weight(j, self.period_ticks, self.period_s / self.period_ticks, self._tau)
        self._v_w += np.where(u_ok, (u - self.banks[0].uh[:, 0]) * w, 0.0) if self.banks[0].uh.shape[1] else 0.0
        self.ticks += 1
        inputs_good = (severity(y.status) == 0) & (severity(u_status) == 0)
        if self.ticks % self.period_ticks:
            if self._refresh:  # a restored model is published at once, not a model period later
                self._refresh = False
                return self._outputs(inputs_good, now, u)
            moved = u_ok & (u != self._u_fc) & self.warm
            return self._forecast_outputs(moved, now, u) if moved.any() else []
        with np.errstate(invalid="ignore", divide="ignore"):
            y_avg = np.where(self.n_y > 0, self.sum_y / self.n_y, np.nan)
            u_avg = np.where(self.n_u > 0, self.sum_u / self.n_u, np.nan)
        self.sum_y[:] = self.n_y[:] = self.sum_u[:] = self.n_u[:] = 0.0
        self._period(y_avg, u_avg)
        if len(self.banks) > 1:
            # Dead time: the candidate with the smallest residual variance (EWMA over the forgetting
            # window); ties and all-NaN keep the shortest.
            s2 = np.stack([b.sigma2 for b in self.banks])
            self.choice = np.argmin(np.where(np.isnan(s2), np.inf, s2), axis=0)
        return self._outputs(inputs_good, now, u, period=True)

    def _period(self, y_avg: np.ndarray, u_avg: np.ndarray) -> None:
        """One model period: the guarded RLS update, the score, the interval calibration."""
        n = len(self.channels)
        idx = np.arange(n)
        g = self.guard
        hold, self._hold = self._hold, np.zeros(n, dtype=bool)
        # A-priori prediction of this period by the chosen model, with the input changes inside it.
        pred = [b.simulate(u_avg[:, None]) for b in self.banks]
        mean = np.stack([p[0][:, 0] for p in pred])[self.choice, idx]
        var = np.stack([p[1][:, 0] for p in pred])[self.choice, idx]
        nk = np.array([o.nk for o in self.candidates])[self.choice]
        corr = np.where((nk == 1) & self.orders_first & np.isfinite(self._gain), self._gain * self._v_w, 0.0)
        self._v_w[:] = 0.0
        u_in = np.stack([u_avg, self.banks[0].uh[:, 0]], axis=1) if self.banks[0].uh.shape[1] else u_avg[:, None]
        unseen = g.outside(u_in, self.warm)
        learn = ~hold & ~unseen
        keep = ~learn
        saved = [(b.theta[keep].copy(), b.P[keep].copy(), b.sigma2[keep].copy(), b.updates[keep].copy()) for b in self.banks]
        if self.resumed.any():
            self.resumed &= ~step_resumed(self.banks, self.resumed.copy(), y_avg, u_avg)
        else:
            for b in self.banks:
                b.step(y_avg, u_avg)
        for b, (th, P, s2, up) in zip(self.banks, saved):
            b.theta[keep], b.P[keep], b.sigma2[keep], b.updates[keep] = th, P, s2, up
        err = y_avg - (mean + corr)
        learnt = learn & np.isfinite(err)
        with np.errstate(invalid="ignore", divide="ignore"):
            g.sigma_ratio = np.stack([b.sigma2 for b in self.banks])[self.choice, idx] / g.good_sigma2[self.choice, idx]
        g.observe(err, var, learnt)
        g.bias = np.where(np.isfinite(err), (1 - BIAS_RATE) * g.bias + BIAS_RATE * err, g.bias)
        g.adopt_step(unseen, ~hold, u_in)
        g.widen(learnt, u_in)
        g.paused = keep
        g.held_periods += keep
        # Forecasts made for this block with the input held since: calibrate the interval on them
        # (not in periods held by an alarm or an untrusted signal).
        z, scored, moving, step = self.ring.due(self.block, y_avg)
        g.calibrate(z, scored & ~hold & self.warm, moving, step)
        self.block += 1
        self._learnt = learnt

    def _guard_params(self, cols: np.ndarray, rel: np.ndarray) -> bool:
        """After a learnt period: reset models gone wrong to their last good state, keep the good ones.
        True when a channel was reset."""
        idx = np.arange(len(self.channels))
        gain, tau = cols[:, 0], (cols[:, 2] if self.orders_first else np.full(len(idx), np.nan))
        a = np.stack([b.theta[:, 0] for b in self.banks])[self.choice, idx] if self.orders_first else None
        g = self.guard
        plausible = g.plausible(a, gain, tau)
        learnt = self._learnt
        implausible, inconsistent = g.went_wrong(learnt, self.warm, plausible)
        bad = implausible | inconsistent
        for i in np.flatnonzero(bad).tolist():
            g.restore(i, self.banks)
            c = self.channels[i]
            reason = "implausible_parameters" if implausible[i] else "inconsistent_errors"
            log.warning("twin_model_restored", asset=c.asset, signal=c.signal, reason=reason, gain=round(float(gain[i]), 4), restores=int(g.restores[i]))
        determined = (rel <= self.max_rel) & np.isfinite(gain)
        g.take_good(learnt & self.warm & determined & plausible & ~bad, self.banks, gain, tau)
        self._gain, self._tau = np.where(np.isfinite(gain), gain, self._gain), np.where(np.isfinite(tau), tau, self._tau)
        return bool(bad.any())

    # -- saved state (edge.twin.persist) -------------------------------------------------------
    def export_channel(self, i: int) -> ModelState:
        banks = []
        for b, o in zip(self.banks, self.candidates):
            st = b.channel_state(i)
            banks.append(BankState((o.na, o.nb, o.nk), st.theta, st.P, st.yh, st.uh, st.sigma2, st.updates))
        g = self.guard
        good = None
        if g.has_good[i]:
            good = GoodState(tuple(GoodBank(g.good_theta[j, i].copy(), g.good_P[j, i].copy(), float(g.good_sigma2[j, i])) for j in range(len(self.banks))))
        kappa, step_q = float(g.kappa[i]), float(g.step_quantile[i])
        guard = GuardState(float(g.seen_lo[i]), float(g.seen_hi[i]), float(g.quantile[i]), float(g.miss[i]), int(g.restores[i]), good, kappa, step_q)
        return ModelState(self.channels[i].signal, int(self.choice[i]), bool(self.warm[i]), tuple(banks), guard)

    def import_channel(self, i: int, st: ModelState) -> None:
        """Load channel *i*; ValueError (channel partly loaded: reset it) when *st* does not fit."""
        c = self.channels[i]
        want = [(o.na, o.nb, o.nk) for o in self.candidates]
        if st.signal != c.signal or [b.orders for b in st.banks] != want:
            raise ValueError(f"saved model is {st.signal!r} with orders {[b.orders for b in st.banks]}, the config says {c.signal!r} with {want}")
        if not 0 <= st.choice < len(self.banks):
            raise ValueError(f"saved candidate {st.choice} out of range")
        for b, bs in zip(self.banks, st.banks):
            b.set_channel_state(i, RlsChannelState(bs.theta, bs.P, bs.yh, bs.uh, bs.sigma2, bs.updates))
        self.choice[i] = st.choice
        self.guard.load(i, st.guard)
        self.warm[i] = c.warm = st.warm
        self.sum_y[i] = self.n_y[i] = self.sum_u[i] = self.n_u[i] = 0.0
        self.resumed[i] = True
        self._refresh = True

    def _candidate_outputs(self, b: RlsBank, orders: ArxOrders, u_next: np.ndarray, u_now: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(columns (n, 8), gain relative std (n,), updated (n,))`` of one candidate bank."""
        n = len(self.channels)
        mp = model_params(b.theta, b.P, b.sigma2, orders, self.period_s)
        f_mean, f_sd = self._forecast(b, u_next, u_now)
        half = self.guard.quantiles(self.ring.in_step(self.ticks)) * f_sd
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(mp.gain_std / mp.gain)
        rel[np.trace(b.P, axis1=1, axis2=2) > self.excited_trace] = np.inf
        rel[~(np.isfinite(f_mean) & np.isfinite(half))] = np.inf
        cols = np.stack([mp.gain, mp.gain_std, mp.time_constant_s, np.full(n, mp.dead_time_s), np.sqrt(b.sigma2), f_mean, f_mean - half, f_mean + half], axis=1)
        return cols, rel, ~np.isnan(b.err)

    def _forecast(self, b: RlsBank, u_next: np.ndarray, u_now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std at each channel's horizon: the running period with *u_next* (its average
        input if the input stays), then *u_now* held."""
        share = direct_share(b.theta[:, 0]) if self.orders_first else np.zeros(len(self.channels))
        uh, uf = effective_inputs(b.uh, u_next, u_now, share, self.max_horizon)  # a block's input acts within it
        theta = b.theta.copy()
        theta[:, -1] += self.guard.bias  # the recent one-step error persists (an unmeasured disturbance)
        mean, var = arx_simulate(theta, b.P, b.yh, uh, uf, b.sigma2)
        idx = np.arange(len(self.channels))
        m, v = mean[idx, self.horizons - 1], var[idx, self.horizons - 1]
        move = np.abs(m - b.yh[:, 0]) if b.yh.shape[1] else np.zeros(len(idx))
        self._moving = move > 2 * np.sqrt(v)
        return m, np.sqrt(v + (self.guard.kappa * np.where(np.isfinite(move), move, 0.0)) ** 2)

    def _moving_of(self, b: RlsBank, u_next: np.ndarray, u_now: np.ndarray) -> np.ndarray:
        self._forecast(b, u_next, u_now)
        return self._moving

    def _inputs_now(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(u_next, u_now)``: the running period's projected average input and the input now
        (the last period's average where the input is missing)."""
        last = self.banks[0].uh[:, 0] if self.banks[0].uh.shape[1] else np.zeros(len(self.channels))
        u_now = np.where(np.isnan(u), last, u)
        left = self.period_ticks - self.ticks % self.period_ticks
        if left == self.period_ticks:
            return u_now, u_now
        with np.errstate(invalid="ignore", divide="ignore"):
            u_next = (self.sum_u + u_now * left) / (self.n_u + left)
        return u_next, u_now

    def _forecast_outputs(self, moved: np.ndarray, now: datetime, u: np.ndarray) -> list[TagSample]:
        """Forecast, ForecastLow and ForecastHigh of the channels whose input *moved*, at once."""
        u_next, u_now = self._inputs_now(u)
        idx = np.arange(len(self.channels))
        parts = [(*self._forecast(b, u_next, u_now), self._moving) for b in self.banks]
        mean, sd, moving = (np.stack([p[k] for p in parts])[self.choice, idx] for k in range(3))
        half = self.guard.quantiles(self.ring.in_step(self.ticks)) * sd
        self.ring.record(moved, self.block, self.ticks, mean, sd, moving)  # checked against its block when it comes
        self._u_fc = np.where(moved, u, self._u_fc)
        out: list[TagSample] = []
        for i in np.flatnonzero(moved).tolist():
            row = (mean[i], mean[i] - half[i], mean[i] + half[i])
            st = int(self._status[i])
            out += [
                sample(k, float(v), st, now, now) if math.isfinite(v) else sample(k, None, BAD_OUT_OF_RANGE, now, now)
                for k, v in zip(self.channels[i].keys[-3:], row)
            ]
        return out

    def _outputs(self, inputs_good: np.ndarray, now: datetime, u: np.ndarray, *, period: bool = False) -> list[TagSample]:
        idx = np.arange(len(self.channels))
        u_next, u_now = self._inputs_now(u)
        self._u_fc = u.copy()

        def columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            parts = [self._candidate_outputs(b, o, u_next, u_now) for b, o in zip(self.banks, self.candidates)]
            return tuple(np.stack([p[k] for p in parts])[self.choice, idx] for k in range(3))  # type: ignore[return-value]

        cols, rel, updated = columns()
        if period and self._guard_params(cols, rel):
            cols, rel, updated = columns()
        if period:  # this forecast is checked against its block when it comes (interval calibration)
            sd = (cols[:, 7] - cols[:, 5]) / self.guard.quantiles(self.ring.in_step(self.ticks))
            moving = np.stack([self._moving_of(b, u_next, u_now) for b in self.banks])[self.choice, idx]
            self.ring.record(np.ones(len(idx), dtype=bool), self.block, self.ticks, cols[:, 5], sd, moving)
        updates = np.stack([b.updates for b in self.banks])[self.choice, idx]
        if not self.orders_first:
            cols = cols[:, [0, 1, 4, 5, 6, 7]]
        determined = (rel <= self.max_rel) & np.isfinite(cols[:, 0])
        self.warm |= (updates >= self.warmup) & determined
        good = determined & updated & inputs_good
        status = np.where(good, GOOD, UNCERTAIN)
        self._status = status
        finite = np.isfinite(cols)
        out: list[TagSample] = []
        for c, warm, st, row, ok in zip(self.channels, self.warm.tolist(), status.tolist(), cols.tolist(), finite.tolist()):
            c.warm = warm
            if not warm:
                out += [sample(k, None, BAD_WAITING, now, now) for k in c.keys]
                continue
            # a NaN output (no time constant for a pole outside (0, 1)) is BadOutOfRange
            out += [sample(k, v, st, now, now) if f else sample(k, None, BAD_OUT_OF_RANGE, now, now) for k, v, f in zip(c.keys, row, ok)]
        return out

    # -- what-if ----------------------------------------------------------------------------
    def simulate(self, i: int, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of y over ``len(inputs)`` model periods for channel *i*."""
        b = self.bank_of(i)
        s = slice(i, i + 1)
        mean, var = arx_simulate(b.theta[s], b.P[s], b.yh[s], b.uh[s], inputs[None, :], b.sigma2[s])
        scale = (self.guard.quantile[i] / Z95) ** 2  # the calibrated interval (the runner takes Z95 sigma)
        return mean[0], var[0] * scale
