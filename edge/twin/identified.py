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

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from drivers.sample import Status, TagSample
from edge.config import AssetConfig, SignalConfig
from edge.core.names import model_output_key, model_output_path, model_outputs
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.io import gather, held_values, sample, severity
from edge.twin.state import BankState, ModelState
from kernels.ident import ArxOrders, RlsBank, RlsChannelState, arx_simulate, interval_half_width, model_params

Z95 = float(interval_half_width(1.0, 0.95))  # 1.959964
MAX_SIM_STEPS = 100_000
BAD_WAITING = int(Status.BadWaitingForInitialData)
BAD_OUT_OF_RANGE = int(Status.BadOutOfRange)
GOOD = int(Status.Good)
UNCERTAIN = int(Status.UncertainSubNormal)
EXCITATION = 100.0


def candidates_of(sig: SignalConfig, period_s: float) -> list[ArxOrders]:
    """The model structures to identify: one, or one per candidate dead time (``max_dead_time_s``)."""
    if sig.input_model != "fopdt":
        return [ArxOrders(*sig.arx_orders)]
    first = round(sig.dead_time_s / period_s)
    last = first if sig.max_dead_time_s is None else round(sig.max_dead_time_s / period_s)
    return [ArxOrders.fopdt(d) for d in range(first, last + 1)]


def period_of(sig: SignalConfig, asset: AssetConfig) -> float:
    return sig.model_period_s if sig.model_period_s is not None else asset.tick_s


def model_infos(asset: AssetConfig, sig: SignalConfig, registry: TagRegistry) -> list[TagInfo]:
    """Registry entries of one identified signal (declared before the OPC UA tree is built)."""
    out_info, in_info = registry.info(sig.tag), registry.info(sig.input)  # type: ignore[arg-type]
    y_unit = sig.units or out_info.units
    gain_unit = f"{y_unit}/{in_info.units}" if y_unit and in_info.units else None
    first_order = sig.input_model == "fopdt"
    h = sig.forecast_horizon_s
    meta = {
        "model_gain": (gain_unit, f"identified steady-state gain from {sig.input}"),
        "model_gain_std": (gain_unit, "standard deviation of the identified gain"),
        "model_time_constant": ("s", "identified time constant"),
        "model_dead_time": ("s", "dead time of the model (identified with max_dead_time_s)"),
        "model_residual_std": (y_unit, "standard deviation of the one-step model residual"),
        "model_forecast": (y_unit, f"model forecast {h:g} s ahead, input held"),
        "model_forecast_low": (y_unit, f"lower bound of the 95 % prediction interval {h:g} s ahead"),
        "model_forecast_high": (y_unit, f"upper bound of the 95 % prediction interval {h:g} s ahead"),
    }
    infos = []
    for output in model_outputs(first_order):
        unit, text = meta[output]
        infos.append(
            TagInfo(model_output_key(asset.name, sig.name, output), model_output_path(asset.name, sig.name, output), "float64", unit, description=text)
        )
    return infos


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
    keys: tuple[str, ...] = ()
    warm: bool = False


