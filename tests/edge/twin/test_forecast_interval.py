"""Forecast terms and interval calibration of the identified models (pure, known answers):
the direct share of a block's input, the effective inputs that make the block-average recursion
exact, the forecast ring and its regimes, and the per-regime quantiles of the guard."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.twin.forecast_interval import ForecastRing
from edge.twin.forecast_terms import direct_share, effective_inputs
from edge.twin.model_guard import KAPPA0, Z95, ModelGuard
from kernels.ident import arx_simulate


@pytest.mark.parametrize(
    ("a", "share"),
    [
        (math.exp(-1.0), (1 - (1 - math.exp(-1.0))) / (1 - math.exp(-1.0))),  # T = tau: beta = 1 - e^-1
        (math.exp(-1e-4), 0.5),  # T << tau: half of the block's input acts within it
        (0.0, 0.0),  # no time constant: no share
        (1.0, 0.0),
        (-0.3, 0.0),
        (float("nan"), 0.0),
    ],
)
def test_direct_share_known_values(a: float, share: float) -> None:
    assert direct_share(np.array([a]))[0] == pytest.approx(share, abs=1e-5)


def _block_averages(tau: float, gain: float, d: float, period: float, u_blocks: list[float], y0: float, sub: int = 2000) -> np.ndarray:
    """Exact block averages of ``tau dy/dt = -y + gain u + d`` with *u* held over each block
    (closed form per block: the average of an exponential approach)."""
    out, y = [], y0
    a = math.exp(-period / tau)
    for u in u_blocks:
        y_inf = gain * u + d
        out.append(y_inf + (y - y_inf) * (1 - a) * tau / period)
        y = y_inf + (y - y_inf) * a
    return np.array(out)


def test_effective_inputs_make_the_block_average_recursion_exact() -> None:
    """A first-order lag's block averages under a stepping input are exactly the ARX model run on
    the effective inputs (the raw inputs put each step half a period late: errors of ~K du T / 2 tau)."""
    tau, gain, d, T = 260.0, 0.43, 20.0, 10.0
    a = math.exp(-T / tau)
    theta = np.array([[a, gain * (1 - a), d * (1 - a)]])
    u = [40.0] * 30 + [100.0] * 3 + [25.0] * 8  # steps at block boundaries
    y = _block_averages(tau, gain, d, T, u, y0=gain * 40.0 + d)
    k = 32  # last complete block: the 100 % input has run for 3 blocks (k-2..k)
    yh = np.array([[y[k]]])
    uh = np.array([[u[k]]])
    u_next = np.array([u[k + 1]])  # the running block's average input
    u_now = np.array([u[k + 2]])  # held after it
    uh_e, uf = effective_inputs(uh, u_next, u_now, direct_share(theta[:, 0]), 6)
    mean, _ = arx_simulate(theta, np.zeros((1, 3, 3)), yh, uh_e, uf, np.array([0.0]))
    assert mean[0] == pytest.approx(y[k + 1 : k + 7], abs=1e-9)
    raw, _ = arx_simulate(theta, np.zeros((1, 3, 3)), yh, uh, np.array([[u[k + 1]] + [u[k + 2]] * 5]), np.array([0.0]))
    assert np.max(np.abs(raw[0] - y[k + 1 : k + 7])) > 0.3  # the 75 % step down, half a period late


def test_effective_inputs_mix_each_block_with_its_successor() -> None:
    uh = np.array([[3.0, 2.0, 1.0], [5.0, np.nan, 7.0]])
    uh_e, uf = effective_inputs(uh, np.array([4.0, 6.0]), np.array([8.0, 6.0]), np.array([0.25, 0.5]), 3)
    assert uh_e[0] == pytest.approx([3.25, 2.25, 1.25])
    assert uh_e[1, 0] == pytest.approx(5.5) and np.isnan(uh_e[1, 1]) and uh_e[1, 2] == 7.0  # a NaN successor leaves the block's own
    assert uf[0] == pytest.approx([5.0, 8.0, 8.0])
    assert uf[1] == pytest.approx([6.0, 6.0, 6.0])
    assert effective_inputs(uh, np.array([4.0, 6.0]), np.array([8.0, 6.0]), np.zeros(2), 3)[0] == pytest.approx(uh, nan_ok=True)


def test_the_ring_scores_forecasts_made_with_the_input_as_it_stayed_and_tells_the_regime() -> None:
    """Horizon 2 periods of 4 ticks: the step regime lasts 8 ticks after an input change; a
    forecast overtaken by a later change is not scored; a later forecast for the same block replaces it."""
    ring = ForecastRing(2, np.array([2, 2]), 4)
    ring.note_input(np.array([1.0, 1.0]), 1)
    assert ring.in_step(8).tolist() == [True, True] and ring.in_step(9).tolist() == [False, False]
    ring.note_input(np.array([1.0, 1.0]), 12)
    assert ring.in_step(12).tolist() == [False, False]
    # block 3 starts at tick 12: forecasts for block 4, sd 0.5
    ring.record(np.array([True, True]), 3, 12, np.array([10.0, 20.0]), np.array([0.5, 0.5]), np.array([False, True]))
    ring.note_input(np.array([1.0, 2.0]), 14)  # channel 1's input steps: its forecast is overtaken
    z, scored, moving, step = ring.due(4, np.array([11.0, 21.0]))
    assert z == pytest.approx([2.0, 2.0])
    assert scored.tolist() == [True, False] and moving.tolist() == [False, True] and step.tolist() == [False, False]
    assert not ring.due(4, np.array([11.0, 21.0]))[1].any()  # freed
    # a forecast on the tick of the change, and one replacing it in the same block
    ring.record(np.array([False, True]), 3, 14, np.array([0.0, 30.0]), np.array([1.0, 1.0]), np.array([False, False]))
    ring.record(np.array([False, True]), 3, 15, np.array([0.0, 22.0]), np.array([1.0, 1.0]), np.array([False, False]))
    z, scored, _, step = ring.due(4, np.array([0.0, 21.0]))
    assert scored.tolist() == [False, True] and z[1] == pytest.approx(1.0) and step[1]
    ring.reset(1)
    assert not ring.in_step(15)[1]


def test_each_regime_calibrates_its_own_quantile() -> None:
    """Misses in the step regime widen only the step quantile; steady misses widen the steady
    quantile, and kappa too when the output moves; a hit narrows a little (5 % target)."""
    g = ModelGuard(3, 1, 3, np.zeros(3), np.full(3, 100.0), np.full(3, 0.1))
    use = np.ones(3, dtype=bool)
    g.calibrate(np.array([3.0, 3.0, 3.0]), use, np.array([False, True, False]), np.array([False, False, True]))
    up = math.exp(0.1 * 0.95)
    assert g.quantile == pytest.approx([Z95 * up, Z95 * up, Z95])
    assert g.kappa == pytest.approx([KAPPA0, KAPPA0 * up, KAPPA0])
    assert g.step_quantile == pytest.approx([Z95, Z95, Z95 * up])
    assert g.quantiles(np.array([True, True, True])) == pytest.approx(g.step_quantile)
    g.calibrate(np.array([0.0, 0.0, 0.0]), use, np.zeros(3, dtype=bool), np.array([True, True, True]))
    assert g.step_quantile == pytest.approx([Z95 * math.exp(-0.005), Z95 * math.exp(-0.005), Z95 * up * math.exp(-0.005)])
    g.calibrate(np.array([9.0, np.nan, 9.0]), np.array([False, True, True]), np.zeros(3, dtype=bool), None)  # not used, no error, steady
    assert g.quantile == pytest.approx([Z95 * up, Z95 * up, Z95 * up])
