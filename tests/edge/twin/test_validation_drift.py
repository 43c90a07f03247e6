"""The drift test's ramp view and the stuck test's fails-to-follow form (edge.twin.validation), on
synthetic readings with known answers: a first-order process settling after input moves, with
noise and quantisation, and the same with a drifting or a disconnected sensor."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.twin.validation import RampTest, SignalValidator, ValidationParams, fails_to_follow
from edge.twin.validation.drift import half_slopes, ramp_rate

TICK = 0.5
PARAMS = ValidationParams(learn_s=60.0)


def process(
    rng: np.random.Generator,
    seconds: float,
    tau: float,
    moves: list[tuple[float, float]],
    drift_per_min: float = 0.0,
    drift_at: float = 0.0,
    sigma: float = 0.1,
) -> list[float]:
    """Readings of ``tau dT/dt = T_eq - T`` (exact per tick), quantised to 0.1, starting settled
    at 40; *moves*: (time s, new T_eq); a sensor drift of *drift_per_min* from *drift_at*."""
    t_eq, temp, out = 40.0, 40.0, []
    pending = sorted(moves)
    a = math.exp(-TICK / tau)
    for k in range(int(seconds / TICK)):
        t = k * TICK
        while pending and pending[0][0] <= t:
            t_eq = pending.pop(0)[1]
        temp = t_eq + (temp - t_eq) * a
        z = temp + rng.normal(0, sigma) + drift_per_min / 60.0 * max(0.0, t - drift_at)
        out.append(round(z * 10) / 10)
    return out


def first_flag(test: RampTest, readings: list[float], noise_var: float = 0.01) -> float | None:
    """The time (s) the ramp test first sees a drift, None when never."""
    for k, z in enumerate(readings):
        if test.add(z, noise_var):
            return (k + 1) * TICK
    return None


def ramp() -> RampTest:
    return RampTest(TICK, PARAMS.drift_window_s, PARAMS.drift_tau_s, PARAMS.drift_min_rate)


# -- the estimate itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("means", "s1", "s2"),
    [([0, 1, 2, 3, 4, 5], 0.1, 0.1), ([0, 0, 0, 1, 2, 3], 0.0, 0.1), ([5, 5, 5, 5, 5, 5], 0.0, 0.0)],
)
def test_half_slopes_table(means: list[float], s1: float, s2: float) -> None:
    assert half_slopes([float(m) for m in means], 10.0) == pytest.approx((s1, s2))


@given(st.floats(-2.0, 2.0), st.floats(-30.0, 30.0), st.floats(20.0, 300.0))
def test_the_rate_of_a_ramp_on_a_settling_response_is_the_ramp(rate_per_min: float, size: float, tau: float) -> None:
    """A settling response with the assumed time constant plus a ramp: d is the ramp's rate."""
    t = np.arange(18) * 10.0
    means = 40 + size * np.exp(-t / tau) + rate_per_min / 60 * t
    assert ramp_rate(means.tolist(), 10.0, tau) * 60 == pytest.approx(rate_per_min, abs=1e-6)


@given(st.floats(-30.0, 30.0).filter(lambda s: abs(s) > 1e-3), st.floats(10.0, 300.0))
def test_a_settling_response_never_reads_as_a_ramp_the_way_it_moves(size: float, tau: float) -> None:
    """With a time constant up to the assumed one, d is against the motion (or nil)."""
    t = np.arange(18) * 10.0
    means = 40 + size * np.exp(-t / tau)
    d = ramp_rate(means.tolist(), 10.0, 300.0)
    s2 = half_slopes(means.tolist(), 10.0)[1]
    assert d * s2 <= 1e-12


# -- the ramp test on readings ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.5, -0.5, 1.0, -1.5, 0.35])
def test_a_drift_at_a_steady_operating_point_is_flagged_within_4_minutes(rate: float) -> None:
    """Inputs held, the process settled: a drift flags within about a window and a half of its
    onset whatever its rate (its start must leave the window before the shape is clean), so a
    drift of 0.5/min before it reaches 2.5."""
    rng = np.random.default_rng(11)
    test = ramp()
    readings = process(rng, 1200.0, 250.0, [], rate, drift_at=300.0)
    t = first_flag(test, readings)
    assert t is not None and 300.0 < t <= 300.0 + 240.0
    if abs(rate) <= 0.5:
        assert abs(rate) * (t - 300.0) / 60 < 2.5


def test_a_drift_during_a_settling_response_is_flagged() -> None:
    rng = np.random.default_rng(12)
    readings = process(rng, 1200.0, 250.0, [(200.0, 55.0)], 0.5, drift_at=300.0)
    t = first_flag(ramp(), readings)
    assert t is not None and 0.5 * (t - 300.0) / 60 < 2.5


