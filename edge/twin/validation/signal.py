"""``SignalValidator``: the validation state of one signal (the tests are described in ``edge.twin.validation``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .balance import BalanceTest
from .drift import RampTest, open_loop
from .params import (
    CLIP_SIGMA,
    CUSUM_CAP,
    FLAT_MAX,
    FLAT_MIN,
    FLAT_PRIOR,
    KINDS,
    MODEL_REL_ERROR,
    NOISE_ALPHA,
    RELATED_MIN_UPDATES,
    RELATED_P0,
    RELATED_SMOOTH,
    RESID_ALPHA,
    RESID_WARMUP,
    SMOOTH_STD,
    SUPPORT_BINS,
    ValidationParams,
)
from .related import RelatedModel
from .stuck import FOLLOW_S, fails_to_follow


class SignalValidator:
    """The validation state of one signal (see the module docstring)."""

    def __init__(
        self,
        name: str,
        params: ValidationParams,
        noise_std: float,
        tick_s: float,
        low: float = -math.inf,
        n_related: int = 0,
        span: float = math.nan,
        ramp: bool = False,
        balance: BalanceTest | None = None,
    ) -> None:
        """*noise_std*: the configured measurement noise (a prior); *low*: the tag's low limit;
        *span*: the tag's high - low (sizes the redundancy models' prior: a coefficient may be as
        large as the whole range per unit of the scaled related reading); *ramp*: run the drift
        test's ramp test (``drift.RampTest``) on the reading (a signal whose process settles
        within ``drift_tau_s`` under held inputs: the identified signal); *balance*: the drift
        test's balance view (``balance.BalanceTest``, a signal with ``explained_by`` tags), fed by
        ``observe_balance``."""
        if not (noise_std > 0 and tick_s > 0):
            raise ValueError("noise_std and tick_s must be > 0")
        self.name = name
        self.params = params
        self.tick_s = tick_s
        self.low = low
        self.noise_std0 = noise_std
        self.noise_var = noise_std**2  # variance of one reading's noise (learnt; prior: measurement_noise^2)
        self.p_flat = FLAT_PRIOR
        self.learnt = 0  # readings learnt from
        self.last: float | None = None  # last reading
        self._prev_learn: float | None = None  # last reading learnt from
        self.ref: float | None = None  # last accepted reading
        self.pending: float | None = None  # a reading held back as a possible spike
        self.flat_run = 0
        self.resid_var = math.nan  # model residual variance (learnt)
        self.resid_n = 0  # model residuals learnt from
        self.history: list[tuple[float, float, tuple[float, ...]]] = []  # (output, input, parameters) of the last model periods
        self.cusum_pos = 0.0
        self.cusum_neg = 0.0
        self.ramp = RampTest(tick_s, params.drift_window_s, params.drift_tau_s, params.drift_min_rate) if ramp else None
        self.balance = balance
        self._drift_cusum = self._drift_ramp = self._drift_balance = False  # what each view of the drift test sees
        self._last_input: float | None = None
        self._stuck_repeats = self._stuck_follow = False  # what each form of the stuck test sees
        self.span = span
        p0 = (span / noise_std) ** 2 if math.isfinite(span) and span > 0 else RELATED_P0
        self.related = [RelatedModel(p0) for _ in range(n_related)]
        self.raised: dict[str, float] = {}  # kind -> time it was last seen (flag raised)
        self.seen: dict[str, bool] = dict.fromkeys(KINDS, False)  # what the tests see now
        self.now = 0.0

    # -- state ----------------------------------------------------------------------------------
    @property
    def warm(self) -> bool:
        return self.learnt * self.tick_s >= self.params.learn_s

    @property
    def flags(self) -> list[str]:
        """The kinds flagged now, in ``KINDS`` order."""
        return [k for k in KINDS if k in self.raised]

    @property
    def kind(self) -> str:
        """The first flagged kind, or "" (the SensorFault node)."""
        f = self.flags
        return f[0] if f else ""

    @property
    def trusted(self) -> bool:
        """Nothing against the reading: no flag, nothing held back (the identified model's learn flag)."""
        return not self.raised and self.pending is None

    def _update_flags(self) -> None:
        raised = self.raised
        warm = self.warm
        for kind, on in self.seen.items():
            if on:
                if warm:
                    raised[kind] = self.now
            elif kind in raised and self.now - raised[kind] >= self.params.hold_s:
                del raised[kind]

    # -- per reading ----------------------------------------------------------------------------
    def advance(self, dt_s: float) -> None:
        """Time passes (one tick); flags whose hold time is over and whose test is quiet clear."""
        self.now += dt_s
        self._update_flags()

    def observe(self, z: float) -> bool:
        """A fresh reading; returns whether to feed it to the filter and the identification."""
        p = self.params
        sigma = math.sqrt(self.noise_var)
        # stuck: run of repeats
        flat = False
        if self.last is not None:
            d = z - self.last
            flat = abs(d) <= 0.01 * sigma
            pinned = z <= self.low
            self.flat_run = self.flat_run + 1 if flat and not pinned else 0
        self.last = z
        needed = math.log(p.stuck_probability) / math.log(max(self.p_flat, FLAT_MIN))
        self._stuck_repeats = self.p_flat < FLAT_MAX and self.flat_run >= needed and self.flat_run * self.tick_s >= p.stuck_min_s
        self.seen["stuck"] = self._stuck_repeats or self._stuck_follow
        # spike: an outlier held back for one reading
        accept = True
        limit = p.spike_sigma * sigma * math.sqrt(2.0)
        spike = False
        if self.ref is None:
            self.ref = z
        elif self.pending is not None:
            if abs(z - self.ref) <= limit:
                spike = True  # back: the held reading was an isolated outlier
            self.pending = None
            self.ref = z
        elif abs(z - self.ref) > limit and not self.seen["stuck"]:
            self.pending = z
            accept = False
        else:
            self.ref = z
        self.seen["spike"] = spike
        if self.ramp is not None:
            self._drift_ramp = self.ramp.add(z if accept else None, self.noise_var)
            self._see_drift()
        # learn the noise and the share of repeats from readings nobody doubts
        if accept and not self.raised and not spike:
            self._learn_noise(z, flat)
        self._update_flags()
        return accept

    def observe_balance(self, y: float | None, xs: Sequence[float]) -> None:
        """This tick's reading (None: held back or not Good) and the readings of the tags that
        explain its rate (NaN: not Good), for the drift test's balance view."""
        if self.balance is None:
            return
        self._drift_balance = self.balance.add(y, xs, learn=self.trusted, noise_var=self.noise_var)
        self._see_drift()
        self._update_flags()

    def _see_drift(self) -> None:
        """A signal with a balance view that judges is judged by it alone (it tells a drift from
        a setpoint move the ramp and the model views cannot explain); otherwise by those two."""
        if self.balance is not None and self.balance.judging:
            self.seen["drift"] = self._drift_balance
        else:
            self.seen["drift"] = self._drift_cusum or self._drift_ramp

    def observe_input(self, u: float) -> None:
        """The identified model's input now (a setpoint): a move of it suspends the drift test's
        ramp view for one window (the process answers the move; the model's CUSUM judges that)."""
        if self.ramp is None or not math.isfinite(u):
            return
        if self._last_input is not None and u != self._last_input:
            self.ramp.input_moved()
        self._last_input = u

    def _learn_noise(self, z: float, flat: bool) -> None:
        if self.flat_run > 0 and self.seen["stuck"]:
            return
        if z <= self.low:
            return
        self.learnt += 1
        if self._prev_learn is None:
            self._prev_learn = z
            return
        d = z - self._prev_learn
        self._prev_learn = z
        half = min(d * d, CLIP_SIGMA**2 * 2 * self.noise_var) / 2.0
        self.noise_var = max((1 - NOISE_ALPHA) * self.noise_var + NOISE_ALPHA * half, 1e-18)
        self.p_flat = (1 - NOISE_ALPHA) * self.p_flat + NOISE_ALPHA * float(flat)

    # -- identified model ---------------------------------------------------------------------
    def model_period(
        self, y: float, u: float, theta: Sequence[float], orders: tuple[int, int, int], horizon: int, noise_var: float, period_s: float = math.nan
    ) -> None:
        """One model period of the identified model: *y* and *u* the period's averages, *theta*
        its parameters ``[a_1..a_na, b_1..b_nb, c]`` for ``orders`` (na, nb, nk), *horizon* the
        drift test's look-back in model periods, *noise_var* the model's equation-noise variance,
        *period_s* the model period (sizes the stuck test's look-back; NaN: 10 s).

        The drift CUSUM compares *y* with the model run open loop from the readings *horizon*
        periods ago under the inputs since (``drift.open_loop``); the stuck test checks that the
        reading follows the move the model predicts (``stuck.fails_to_follow``)."""
        na, nb, nk = orders
        need = horizon + max(na, nk + nb)
        hist = self.history
        hist.append((y, u, tuple(theta)))
        del hist[: max(0, len(hist) - need)]
        if len(hist) < need or not (math.isfinite(y) and math.isfinite(u)) or len(theta) != na + nb + 1:
            return
        ol = open_loop(hist, orders, horizon)
        if ol is None:
            return
        err = ol.err
        # A model is never exact: after an input move the open-loop error grows with the move
        # (a gain off by a few % is as many % of the response). That part of the error is allowed
        # for: MODEL_REL_ERROR of the model's response to the input moves in the window.
        # An input changed during the latest period acts within it, before the model (which applies
        # an input from the next period on) lets it: allowed for in full.
        allowance = (MODEL_REL_ERROR * ol.moves[-1]) ** 2 + ol.late**2
        floor = noise_var if math.isfinite(noise_var) and noise_var > 0 else 0.0
        if math.isnan(self.resid_var):
            self.resid_var = max(floor, err * err)
        p = self.params
        if self.resid_n >= RESID_WARMUP:
            n = err / math.sqrt(max(self.resid_var, floor, 1e-18) + allowance)
            cap = CUSUM_CAP * p.drift_h
            self.cusum_pos = min(cap, max(0.0, self.cusum_pos + n - p.drift_k))
            self.cusum_neg = min(cap, max(0.0, self.cusum_neg - n - p.drift_k))
            over = max(self.cusum_pos, self.cusum_neg) > p.drift_h
            self._drift_cusum = over and self._cusum_confirmed(ol.err)
            look = max(2, round(FOLLOW_S / period_s) + 1) if math.isfinite(period_s) and period_s > 0 else 6
            span = min(2 * look - 1, len(hist))  # two look-backs sharing their middle period
            span -= 1 - span % 2
            self._stuck_follow = fails_to_follow([h[0] for h in hist[-span:]], ol.moves[-span:], math.sqrt(self.noise_var), p.follow_sigma)
            self._see_drift()
            self.seen["stuck"] = self._stuck_repeats or self._stuck_follow
        if allowance <= self.resid_var and (self.resid_n < RESID_WARMUP or (self.trusted and max(self.cusum_pos, self.cusum_neg) < p.drift_h / 2)):
            e2 = min(err * err, CLIP_SIGMA**2 * self.resid_var)
            self.resid_var = max((1 - RESID_ALPHA) * self.resid_var + RESID_ALPHA * e2, floor)
            self.resid_n += 1
        self._update_flags()

    def _cusum_confirmed(self, err: float) -> bool:
        """Whether an offset against the model counts as a drift: with a ramp view only while it
        has evidence pointing the same way (the window fits a settling response plus a ramp, the
        ramp above its limit), so the model's error after a move it does not explain (a settling
        response) is not one; alone for a window after a move of the model's own input (which
        suspends the ramp view, and which the model explains)."""
        if self.ramp is None:
            return True
        if self.ramp.blocked:
            return True  # the model's input moved: the model explains that move, the CUSUM judges alone
        return self.ramp.run > 0 and self.ramp.rate * err > 0

    # -- redundancy -----------------------------------------------------------------------------
    def check_related(self, z: float, xs: list[float]) -> None:
        """The reading *z* against its related readings *xs* (scaled; NaN: not Good)."""
        if not self.related:
            return
        if any(math.isnan(x) for x in xs):
            return
        against = []
        quiet = True
        limit = self.params.contradiction_sigma * SMOOTH_STD
        for m, x in zip(self.related, xs):
            if math.isnan(m.var) or m.updates < RELATED_MIN_UPDATES or not m.seen(x):
                m.smooth = 0.0
                against.append(False)  # nothing learnt here yet: no verdict (and it may learn)
                continue
            e, v = m.residual(z, x)
            n = e / math.sqrt(max(v, 1e-18))
            m.smooth = (1 - RELATED_SMOOTH) * m.smooth + RELATED_SMOOTH * n
            against.append(abs(m.smooth) > limit)
            quiet = quiet and abs(m.smooth) < limit / 2
        self.seen["contradiction"] = all(against)
        if self.trusted and quiet:
            for m, x in zip(self.related, xs):
                m.learn(z, x)
        self._update_flags()

    # -- saved state (edge.twin.state) ---------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """What was learnt (not the transient test state), as plain JSON-ready values."""
        return {
            "noise_var": self.noise_var,
            "p_flat": self.p_flat,
            "learnt": self.learnt,
            "resid_var": None if math.isnan(self.resid_var) else self.resid_var,
            "resid_n": self.resid_n,
            "related": [
                {
                    "theta": list(m.theta),
                    "P": [list(r) for r in m.P],
                    "var": None if math.isnan(m.var) else m.var,
                    "updates": m.updates,
                    "support": list(m.support),
                }
                for m in self.related
            ],
            "balance": None if self.balance is None else self.balance.export(),
        }

    def restore(self, doc: Any) -> None:
        """Load what ``export`` wrote; ValueError when it does not fit this signal."""
        if not isinstance(doc, dict):
            raise ValueError(f"validation state of {self.name!r} must be an object")
        try:
            noise_var, p_flat, learnt = float(doc["noise_var"]), float(doc["p_flat"]), doc["learnt"]
            resid, resid_n = doc["resid_var"], int(doc["resid_n"])
            related = doc["related"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"validation state of {self.name!r}: {exc!r}") from None
        if not (noise_var > 0 and math.isfinite(noise_var) and 0 <= p_flat <= 1) or not isinstance(learnt, int) or isinstance(learnt, bool) or learnt < 0:
            raise ValueError(f"validation state of {self.name!r} has values out of range")
        if not isinstance(related, list) or len(related) != len(self.related):
            raise ValueError(
                f"validation state of {self.name!r} has {len(related) if isinstance(related, list) else '?'} related models, the config {len(self.related)}"
            )
        models: list[RelatedModel] = []
        for r in related:
            try:
                theta, P = np.array(r["theta"], dtype=np.float64), np.array(r["P"], dtype=np.float64)
                var = math.nan if r["var"] is None else float(r["var"])
                updates = r["updates"]
                support = [int(c) for c in r["support"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"validation state of {self.name!r}: bad related model ({exc!r})") from None
            if theta.shape != (3,) or P.shape != (3, 3) or not (np.all(np.isfinite(theta)) and np.all(np.isfinite(P))) or not isinstance(updates, int):
                raise ValueError(f"validation state of {self.name!r}: bad related model")
            if len(support) != SUPPORT_BINS or min(support) < 0:
                raise ValueError(f"validation state of {self.name!r}: bad related model support")
            models.append(RelatedModel(self.related[len(models)].p0, theta.tolist(), P.tolist(), var, updates, support))
        balance = doc.get("balance")  # absent in a state saved before the balance view: learnt afresh
        if balance is not None and self.balance is not None:
            try:
                self.balance.restore(balance)
            except ValueError as exc:
                raise ValueError(f"validation state of {self.name!r}: {exc}") from None
        self.noise_var, self.p_flat, self.learnt = noise_var, p_flat, learnt
        self.resid_var = math.nan if resid is None else float(resid)
        self.resid_n = resid_n
        self.related = models