class ModelGroup:
    """Identified channels sharing a model structure and a sample period: one RLS bank per
    candidate structure (one, or one per candidate dead time when the dead time is identified)."""

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

    def tick(self, registry: TagRegistry, now: datetime) -> list[TagSample]:
        """Accumulate this tick's samples; on a model period, update and return the outputs."""
        y = gather(registry, self.tags, self.last_source)
        u, u_status = held_values(registry, self.input_tags)
        self.sum_y += np.where(y.fresh, y.value, 0.0)
        self.n_y += y.fresh
        u_ok = ~np.isnan(u)
        self.sum_u += np.where(u_ok, u, 0.0)
        self.n_u += u_ok
        self.ticks += 1
        if self.ticks % self.period_ticks:
            if self._refresh:  # a restored model is published at once, not a model period later
                self._refresh = False
                return self._outputs((severity(y.status) == 0) & (severity(u_status) == 0), now)
            return []
        with np.errstate(invalid="ignore", divide="ignore"):
            y_avg = np.where(self.n_y > 0, self.sum_y / self.n_y, np.nan)
            u_avg = np.where(self.n_u > 0, self.sum_u / self.n_u, np.nan)
        self.sum_y[:] = self.n_y[:] = self.sum_u[:] = self.n_u[:] = 0.0
        resumed = self.resumed.copy()
        if resumed.any():
            self._step_resumed(resumed, y_avg, u_avg)
        else:
            for b in self.banks:
                b.step(y_avg, u_avg)
        if len(self.banks) > 1:
            # Dead time: the candidate with the smallest residual variance (EWMA over the forgetting
            # window); ties and all-NaN keep the shortest.
            s2 = np.stack([b.sigma2 for b in self.banks])
            self.choice = np.argmin(np.where(np.isnan(s2), np.inf, s2), axis=0)
        inputs_good = (severity(y.status) == 0) & (severity(u_status) == 0)
        return self._outputs(inputs_good, now)

    def _step_resumed(self, resumed: np.ndarray, y_avg: np.ndarray, u_avg: np.ndarray) -> None:
        """A model period with restored channels: their histories end when the gateway stopped,
        so a regression on them would span the downtime. They skip this update and their histories
        restart from this period's averages (steady state assumed further back: exact for a first
        order model without dead time); until such a period comes, they keep the saved histories."""
        saved = [(b.yh.copy(), b.uh.copy()) for b in self.banks]
        y_step = np.where(resumed, np.nan, y_avg)
        for b in self.banks:
            b.step(y_step, u_avg)
        fill = resumed & np.isfinite(y_avg) & np.isfinite(u_avg)
        for b, (yh0, uh0) in zip(self.banks, saved):
            b.yh[resumed] = yh0[resumed]
            b.uh[resumed] = uh0[resumed]
            b.yh[fill] = y_avg[fill, None]
            b.uh[fill] = u_avg[fill, None]
        self.resumed &= ~fill

    # -- saved state (edge.twin.persist) -------------------------------------------------------
    def export_channel(self, i: int) -> ModelState:
        banks = []
        for b, o in zip(self.banks, self.candidates):
            st = b.channel_state(i)
            banks.append(BankState((o.na, o.nb, o.nk), st.theta, st.P, st.yh, st.uh, st.sigma2, st.updates))
        return ModelState(self.channels[i].signal, int(self.choice[i]), bool(self.warm[i]), tuple(banks))

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
        self.warm[i] = c.warm = st.warm
        self.sum_y[i] = self.n_y[i] = self.sum_u[i] = self.n_u[i] = 0.0
        self.resumed[i] = True
        self._refresh = True

    def _candidate_outputs(self, b: RlsBank, orders: ArxOrders) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(columns (n, 8), gain relative std (n,), updated (n,))`` of one candidate bank."""
        n = len(self.channels)
        mp = model_params(b.theta, b.P, b.sigma2, orders, self.period_s)
        mean, var = b.simulate(np.repeat(b.uh[:, :1], self.max_horizon, axis=1))
        idx = np.arange(n)
        f_mean = mean[idx, self.horizons - 1]
        half = Z95 * np.sqrt(var[idx, self.horizons - 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(mp.gain_std / mp.gain)
        rel[np.trace(b.P, axis1=1, axis2=2) > self.excited_trace] = np.inf
        rel[~(np.isfinite(f_mean) & np.isfinite(half))] = np.inf
        cols = np.stack([mp.gain, mp.gain_std, mp.time_constant_s, np.full(n, mp.dead_time_s), np.sqrt(b.sigma2), f_mean, f_mean - half, f_mean + half], axis=1)
        return cols, rel, ~np.isnan(b.err)

    def _outputs(self, inputs_good: np.ndarray, now: datetime) -> list[TagSample]:
        idx = np.arange(len(self.channels))
        parts = [self._candidate_outputs(b, o) for b, o in zip(self.banks, self.candidates)]
        cols = np.stack([p[0] for p in parts])[self.choice, idx]
        rel = np.stack([p[1] for p in parts])[self.choice, idx]
        updated = np.stack([p[2] for p in parts])[self.choice, idx]
        updates = np.stack([b.updates for b in self.banks])[self.choice, idx]
        if not self.orders_first:
            cols = cols[:, [0, 1, 4, 5, 6, 7]]
        determined = (rel <= self.max_rel) & np.isfinite(cols[:, 0])
        self.warm |= (updates >= self.warmup) & determined
        good = determined & updated & inputs_good
        status = np.where(good, GOOD, UNCERTAIN)
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
        return mean[0], var[0]