def test_a_move_of_the_known_input_suspends_the_ramp_view_for_a_window() -> None:
    """A ramp of heater steps (each answered by the process) is not a drift: the same readings
    flag without the input's moves and do not with them."""
    rng = np.random.default_rng(20)
    moves = [(float(t), 40.0 + 0.02 * t) for t in np.arange(100.0, 1500.0, 30.0)]  # a staircase: 0.6/min
    readings = process(rng, 1500.0, 20.0, moves)
    assert first_flag(ramp(), readings) is not None
    test = ramp()
    times = {round(t / TICK) for t, _ in moves}
    flagged = False
    for k, z in enumerate(readings):
        if k in times:
            test.input_moved()
        flagged = flagged or test.add(z, 0.01)
    assert not flagged


def test_a_drift_below_the_smallest_rate_is_not_flagged() -> None:
    rng = np.random.default_rng(13)
    assert first_flag(ramp(), process(rng, 1800.0, 250.0, [], 0.15)) is None


def told_flag(readings: list[float], moves: list[tuple[float, float]]) -> float | None:
    """``first_flag`` with the ramp view told of each move (as the hook tells it of the model's input)."""
    test = ramp()
    times = {round(t / TICK) for t, _ in moves}
    for k, z in enumerate(readings):
        if k in times:
            test.input_moved()
        if test.add(z, 0.01):
            return (k + 1) * TICK
    return None


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31), st.floats(30.0, 300.0), st.floats(60.0, 300.0))
def test_settling_after_random_moves_it_is_told_of_never_flags(seed: int, tau: float, spacing: float) -> None:
    """Normal operation: moves of the steady value by up to 25 units every *spacing* s, the process
    settling with any time constant up to drift_tau_s, each move told (a setpoint of the model's
    input): no flag in 40 minutes. Moves it is not told of (pump, valve) can read as a ramp now and
    then (seed 7056677, tau 266 s, a move every 239 s: a flag at 2340 s; about 4 per day on the
    simulated plant): the balance view judges signals that have one."""
    rng = np.random.default_rng(seed)
    moves = [(float(t), float(rng.uniform(25, 75))) for t in np.arange(spacing, 2400.0, spacing)]
    assert told_flag(process(rng, 2400.0, tau, moves), moves) is None


def test_an_untold_move_can_read_as_a_ramp() -> None:
    """The counterexample above, untold: the ramp view's known false flag (why it is paused on
    the moves it is told of, and why a signal with a balance view is judged by that)."""
    rng = np.random.default_rng(7056677)
    moves = [(float(t), float(rng.uniform(25, 75))) for t in np.arange(239.0, 2400.0, 239.0)]
    readings = process(rng, 2400.0, 266.0, moves)
    assert first_flag(ramp(), readings) == 2340.0
    assert told_flag(readings, moves) is None


def test_a_slow_ambient_swing_is_not_a_drift() -> None:
    """A 2-unit swing over an hour (the plant room's HVAC cycle) moves at 0.2 units/min at most."""
    rng = np.random.default_rng(14)
    test = ramp()
    t = np.arange(0, 3600.0, TICK)
    readings = (40 + 2 * np.sin(2 * np.pi * t / 3600) + rng.normal(0, 0.1, t.size)).round(1)
    assert first_flag(test, readings.tolist()) is None


def test_held_back_readings_and_gaps_do_not_make_a_ramp() -> None:
    rng = np.random.default_rng(15)
    test = ramp()
    readings = process(rng, 1200.0, 250.0, [(100.0, 60.0)])
    assert all(not test.add(None if k % 3 == 0 else z, 0.01) for k, z in enumerate(readings))


def test_ramp_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RampTest(TICK, 180.0, 0.0, 0.3)


# -- the validator: the ramp view raises "drift", only for a signal with a ramp test ------------------


def validator(ramp_on: bool = True) -> SignalValidator:
    return SignalValidator("temperature", PARAMS, 0.1, TICK, -20.0, ramp=ramp_on)


def kinds(v: SignalValidator, readings: list[float]) -> list[tuple[float, str]]:
    out = []
    for z in readings:
        v.advance(TICK)
        v.observe(z)
        out.append((v.now, v.kind))
    return out


def test_the_validator_flags_a_drift_without_an_identified_model() -> None:
    """No model period ever (the model never saw an input move): the ramp view flags it, names it
    "drift", and the reading is no longer trusted."""
    rng = np.random.default_rng(16)
    v = validator()
    rows = kinds(v, process(rng, 1500.0, 250.0, [], 0.5, drift_at=600.0))
    t = next(t for t, k in rows if k == "drift")
    assert 0.5 * (t - 600.0) / 60 < 2.5
    assert not v.trusted
    assert all(k == "" for t, k in rows if t < 600.0)


