"""Sensor validation, per signal: is this reading a measurement of the process or a sensor fault?

Pure logic (no I/O, no clock: time is a count of seconds passed in). One ``SignalValidator`` per
validated signal; ``edge.twin.validation_hook`` feeds it from the registry and the identified model
and publishes its flags. Four tests, each naming the signal and the kind:

``stuck``
    A flat-lined reading. In normal operation it learns the share of consecutive readings that
    repeat (``p_flat``: a quantised reading repeats now and then, a float reading almost never).
    A run of ``n`` repeats has probability ``p_flat ** n`` on a healthy sensor; the reading is
    flagged when that falls below ``stuck_probability`` and the run lasts ``stuck_min_s``. A reading
    pinned at the tag's ``low`` limit (a stopped drive, a meter below its low-flow cutoff) is not a
    flat line. A signal that is flat in normal operation (``p_flat`` >= 0.9) is not tested.
``spike``
    An isolated outlier: a reading more than ``spike_sigma`` noise deviations from the last
    accepted one is held back; if the next reading is back, it was a spike (flagged, never fed to
    the filter or the identification); if the next reading stays away, the process moved and the
    new reading is accepted.
``drift``
    A slow offset against the identified input->output model, which does not see the sensor: the
    reading minus the model run open loop from the readings ``drift_horizon_s`` ago under the
    inputs since (a drifting sensor builds up an offset there), in units of that error's standard
    deviation learnt while the signal was trusted, into a two-sided CUSUM (slack ``drift_k``,
    decision level ``drift_h``).
``contradiction``
    The reading disagrees with its ``related`` signals: per related signal an online least-squares
    model ``signal ~ c0 + c1 x + c2 x^2`` (x the related reading scaled to its tag range), learnt only
    while the signal is trusted and its related readings are Good. The smoothed residual, divided by
    its prediction standard deviation (which is large where the model has not seen data, so a new
    operating point is learnt, not flagged), above ``contradiction_sigma`` against *every* related
    signal flags it: a reading that disagrees with only one of them is more likely a change of that
    one (a worn bearing draws more current at the same flow and speed).

A flag stays raised at least ``hold_s`` and clears when its test no longer sees the fault. No test
flags before the signal has learnt ``learn_s`` of normal operation; nothing is learnt from a
flagged reading. ``trusted`` (no flag, nothing held back, learnt) is what the identified model may
learn from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("stuck", "spike", "drift", "contradiction")  # the order in which a signal's flags are shown
FLAT_MAX = 0.9  # a signal flat this often in normal operation is not tested for flat lines
FLAT_MIN = 0.01  # floor of the learnt share of repeats (a few samples cannot prove "never")
FLAT_PRIOR = 0.5  # share of repeats assumed before anything is learnt (cautious)
NOISE_ALPHA = 0.002  # EWMA weight of the noise and repeat statistics (about 500 samples)
RESID_ALPHA = 0.05  # EWMA weight of the model residual variance (model periods)
RESID_WARMUP = 12  # model residuals learnt before the drift test judges
MODEL_REL_ERROR = 0.2  # share of the response to recent input moves the drift test allows as model error
RELATED_LAMBDA = 0.9999  # forgetting of the redundancy models (per sample)
RELATED_P0 = 1e6  # prior covariance of the redundancy models' coefficients, default (units of the residual variance)
RELATED_SMOOTH = 0.2  # EWMA weight of the normalised redundancy residual
RELATED_VAR_ALPHA = 0.01
SMOOTH_STD = math.sqrt(RELATED_SMOOTH / (2 - RELATED_SMOOTH))  # stationary std of the smoothed residual of white noise
RELATED_MIN_UPDATES = 100  # readings a redundancy model learns before it judges
SUPPORT_BINS = 100  # the related reading's range (0..1 scaled) in bins of 1 %
SUPPORT_MIN = 20  # readings learnt in a bin before the model judges there
SUPPORT_CAP = 1_000_000
CLIP_SIGMA = 5.0  # learning statistics clip a deviation at this many sigma
CUSUM_CAP = 1.5  # the drift CUSUM is capped at CUSUM_CAP * drift_h (so it releases in bounded time)


@dataclass(frozen=True, slots=True)
class ValidationParams:
    """The tests' settings (``[assets.validation]``; documented in docs/detection.md)."""

    learn_s: float = 300.0
    stuck_probability: float = 1e-9
    stuck_min_s: float = 10.0
    spike_sigma: float = 8.0
    drift_k: float = 1.5
    drift_h: float = 10.0
    drift_horizon_s: float = 120.0
    contradiction_sigma: float = 6.0
    hold_s: float = 30.0


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


