"""The ``drift`` test's two views of a slow offset on a reading (pure; no I/O, no clock).

``open_loop``
    The identified input->output model (which does not see the sensor) run open loop over a
    look-back window from the readings at its start, under the inputs since: a drifting sensor
    builds up an offset against it. ``SignalValidator.model_period`` feeds that error, in units of
    its learnt standard deviation, into a CUSUM.
``RampTest``
    The shape of the reading itself. Under inputs held since some time, a process whose slowest
    time constant is at most ``tau`` settles: its slope decays at least as ``exp(-t / tau)``, so
    over two consecutive half windows of length ``h`` the slopes ``s1``, ``s2`` satisfy
    ``s2 = rho' s1`` with ``0 <= rho' <= rho = exp(-h / tau)``. A sensor drifting at rate ``r``
    adds ``r`` to both, so ``d = (s2 - rho s1) / (1 - rho)`` estimates ``r`` (a settling response
    gives ``d`` against its own motion or about 0). A move within the window (an input the
    model does not know, a setpoint step) makes ``d`` look like a ramp until the move reaches the
    first half, where its steep start makes ``s1`` large: so the evidence (``d`` in the direction
    the reading moves, above the smallest drift rate and above its noise) must last a whole
    window before it flags. It needs no identified model, so it also judges a signal whose model
    never saw an input move (a steady operating point).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RAMP_PERIOD_S = 10.0  # the ramp test works on means of the readings over this period
RAMP_FIT = 2.0  # the window must fit one settling response plus a ramp within this many noise deviations (RMS)
RAMP_Z = 3.0  # the rate estimate must be this many of its noise deviations to start a run of evidence


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """The model run open loop over the window (see ``open_loop``)."""

    err: float  # the latest reading minus the simulated output
    sim: list[float]  # per index of the history: the readings before the window, then the simulated output
    moves: list[float]  # per index of the history: the part of the simulated output due to input moves in the window
    late: float  # the steady effect of an input changed during the latest period (the model applies it from the next)


def open_loop(hist: Sequence[tuple[float, float, tuple[float, ...]]], orders: tuple[int, int, int], horizon: int) -> OpenLoop | None:
    """*hist*: ``(output, input, parameters)`` of the last ``horizon + max(na, nk + nb)`` model
    periods, parameters ``[a_1..a_na, b_1..b_nb, c]``. The model as it was at the start of the
    window is run: identification that goes on learning during a drift must not hide the drift
    from its own test. None when the window has gaps or the parameters do not fit *orders*."""
    na, nb, nk = orders
    need = horizon + max(na, nk + nb)
    if len(hist) < need:
        return None
    hist = hist[len(hist) - need :]
    theta = hist[need - horizon - 1][2]
    if len(theta) != na + nb + 1:
        return None
    ys = [h[0] for h in hist]
    us = [h[1] for h in hist]
    if any(map(math.isnan, ys[: need - horizon])) or any(map(math.isnan, us)):
        return None
    start = need - horizon  # first simulated index
    sim = ys[:start] + [0.0] * horizon
    moves = [0.0] * need
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
    err = ys[-1] - sim[-1]
    late = sum(theta[na : na + nb]) * (us[-1] - us[-2])
    if not (math.isfinite(err) and math.isfinite(late) and math.isfinite(moves[-1])):
        return None
    return OpenLoop(err, sim, moves, late)


def half_slopes(means: Sequence[float], period_s: float) -> tuple[float, float]:
    """Least-squares slopes (per second) of the first and the second half of *means* (equally
    spaced by *period_s*, an even count of at least 4)."""
    h = len(means) // 2
    c = (h - 1) / 2.0
    sxx = sum((i - c) ** 2 for i in range(h)) * period_s
    s1 = sum((i - c) * means[i] for i in range(h)) / sxx
    s2 = sum((i - c) * means[h + i] for i in range(h)) / sxx
    return s1, s2


def ramp_rate(means: Sequence[float], period_s: float, tau_s: float) -> float:
    """``d = (s2 - rho s1) / (1 - rho)``, the drift rate (per second) the window's two half
    slopes leave once a settling response with time constant up to *tau_s* is allowed for."""
    s1, s2 = half_slopes(means, period_s)
    rho = math.exp(-(len(means) // 2) * period_s / tau_s)
    return (s2 - rho * s1) / (1.0 - rho)


class RampTest:
    """A sustained ramp a settling process cannot make (see the module docstring). ``add`` one
    reading (or None for one held back); it returns whether the test sees a drift."""

    def __init__(self, tick_s: float, window_s: float, tau_s: float, min_rate_per_min: float) -> None:
        if not (tick_s > 0 and window_s > 0 and tau_s > 0 and min_rate_per_min >= 0):
            raise ValueError("tick_s, window_s and tau_s must be > 0, min_rate_per_min >= 0")
        self.per_bucket = max(1, round(RAMP_PERIOD_S / tick_s))
        self.period_s = self.per_bucket * tick_s
        self.half = max(2, round(window_s / 2 / self.period_s))
        self.tau_s = tau_s
        self.rho = math.exp(-self.half * self.period_s / tau_s)
        self.min_rate = min_rate_per_min / 60.0
        self.means: deque[float] = deque(maxlen=2 * self.half)
        self._sum = 0.0
        self._n = 0
        self._count = 0
        self.rate = math.nan  # the latest drift-rate estimate d (per second)
        self.run = 0  # consecutive periods with ramp evidence
        self._sign = 0.0  # the direction of the evidence
        self.blocked = 0  # periods left in which no evidence counts (a known input moved)
        self.misfit = math.nan  # the window's misfit to one settling response plus a ramp (noise deviations)
        n = 2 * self.half
        t = np.arange(n) * self.period_s
        # y -> residual of the least-squares fit of a settling response plus a ramp that starts at
        # period k of the window (a drift may begin within it), one matrix per start
        self._resid = np.stack(
            [
                np.eye(n) - x @ np.linalg.pinv(x)
                for k in range(n - 2)
                for x in [np.column_stack([np.ones(n), np.maximum(t - t[k], 0.0) / t[-1], np.exp(-t / tau_s)])]
            ]
        )
        self.seen = False

    def limit(self, noise_var: float) -> float:
        """The smallest |d| that counts as evidence: the smallest drift rate, and RAMP_Z noise
        deviations of d for readings with per-reading noise variance *noise_var*."""
        h = self.half
        sd_mean = math.sqrt(max(noise_var, 0.0) / self.per_bucket)
        sd_slope = sd_mean * math.sqrt(12.0 / (h * (h * h - 1))) / self.period_s
        return max(self.min_rate, RAMP_Z * sd_slope * math.sqrt(1.0 + self.rho**2) / (1.0 - self.rho))

    def _misfit(self, means: Sequence[float], noise_var: float) -> float:
        """RMS residual of the window's means against ``a + b t + c exp(-t / tau)`` (one settling
        response plus a ramp), in units of a mean's noise: about 1 for a drift on a process
        settling within ``tau``, large for a window with a move in it (a staircase of setpoint
        steps, a response faster than its period)."""
        y = np.asarray(means, dtype=np.float64)
        r = self._resid @ y
        sd_mean = math.sqrt(max(noise_var, 1e-18) / self.per_bucket)
        return math.sqrt(float(np.min(np.einsum("ij,ij->i", r, r))) / (len(y) - 4)) / sd_mean

    def add(self, z: float | None, noise_var: float) -> bool:
        self._count += 1
        if z is not None and math.isfinite(z):
            self._sum += z
            self._n += 1
        if self._count < self.per_bucket:
            return self.seen
        mean = self._sum / self._n if 2 * self._n >= self.per_bucket else math.nan
        self._sum, self._n, self._count = 0.0, 0, 0
        self.means.append(mean)
        if len(self.means) < self.means.maxlen or any(map(math.isnan, self.means)):  # type: ignore[operator]
            self.run, self.rate = 0, math.nan
        else:
            means = list(self.means)
            d = ramp_rate(means, self.period_s, self.tau_s)
            s2 = half_slopes(means, self.period_s)[1]
            self.rate = d
            self.misfit = self._misfit(means, noise_var)
            # evidence: d in the direction the reading moves, above the limit to start a run and
            # above half of it (the same direction) to go on
            need = self.limit(noise_var) * (0.5 if self.run else 1.0)
            if self.blocked:
                self.blocked -= 1
                need = math.inf
            evidence = d * s2 > 0 and abs(d) > need and (self.run == 0 or d * self._sign > 0) and self.misfit <= RAMP_FIT
            self.run = self.run + 1 if evidence else 0
            self._sign = math.copysign(1.0, d)
        self.seen = self.run >= 2 * self.half
        return self.seen

    def input_moved(self) -> None:
        """A known input (the identified model's) moved: the process answers it for a while, so no
        evidence counts for one window (a ramp of setpoint steps is not a drift)."""
        self.blocked = 2 * self.half

    def reset(self) -> None:
        self.means.clear()
        self._sum, self._n, self._count = 0.0, 0, 0
        self.run, self.rate, self.seen, self.misfit, self.blocked = 0, math.nan, False, math.nan, 0