def test_without_the_ramp_test_a_signal_is_not_judged_by_its_shape() -> None:
    """The level of a tank (an integrator) ramps for as long as in and out flows differ."""
    rng = np.random.default_rng(17)
    v = validator(ramp_on=False)
    assert all(k == "" for _, k in kinds(v, process(rng, 1500.0, 250.0, [], 0.5, drift_at=600.0)))


# -- stuck: fails to follow a predicted move -------------------------------------------------------


FLAT = [40.0, 40.02, 39.98, 40.01, 40.0, 39.99, 40.02, 39.98, 40.01, 40.0, 39.99]
STEP = [0.0] * 6 + [0.3, 0.6, 0.9, 1.2, 1.5]  # the model's forced response: an input step at the middle
RISING = [40.0 + 0.3 * k for k in range(6)] + [41.5] * 5  # rising, then flat when the input steps down


@pytest.mark.parametrize(
    ("means", "forced", "expected"),
    [
        (FLAT, STEP, True),  # flat before and after a predicted bend of 1.5
        (FLAT[:6] + [40.0 + x for x in STEP[6:]], STEP, False),  # follows
        (FLAT[:6] + [40.0 + x / 3 for x in STEP[6:]], STEP, False),  # follows a third of it
        (FLAT, [x / 3 for x in STEP], False),  # too small a bend to judge (0.5, 5 sigma)
        (FLAT, [-x for x in STEP], True),  # down
        (RISING, [-x for x in STEP], False),  # a rise stopped by a step down: bent as predicted
        ([*FLAT[:5], math.nan, *FLAT[6:]], STEP, False),  # a gap: no verdict
        (FLAT[:10], STEP[:10], False),  # not two look-backs sharing their middle
        ([40.0], [1.5], False),
    ],
)
def test_fails_to_follow_table(means: list[float], forced: list[float], expected: bool) -> None:
    assert fails_to_follow(means, forced, 0.1, 6.0) is expected


A, B, C = 0.96, 0.02, 0.8  # y[k] = A y[k-1] + B u[k-1] + C: gain 0.5, time constant ~245 s at 10 s


def run_model(v: SignalValidator, rng: np.random.Generator, inputs: list[float], stuck_from: int | None = None) -> list[tuple[int, str]]:
    """Model periods of the first-order process (10 s, 20 ticks each) under *inputs*; from period
    *stuck_from* the reading keeps its noise but no longer follows the process."""
    y = 40.0
    out = []
    frozen = math.nan
    for k, u in enumerate(inputs):
        y = A * y + B * (inputs[k - 1] if k else u) + C
        if stuck_from is not None and k == stuck_from:
            frozen = y
        true = frozen if stuck_from is not None and k >= stuck_from else y
        means = []
        for _ in range(20):
            z = round((true + rng.normal(0, 0.1)) * 10) / 10
            v.advance(TICK)
            v.observe(z)
            means.append(z)
        v.model_period(float(np.mean(means)), u, [A, B, C], (1, 1, 1), 12, 0.02**2, 10.0)
        out.append((k, v.kind))
    return out


def test_a_reading_that_does_not_follow_an_input_step_is_stuck_within_60_s() -> None:
    """The sensor keeps its noise but lost the process; a heater step of 30 % predicts a move of
    several degrees: "stuck" within 60 s of the step."""
    rng = np.random.default_rng(18)
    v = SignalValidator("temperature", PARAMS, 0.1, TICK)
    inputs = [40.0 + 30.0 * ((k // 30) % 2) for k in range(120)] + [40.0] * 10 + [70.0] * 20
    rows = run_model(v, rng, inputs, stuck_from=125)
    assert all(kind == "" for k, kind in rows if k < 125)
    first = next(k for k, kind in rows if kind == "stuck")
    assert (first - 130) * 10.0 <= 60.0


def test_a_reading_that_follows_its_input_steps_is_never_stuck() -> None:
    rng = np.random.default_rng(19)
    v = SignalValidator("temperature", PARAMS, 0.1, TICK)
    inputs = [40.0 + 30.0 * ((k // 30) % 2) for k in range(400)]
    assert all(kind == "" for _, kind in run_model(v, rng, inputs))


def test_the_validator_suspends_its_ramp_view_when_the_models_input_moves() -> None:
    """The twin tells the validator the identified model's input each tick (``observe_input``)."""
    rng = np.random.default_rng(21)
    moves = [(float(t), 40.0 + 0.02 * t) for t in np.arange(100.0, 1500.0, 30.0)]
    readings = process(rng, 1500.0, 20.0, moves)
    told, untold = validator(), validator()
    flagged = {"told": False, "untold": False}
    for k, z in enumerate(readings):
        heater = 40.0 + sum(1 for t, _ in moves if t <= k * TICK)
        for name, v in (("told", told), ("untold", untold)):
            v.advance(TICK)
            if name == "told":
                v.observe_input(heater)
            v.observe(z)
            flagged[name] = flagged[name] or v.kind == "drift"
    assert flagged == {"told": False, "untold": True}