class SignalValidator:
    """The validation state of one signal (see the module docstring)."""

    def __init__(
        self, name: str, params: ValidationParams, noise_std: float, tick_s: float, low: float = -math.inf, n_related: int = 0, span: float = math.nan
    ) -> None:
        """*noise_std*: the configured measurement noise (a prior); *low*: the tag's low limit;
        *span*: the tag's high - low (sizes the redundancy models' prior: a coefficient may be as
        large as the whole range per unit of the scaled related reading)."""
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
        self.seen["stuck"] = self.p_flat < FLAT_MAX and self.flat_run >= needed and self.flat_run * self.tick_s >= p.stuck_min_s
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
        # learn the noise and the share of repeats from readings nobody doubts
        if accept and not self.raised and not spike:
            self._learn_noise(z, flat)
        self._update_flags()
        return accept

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
    def model_period(self, y: float, u: float, theta: Sequence[float], orders: tuple[int, int, int], horizon: int, noise_var: float) -> None:
        """One model period of the identified model: *y* and *u* the period's averages, *theta*
        its parameters ``[a_1..a_na, b_1..b_nb, c]`` for ``orders`` (na, nb, nk), *horizon* the
        drift test's look-back in model periods, *noise_var* the model's equation-noise variance.

        The test compares *y* with the model run open loop from the readings *horizon* periods
        ago under the inputs since: a drifting sensor builds up an offset there that the model,
        which does not see the sensor, cannot explain."""
        na, nb, nk = orders
        need = horizon + max(na, nk + nb)
        hist = self.history
        hist.append((y, u, tuple(theta)))
        del hist[: max(0, len(hist) - need)]
        if len(hist) < need or not (math.isfinite(y) and math.isfinite(u)) or len(theta) != na + nb + 1:
            return
        # The model as it was at the start of the window: identification that goes on learning
        # during a drift must not hide the drift from its own test.
        theta = hist[need - horizon - 1][2]
        if len(theta) != na + nb + 1:
            return
        ys = [h[0] for h in hist]
        us = [h[1] for h in hist]
        if any(map(math.isnan, ys[: need - horizon])) or any(map(math.isnan, us)):
            return
        start = need - horizon  # first simulated index
        sim = ys[:start] + [0.0] * horizon
        moves = [0.0] * need  # the part of the simulated output due to input moves in the window
        u_ref = us[start - nk]
        for t in range(start, need):
            acc, dev = theta[-1], 0.0
            for j in range(na):
                acc += theta[j] * sim[t - 1 - j]
                dev += theta[j] * moves[t - 1 - j]
            for j in range(nb):
                acc += theta[na + j] * us[t - nk - j]
                dev += theta[na + j] * (us[t - nk - j] - u_ref)
            sim[t], moves[t] = acc, dev
        err = y - sim[-1]
        if not math.isfinite(err):
            return
        # A model is never exact: after an input move the open-loop error grows with the move
        # (a gain off by a few % is as many % of the response). That part of the error is allowed
        # for: MODEL_REL_ERROR of the model's response to the input moves in the window.
        # An input changed during the latest period acts within it, before the model (which applies
        # an input from the next period on) lets it: allowed for in full.
        late = sum(theta[na : na + nb]) * (us[-1] - us[-2])
        allowance = (MODEL_REL_ERROR * moves[-1]) ** 2 + late * late
        if not math.isfinite(allowance):
            return
        floor = noise_var if math.isfinite(noise_var) and noise_var > 0 else 0.0
        if math.isnan(self.resid_var):
            self.resid_var = max(floor, err * err)
        p = self.params
        if self.resid_n >= RESID_WARMUP:
            n = err / math.sqrt(max(self.resid_var, floor, 1e-18) + allowance)
            cap = CUSUM_CAP * p.drift_h
            self.cusum_pos = min(cap, max(0.0, self.cusum_pos + n - p.drift_k))
            self.cusum_neg = min(cap, max(0.0, self.cusum_neg - n - p.drift_k))
            self.seen["drift"] = max(self.cusum_pos, self.cusum_neg) > p.drift_h
        if allowance <= self.resid_var and (self.resid_n < RESID_WARMUP or (self.trusted and max(self.cusum_pos, self.cusum_neg) < p.drift_h / 2)):
            e2 = min(err * err, CLIP_SIGMA**2 * self.resid_var)
            self.resid_var = max((1 - RESID_ALPHA) * self.resid_var + RESID_ALPHA * e2, floor)
            self.resid_n += 1
        self._update_flags()

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
        self.noise_var, self.p_flat, self.learnt = noise_var, p_flat, learnt
        self.resid_var = math.nan if resid is None else float(resid)
        self.resid_n = resid_n
        self.related = models
