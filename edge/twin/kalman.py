"""The twin's Kalman part: one ``KalmanBank`` per model kind, stepped and published per tick.

Per signal it publishes (registry keys ``<asset>.<signal>.<output>``): measured (the device tag
mirrored, when its source time or status changes), estimate, forecast (at the configured horizon),
residual (only on ticks with a new measurement) and anomaly_score. Statuses: see ``edge.twin.runner``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import structlog

import kernels
from drivers.sample import Status, TagSample
from edge.core.names import SIGNAL_OUTPUTS, signal_output_key
from edge.core.registry import TagRegistry
from edge.twin.io import gather, sample, severity
from edge.twin.state import FilterState

log = structlog.get_logger("edge.twin.kalman")

# After a restore, a first measurement this many variances away from the coasted prediction means
# the plant moved while the gateway was down: the channel starts afresh from it (5 sigma).
REACQUIRE_NIS = 25.0

BAD_WAITING = int(Status.BadWaitingForInitialData)
GOOD = int(Status.Good)
UNCERTAIN = int(Status.UncertainSubNormal)


@dataclass(slots=True)
class KalmanChannel:
    asset: str
    signal: str
    tag: str  # input registry key
    r: float  # measurement variance
    horizon_steps: int
    warmup: int


class KalmanGroup:
    """One kernel bank: channels sharing a model and process noise (the runner's tick period)."""

    def __init__(self, model: str, q: float, tick_s: float, channels: list[KalmanChannel], alpha: np.ndarray) -> None:
        n = len(channels)
        self.channels = channels
        self.alpha = alpha
        self.bank = kernels.KalmanBank(model, n, tick_s, q, np.array([c.r for c in channels]))
        self.tags = [c.tag for c in channels]
        self.warmup = np.array([c.warmup for c in channels], dtype=np.int64)
        self.updates = np.zeros(n, dtype=np.int64)
        self.last_source: list[datetime | None] = [None] * n
        self._mirrored: list[tuple[datetime, int] | None] = [None] * n
        self.horizons = sorted({c.horizon_steps for c in channels})
        self._horizon_of = np.array([self.horizons.index(c.horizon_steps) for c in channels], dtype=np.intp)
        self.keys = {name: [signal_output_key(c.asset, c.signal, name) for c in channels] for name in SIGNAL_OUTPUTS}
        self.reacquire = np.zeros(n, dtype=bool)  # restored channels waiting for their first measurement
        self.measured = np.full(n, np.nan)

    # -- saved state (edge.twin.persist) -------------------------------------------------------
    def export_channel(self, i: int) -> FilterState:
        x, P, score = self.bank.channel_state(i)
        return FilterState(self.bank.kind, x, P, score, int(self.updates[i]))

    def import_channel(self, i: int, st: FilterState, coast_steps: int) -> None:
        """Load channel *i*, predicted *coast_steps* ticks ahead (the ticks missed while down).
        Its first measurement then does not feed the score, and restarts the channel when it is
        more than 5 sigma off (``REACQUIRE_NIS``). ValueError when *st* does not fit."""
        if st.model != self.bank.kind:
            raise ValueError(f"saved filter is {st.model!r}, the config says {self.bank.kind!r}")
        self.bank.set_channel_state(i, st.x, st.P, st.score, coast_steps)
        self.updates[i] = st.updates
        self.reacquire[i] = True

    def reset_channel(self, i: int) -> None:
        self.bank.reset(i)
        self.updates[i] = 0
        self.reacquire[i] = False
        self.last_source[i] = None

    def tick(self, registry: TagRegistry, now: datetime, score_override: np.ndarray | None = None) -> tuple[list[TagSample], np.ndarray, np.ndarray]:
        """Step the bank once; return ``(samples, score (n,), status (n,))`` of the channels.
        *score_override* (n,): where finite, the published and returned score (an identified model's)."""
        g = gather(registry, self.tags, self.last_source)
        z = np.where(g.fresh, g.value, np.nan)
        self.measured = z  # this tick's new readings (NaN: none); the asset alarm compares them with their pre-fault level
        self.updates += g.fresh
        self.bank.step(z)
        back = self.reacquire & g.fresh
        if back.any():
            self._reacquired(back)
        self.bank.update_score(self.alpha, skip=back if back.any() else None)
        score = self.bank.score if score_override is None else np.where(np.isfinite(score_override), score_override, self.bank.score)
        innov = self.bank.innovation
        forecasts = np.stack([self.bank.forecast(h)[0] for h in self.horizons]) if self.horizons else np.empty((0, 0))
        fcast = forecasts[self._horizon_of, np.arange(len(self.channels))] if len(self.channels) else np.empty(0)
        status = np.where(self.updates < self.warmup, BAD_WAITING, np.where(severity(g.status) == 0, GOOD, UNCERTAIN))
        out: list[TagSample] = []
        # Measured: mirror the device tag when its source time or status changed.
        for i, s in enumerate(g.samples):
            key = (s.source_time, s.status)
            if key != self._mirrored[i]:
                self._mirrored[i] = key
                out.append(sample(self.keys["measured"][i], None if s.value is None else float(s.value), s.status, s.source_time, now))  # type: ignore[arg-type]
        st_l = status.tolist()
        est_l, fc_l, sc_l, inn_l = self.bank.estimate.tolist(), fcast.tolist(), score.tolist(), innov.tolist()
        has_resid = np.isfinite(innov).tolist()
        k_est, k_fc, k_score, k_resid = self.keys["estimate"], self.keys["forecast"], self.keys["anomaly_score"], self.keys["residual"]
        for i, st in enumerate(st_l):
            if st == BAD_WAITING:
                out += [sample(k_est[i], None, st, now, now), sample(k_fc[i], None, st, now, now), sample(k_score[i], None, st, now, now)]
                if has_resid[i]:
                    out.append(sample(k_resid[i], None, st, now, now))
                continue
            out += [sample(k_est[i], est_l[i], st, now, now), sample(k_fc[i], fc_l[i], st, now, now), sample(k_score[i], sc_l[i], st, now, now)]
            if has_resid[i]:  # a residual exists only where a measurement arrived
                out.append(sample(k_resid[i], inn_l[i], st, now, now))
        return out, score, status

    def _reacquired(self, back: np.ndarray) -> None:
        """First measurements of restored channels: restart those that no longer fit."""
        self.reacquire &= ~back
        with np.errstate(divide="ignore", invalid="ignore"):
            nis = self.bank.innovation**2 / self.bank.innovation_var
        for i in np.flatnonzero(back & (nis > REACQUIRE_NIS)).tolist():
            c = self.channels[i]
            log.warning("twin_filter_restarted", asset=c.asset, signal=c.signal, reason="plant moved while the gateway was down", nis=round(float(nis[i]), 1))
            self.bank.reset(i)
            self.updates[i] = 0
