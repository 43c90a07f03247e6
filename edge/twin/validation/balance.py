"""The ``drift`` test's balance view: the signal's rate of change against what other signals explain.

A process variable obeys a balance (of heat, mass): its rate of change is a function of the
signal itself and of the readings that drive it. ``BalanceTest`` learns that function in a form
linear in its coefficients, on means of the readings over ``BALANCE_PERIOD_S``::

    dy = c0 + c1 y + sum_tags a_i x_i + sum_ratios (b_j m_j + c_j m_j y)

with ``dy`` the change of the period mean of the signal from one period to the next, ``y`` the
earlier mean, ``x_i`` a tag's mean over both periods (scaled to its span: a heater's power, the
ambient temperature through a fixed loss) and ``m_j`` the ratio of two tags' means (a flow through
a volume: a mixing rate, which enters a heat balance as ``m (T_in - T)``). A drifting sensor adds
its rate to ``dy`` that none of the terms explain; a setpoint move of a pump or a valve is
explained through the measured flow and level. A product of two tags (a setpoint times its
enable) enters like a tag. (Every tag times ``y`` as well was tried: the extra
coefficients' uncertainty delayed flags past 2.5 degC on the simulator.)

Statistic: the sum over the last ``window`` periods of the one-period residual, with the
coefficients as they were before the window (a period is learnt from only once it leaves the
window, and only while the statistic is quiet and the signal trusted). A period in which a term's
tag moved by more than ``BALANCE_MOVE`` of its span, and the one after, are left out (a step
within a period is not a smooth rate). The sum's variance is learnt while it is quiet, plus a share
(``BALANCE_UNC``) of the part the coefficients' uncertainty gives it: at an operating point the
model has not seen, the uncertainty is large and a flag needs more. ``BALANCE_NEED`` consecutive
periods above ``sigma`` deviations flag. A period whose prediction variance is more than
``BALANCE_NOVEL`` times the residual variance (an operating point the model has not seen, e.g. the
first pump move after a long steady spell, when a few periods there would shrink that uncertainty
long before the coefficients are right) holds the verdict until the model has learnt
``BALANCE_NOVEL_LEARN`` periods there.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

BALANCE_PERIOD_S = 10.0  # the test works on means of the readings over this period
BALANCE_LAMBDA = 0.9995  # forgetting per period (memory about 5.5 h at 10 s)
BALANCE_P0 = 1e4  # prior covariance of the coefficients (the terms scaled to their span)
BALANCE_GATE = 2.5  # the sum's variance learns only while the statistic is within this many deviations
BALANCE_LEARN_SIGMA = 4.0  # a period whose residual is this many deviations away is not learnt from
BALANCE_MOVE = 0.02  # a term's tag whose period mean moved by this share of its span moved (a step)
BALANCE_UNC = 0.1  # share of the coefficients' uncertainty added to the sum's learnt variance
BALANCE_NEED = 3  # consecutive periods above the level to flag
BALANCE_NOVEL = 32.0  # a period whose prediction variance is this many residual variances is at a new operating point
BALANCE_NOVEL_LEARN = 6  # after one, the verdict is held until this many periods past the window are learnt
BALANCE_MIN_PERIODS = 60  # periods learnt from before the test judges (10 min at 10 s)
BALANCE_VAR_ALPHA = 0.03  # EWMA weight of the sum's variance, down
BALANCE_VAR_ALPHA_UP = 0.01  # and up (slower: a drift's onset grows the sum before it flags)
BALANCE_EVAR_ALPHA = 0.02  # EWMA weight of the one-period residual variance
BALANCE_CLIP = 25.0  # a learnt squared deviation is clipped at this many variances


class BalanceTest:
    """The balance view of the drift test (module docstring). ``add`` one tick: the signal's
    reading (None when held back or not Good) and the readings of the tags the terms are made of
    (NaN when not Good); it returns whether the test sees a drift."""

    def __init__(
        self,
        tick_s: float,
        terms: Sequence[tuple[int, int | None, str]],
        spans: Sequence[float],
        window_s: float,
        sigma: float,
    ) -> None:
        """*terms*: per term ``(i, None, "")`` for tag ``i``, ``(i, j, "/")`` for tag ``i`` over tag
        ``j`` or ``(i, j, "*")`` for their product;
        *spans*: per tag its high - low (scales the tags, sizes a move; NaN: not known, then a
        move is not detected on that tag); *window_s*: the sum's length; *sigma*: the level."""
        if not (tick_s > 0 and window_s > 0 and sigma > 0):
            raise ValueError("tick_s, window_s and sigma must be > 0")
        if not terms or any(
            i >= len(spans) or (j is not None and j >= len(spans)) or (op != "") != (j is not None) or op not in ("", "/", "*") for i, j, op in terms
        ):
            raise ValueError("every term must name tags by their index in spans, with an operator '/' or '*' for two")
        self.terms = list(terms)
        self.spans = [s if math.isfinite(s) and s > 0 else math.nan for s in spans]
        self._move = np.array([BALANCE_MOVE * s if math.isfinite(s) else math.inf for s in self.spans])  # a step of a tag
        self.per_period = max(1, round(BALANCE_PERIOD_S / tick_s))
        self.window = max(2, round(window_s / (self.per_period * tick_s)))
        self.sigma = sigma
        self.n_coef = 2 + sum(2 if op == "/" else 1 for _, _, op in self.terms)
        self.theta = np.zeros(self.n_coef)
        self.cov = np.eye(self.n_coef) * BALANCE_P0
        self.learnt = 0  # periods learnt from
        self.evar = math.nan  # one-period residual variance
        self.svar = math.nan  # variance of the windowed sum
        self.stat = 0.0  # the windowed sum of residuals
        self.floor = 0.0  # the least variance of the sum and of one period's change (the readings' noise)
        self.unc = 0.0  # the part of its variance the coefficients' uncertainty gives it (BALANCE_UNC of it)
        self.z = 0.0  # the statistic in units of its deviation
        self.run = 0  # consecutive periods above the level
        self.hold = 0  # periods left before a new operating point is judged
        self.seen = False
        self._ysum = 0.0
        self._yn = 0
        self._xsum = [0.0] * len(self.spans)
        self._xn = [0] * len(self.spans)
        self._count = 0
        self._prev: tuple[float, np.ndarray] | None = None  # (signal mean, tag means) of the last period
        self._moved_last = False
        self._win: deque[tuple[float, np.ndarray, bool]] = deque()  # (dy, regressors, usable)
        self._dsum = 0.0  # the usable dy of the window, summed
        self._fsum = np.zeros(self.n_coef)  # and their regressors
        self._periods = 0

    def _regressors(self, y0: float, x0: np.ndarray, x1: np.ndarray) -> np.ndarray | None:
        xm = (x0 + x1) / 2.0
        phi = [1.0, y0]
        scaled = [xm[i] / s if math.isfinite(s) else xm[i] for i, s in enumerate(self.spans)]
        for i, j, op in self.terms:
            if j is None:
                phi.append(scaled[i])
            elif op == "*":
                phi.append(scaled[i] * scaled[j])
            else:
                den = max(xm[j], 0.01 * self.spans[j]) if math.isfinite(self.spans[j]) else xm[j]
                m = xm[i] / den if den > 0 else math.nan
                phi += [m, m * y0]
        out = np.array(phi)
        return out if np.all(np.isfinite(out)) else None

    def add(self, y: float | None, xs: Sequence[float], learn: bool = True, noise_var: float = 0.0) -> bool:
        """One tick; *learn*: the signal is trusted now (no other flag against it); *noise_var*:
        the variance of one reading's noise (floors the sum's variance: the sum of one-period
        changes over the window is the last period mean minus the first)."""
        self.floor = 2.0 * max(noise_var, 0.0) / self.per_period
        self._count += 1
        if y is not None and math.isfinite(y):
            self._ysum += y
            self._yn += 1
        xsum, xn = self._xsum, self._xn
        for i, x in enumerate(xs):  # plain floats: a handful of tags, every tick
            if math.isfinite(x):
                xsum[i] += x
                xn[i] += 1
        if self._count < self.per_period:
            return self.seen
        half = self.per_period / 2.0
        y1 = self._ysum / self._yn if self._yn >= half else math.nan
        x1 = np.array([xsum[i] / xn[i] if xn[i] >= half else math.nan for i in range(len(xsum))])
        self._ysum, self._yn, self._count = 0.0, 0, 0
        self._xsum = [0.0] * len(xsum)
        self._xn = [0] * len(xn)
        self._period(y1, x1, learn)
        return self.seen

    def _period(self, y1: float, x1: np.ndarray, learn: bool) -> None:
        prev, self._prev = self._prev, (y1, x1)
        if prev is None or not math.isfinite(y1) or not math.isfinite(prev[0]) or not np.all(np.isfinite(x1)) or not np.all(np.isfinite(prev[1])):
            self._win.clear()  # a gap: the sum starts again
            self._resum()
            self.run, self.seen = 0, False
            return
        y0, x0 = prev
        moved_now = bool(np.any(np.abs(x1 - x0) > self._move))
        usable = not (moved_now or self._moved_last)
        self._moved_last = moved_now
        phi = self._regressors(y0, x0, x1)
        if phi is None:
            usable, phi = False, np.zeros(self.n_coef)
        if usable and float(phi @ self.cov @ phi) > BALANCE_NOVEL:
            self.hold = self.window + BALANCE_NOVEL_LEARN  # a new operating point: learn it before judging
        elif self.hold:
            self.hold -= 1
        use_now = usable and learn
        self._win.append((y1 - y0, phi, use_now))
        if use_now:
            self._dsum += y1 - y0
            self._fsum += phi
        if len(self._win) > self.window:
            d, f, use = self._win.popleft()
            if use:
                self._dsum -= d
                self._fsum -= f
                if learn and not self.seen and self.run == 0:
                    self._learn(d, f)
        self._periods += 1
        if self._periods % self.window == 0:  # the running sums afresh now and then (rounding)
            self._resum()
        fs = self._fsum
        self.stat = self._dsum - float(fs @ self.theta)  # the window's residuals summed: linear in the coefficients
        self.unc = BALANCE_UNC * float(fs @ self.cov @ fs) * self.evar if math.isfinite(self.evar) else 0.0
        if self.learnt < BALANCE_MIN_PERIODS or len(self._win) < self.window:
            self.run, self.seen, self.z = 0, False, 0.0
            return
        if math.isnan(self.svar):  # prior: one period's residual (the readings' noise in the sum telescopes)
            self.svar = max(self.evar, self.floor)
        else:
            self.z = self.stat / math.sqrt(max(self.svar, self.floor) + self.unc + 1e-18)
            self.run = self.run + 1 if abs(self.z) > self.sigma and not self.hold else 0
        if learn and not self.seen and self.run == 0 and self._quiet():
            s2 = self.stat**2  # (below BALANCE_GATE**2 svar: quiet)
            a = BALANCE_VAR_ALPHA if s2 < self.svar else BALANCE_VAR_ALPHA_UP
            self.svar = (1 - a) * self.svar + a * s2
        self.seen = self.run >= BALANCE_NEED

    def _resum(self) -> None:
        used = [(d, f) for d, f, use in self._win if use]
        self._dsum = sum(d for d, _ in used)
        self._fsum = np.sum([f for _, f in used], axis=0) if used else np.zeros(self.n_coef)

    @property
    def judging(self) -> bool:
        """Learnt enough, with a full window: the view's verdict counts."""
        return self.learnt >= BALANCE_MIN_PERIODS and len(self._win) >= self.window

    def _quiet(self) -> bool:
        """The statistic is within ``BALANCE_GATE`` deviations, without the coefficients'
        uncertainty: the sum's variance learns only what a known operating point gives."""
        return abs(self.stat) < BALANCE_GATE * math.sqrt(max(self.svar, self.floor))

    def _learn(self, d: float, f: np.ndarray) -> None:
        """One period into the coefficients, unless its residual is an outlier (BALANCE_LEARN_SIGMA
        deviations of a one-period prediction: the coefficients' uncertainty included)."""
        g = self.cov @ f
        fg = float(f @ g)
        e = d - float(f @ self.theta)
        e2 = e * e if math.isnan(self.evar) else min(e * e, BALANCE_CLIP * self.evar)
        evar = e2 if math.isnan(self.evar) else (1 - BALANCE_EVAR_ALPHA) * self.evar + BALANCE_EVAR_ALPHA * e2
        self.evar = max(evar, self.floor, 1e-12)  # a period's change has at least the readings' noise
        if self.learnt >= BALANCE_MIN_PERIODS and e * e > BALANCE_LEARN_SIGMA**2 * self.evar * (1.0 + fg):
            return  # (the residual variance learns it, clipped: a lasting change is learnt in the end)
        k = g / (BALANCE_LAMBDA + fg)
        self.theta = self.theta + k * e
        cov = self.cov - np.outer(k, g)
        cov = (cov + cov.T) / 2.0
        self.cov = cov / BALANCE_LAMBDA if np.trace(cov) < self.n_coef * BALANCE_P0 else cov  # anti-windup
        self.learnt += 1

    def reset(self) -> None:
        """Forget the transient state (the window, the run), keep what was learnt."""
        self._win.clear()
        self._resum()
        self._prev = None
        self._moved_last = False
        self._ysum, self._yn, self._count = 0.0, 0, 0
        self._xsum = [0.0] * len(self.spans)
        self._xn = [0] * len(self.spans)
        self.run, self.seen, self.stat, self.z = 0, False, 0.0, 0.0

    # -- saved state ----------------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """What was learnt, as plain JSON-ready values."""
        return {
            "theta": self.theta.tolist(),
            "cov": self.cov.tolist(),
            "evar": None if math.isnan(self.evar) else self.evar,
            "svar": None if math.isnan(self.svar) else self.svar,
            "learnt": self.learnt,
        }

    def restore(self, doc: Any) -> None:
        """Load what ``export`` wrote; ValueError when it does not fit (other terms)."""
        try:
            theta = np.array(doc["theta"], dtype=np.float64)
            cov = np.array(doc["cov"], dtype=np.float64)
            evar = math.nan if doc["evar"] is None else float(doc["evar"])
            svar = math.nan if doc["svar"] is None else float(doc["svar"])
            learnt = doc["learnt"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad balance state ({exc!r})") from None
        n = self.n_coef
        if theta.shape != (n,) or cov.shape != (n, n) or not (np.all(np.isfinite(theta)) and np.all(np.isfinite(cov))):
            raise ValueError(f"balance state has {theta.size} coefficients, the config {n}")
        if not isinstance(learnt, int) or isinstance(learnt, bool) or learnt < 0 or not (math.isnan(evar) or evar >= 0) or not (math.isnan(svar) or svar >= 0):
            raise ValueError("balance state has values out of range")
        self.theta, self.cov, self.evar, self.svar, self.learnt = theta, cov, evar, svar, learnt
