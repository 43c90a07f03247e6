"""Sensor validation per signal (edge.twin.validation): each test on tables and properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.twin.validation import KINDS, SignalValidator, ValidationParams

TICK = 0.5
PARAMS = ValidationParams(learn_s=60.0)


def quantised(x: float, q: float = 0.1) -> float:
    return round(x / q) * q


def learnt(rng: np.random.Generator, *, level: float = 20.0, sigma: float = 0.1, seconds: float = 120.0, low: float = -20.0) -> SignalValidator:
    """A validator that has learnt *seconds* of a noisy, quantised, healthy reading."""
    v = SignalValidator("temperature", PARAMS, sigma, TICK, low)
    for _ in range(int(seconds / TICK)):
        v.advance(TICK)
        assert v.observe(quantised(level + rng.normal(0, sigma)))
    assert v.warm and v.kind == ""
    return v


def feed(v: SignalValidator, values: list[float]) -> list[tuple[float, bool, str]]:
    """(time, accepted, kind) after each reading."""
    out = []
    for z in values:
        v.advance(TICK)
        out.append((v.now, v.observe(z), v.kind))
    return out


def first(rows: list[tuple[float, bool, str]], kind: str) -> float | None:
    return next((t for t, _, k in rows if k == kind), None)


# -- stuck ---------------------------------------------------------------------------------------


def test_a_flat_lined_reading_is_stuck_within_60_s() -> None:
    rng = np.random.default_rng(1)
    v = learnt(rng)
    t0 = v.now
    rows = feed(v, [20.3] * 240)
    t = first(rows, "stuck")
    assert t is not None and t - t0 <= 60.0
    assert not v.trusted


def test_stuck_clears_when_the_reading_moves_again_after_the_hold() -> None:
    rng = np.random.default_rng(2)
    v = learnt(rng)
    feed(v, [20.3] * 120)
    assert v.kind == "stuck"
    rows = feed(v, [quantised(20 + rng.normal(0, 0.1)) for _ in range(int(2 * PARAMS.hold_s / TICK))])
    assert rows[-1][2] == ""
    assert v.trusted


def test_a_reading_pinned_at_the_low_limit_is_not_a_flat_line() -> None:
    """A stopped drive or a meter below its low-flow cutoff reports exactly its low limit."""
    rng = np.random.default_rng(3)
    v = learnt(rng, level=20.0, sigma=0.2, low=0.0)
    rows = feed(v, [0.0] * 400)
    assert all(k != "stuck" for _, _, k in rows)


def test_a_signal_that_is_flat_in_normal_operation_is_not_tested() -> None:
    v = SignalValidator("setpoint_echo", PARAMS, 0.1, TICK)
    for _ in range(2000):
        v.advance(TICK)
        v.observe(50.0)
    assert v.kind == ""


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.05, 0.1]))
def test_healthy_noise_never_flags(seed: int, quantum: float) -> None:
    """White noise (float or quantised at up to one sigma) raises no flag and is always accepted."""
    rng = np.random.default_rng(seed)
    v = SignalValidator("s", PARAMS, 0.1, TICK)
    for _ in range(1500):
        z = 20 + rng.normal(0, 0.1)
        v.advance(TICK)
        assert v.observe(quantised(z, quantum) if quantum else z)
        assert v.kind == ""


# -- spike ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2.0, -5.0, 50.0])
def test_an_isolated_outlier_is_a_spike_and_never_accepted(size: float) -> None:
    rng = np.random.default_rng(4)
    v = learnt(rng)
    rows = feed(v, [20.0, 20.0 + size, 20.1, 20.0])
    assert [a for _, a, _ in rows] == [True, False, True, True]
    assert rows[2][2] == "spike"
    assert not v.trusted


def test_a_step_of_the_process_is_not_a_spike() -> None:
    """Held back once, then accepted when the next reading confirms the new level."""
    rng = np.random.default_rng(5)
    v = learnt(rng)
    rows = feed(v, [20.0, 25.0, 25.1, 25.0, 24.9])
    assert [a for _, a, _ in rows] == [True, False, True, True, True]
    assert all(k == "" for _, _, k in rows)


def test_the_spike_flag_is_held_then_released() -> None:
    rng = np.random.default_rng(6)
    v = learnt(rng)
    feed(v, [20.0, 30.0, 20.0])
    assert v.kind == "spike"
    rows = feed(v, [quantised(20 + rng.normal(0, 0.1)) for _ in range(int(PARAMS.hold_s / TICK) + 2)])
    assert rows[-1][2] == ""


# -- drift (against the identified model) ---------------------------------------------------------

A, B, C = 0.96, 0.02, 0.8  # y[k] = A y[k-1] + B u[k-1] + C: gain 0.5, time constant ~245 s at 10 s


def model_run(
    v: SignalValidator, periods: int, rng: np.random.Generator, drift_per_period: float = 0.0, start: int = 0, steps: bool = True
) -> list[tuple[int, str]]:
    """Feed *periods* model periods of a first-order process, the input stepping every 5 min
    (or held); (period, kind)."""
    out = []
    y = v._sim_y if hasattr(v, "_sim_y") else 40.0  # type: ignore[attr-defined]
    u = v._sim_u if hasattr(v, "_sim_u") else 40.0  # type: ignore[attr-defined]
    for k in range(start, start + periods):
        if steps:
            u = 40.0 + 30.0 * ((k // 30) % 2)
        y = A * y + B * u + C
        reading = y + rng.normal(0, 0.02) + drift_per_period * max(0, k - start)
        for _ in range(20):  # 20 ticks per 10 s model period
            v.advance(TICK)
        v.model_period(reading, u, [A, B, C], (1, 1, 1), 12, 0.02**2)
        out.append((k, v.kind))
    v._sim_y, v._sim_u = y, u  # type: ignore[attr-defined]
    return out


def test_a_drift_of_half_a_degree_per_minute_is_flagged_before_2_5_degC() -> None:
    """With the heater held (the drift starts 5 min after the last step)."""
    rng = np.random.default_rng(7)
    v = SignalValidator("temperature", PARAMS, 0.1, TICK)
    v.learnt = 10**6  # the readings' own tests have learnt
    normal = model_run(v, 120, rng)
    assert all(k == "" for _, k in normal)
    model_run(v, 30, rng, steps=False, start=120)
    rate = 0.5 / 6  # degC per 10 s period
    rows = model_run(v, 60, rng, rate, start=150, steps=False)
    k = next(k for k, kind in rows if kind == "drift")
    assert (k - 150) * rate < 2.5


def test_input_moves_the_model_explains_are_not_a_drift() -> None:
    rng = np.random.default_rng(8)
    v = SignalValidator("temperature", PARAMS, 0.1, TICK)
    v.learnt = 10**6
    assert all(kind == "" for _, kind in model_run(v, 400, rng))


# -- contradiction (redundancy) -------------------------------------------------------------------


def redundant(v: SignalValidator, rng: np.random.Generator, n: int, offset: float = 0.0, only_first: bool = False) -> list[str]:
    """flow = 40 s, current = 0.1 + 0.9 s^2 (both scaled 0..1), s stepping through operating points."""
    kinds = []
    for k in range(n):
        s = 0.3 + 0.1 * ((k // 200) % 6)
        flow = 40 * s + rng.normal(0, 0.2)
        x_cur, x_speed = 0.1 + 0.9 * s * s + rng.normal(0, 0.002), s + rng.normal(0, 0.001)
        if only_first:
            x_cur += offset / 40  # the current moved, not the flow
            z = flow
        else:
            z = flow + offset
        v.advance(TICK)
        v.observe(z)
        v.check_related(z, [x_cur, x_speed])
        kinds.append(v.kind)
    return kinds


def test_a_flow_that_contradicts_current_and_speed_is_flagged() -> None:
    rng = np.random.default_rng(9)
    v = SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0)
    assert set(redundant(v, rng, 2400)) == {""}
    kinds = redundant(v, rng, 200, offset=-5.0)
    assert "contradiction" in kinds[:20]


def test_disagreeing_with_one_related_signal_only_is_not_a_contradiction() -> None:
    """A worn bearing draws more current at the same flow and speed: the flow is not at fault."""
    rng = np.random.default_rng(10)
    v = SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0)
    redundant(v, rng, 2400)
    assert set(redundant(v, rng, 600, offset=5.0, only_first=True)) == {""}


def test_no_verdict_where_the_redundancy_model_has_not_learnt() -> None:
    rng = np.random.default_rng(11)
    v = SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0)
    redundant(v, rng, 1200)  # operating points 0.3 .. 0.8
    for _ in range(40):  # a new operating point far outside, with a flow the old fit does not predict
        z = 5.0 + rng.normal(0, 0.2)
        v.advance(TICK)
        v.observe(z)
        v.check_related(z, [0.05, 0.02])
    assert v.kind == ""


# -- kinds, trust and saved state -------------------------------------------------------------------


def test_flags_name_the_kinds_in_order() -> None:
    rng = np.random.default_rng(12)
    v = learnt(rng)
    feed(v, [20.0, 30.0, 20.0])
    feed(v, [20.0] * 60)
    assert v.flags == ["stuck", "spike"] and v.kind == "stuck"
    assert set(v.flags) <= set(KINDS)


def test_nothing_is_flagged_before_the_signal_has_learnt() -> None:
    v = SignalValidator("s", PARAMS, 0.1, TICK)
    rows = feed(v, [20.0] * int(PARAMS.learn_s / TICK / 2))
    assert all(k == "" for _, _, k in rows)


def test_export_restore_round_trip_through_json() -> None:
    rng = np.random.default_rng(13)
    v = SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0)
    redundant(v, rng, 800)
    doc = json.loads(json.dumps(v.export()))
    w = SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0)
    w.restore(doc)
    assert w.export() == v.export()
    assert w.related[0].residual(20.0, 0.3) == v.related[0].residual(20.0, 0.3)


@pytest.mark.parametrize(
    "change",
    [
        {"noise_var": -1.0},
        {"p_flat": 2.0},
        {"learnt": "x"},
        {"related": []},
        {"noise_var": None},
    ],
)
def test_restore_refuses_a_state_that_does_not_fit(change: dict[str, object]) -> None:
    v = SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0)
    doc = {**v.export(), **change}
    with pytest.raises(ValueError):
        SignalValidator("flow", PARAMS, 0.2, TICK, 0.0, 2, 200.0).restore(doc)


def test_the_prior_noise_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SignalValidator("s", PARAMS, 0.0, TICK)
    assert math.isnan(SignalValidator("s", PARAMS, 0.1, TICK).resid_var)
