"""The drift test's balance view (edge.twin.validation.balance) on the seeded simulated plant:
setpoint moves of heater, pump and valve are explained by the heat balance and never flag; a
sensor drift of 0.5 degC/min is flagged before it reaches 2.5 degC, during moves and at a steady
operating point; the mixing term is what explains the pump and valve moves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.sim.plant import Fault, Plant, random_move
from edge.twin.validation import BalanceTest, SignalValidator, ValidationParams
from edge.twin.validation.balance import BALANCE_MIN_PERIODS

TICK = 0.5
SPANS = [100.0, 1.0, 100.0, 200.0, 100.0]  # heater %, heater enable, ambient (-40..60), flow l/min, level %
HEAT_BALANCE = [(0, 1, "*"), (2, None, ""), (3, 4, "/")]
NOISE_VAR = 0.01


def q(x: float, step: float) -> float:
    return round(x / step) * step


def readings(plant: Plant) -> tuple[float, list[float]]:
    """The temperature and the tags of the heat balance, as the demo's registers deliver them."""
    m = plant.measurements()
    return q(m["tank_temp_c"], 0.1), [
        q(plant.heater_pct, 0.1),
        float(plant.heater_enable),
        q(m["ambient_temp_c"], 0.1),
        m["flow_l_min"],
        q(m["level_pct"], 0.1),
    ]


def run(
    seed: int,
    minutes: float,
    terms: list[tuple[int, int | None, str]] = HEAT_BALANCE,
    drift_at_s: float = math.inf,
    moves_until_s: float = math.inf,
) -> tuple[BalanceTest, list[float], float]:
    """The plant with a random setpoint move every 60-300 s (until *moves_until_s*); returns the
    test, the times it raised a flag, and the largest |z| seen once it judged."""
    plant = Plant(seed=seed)
    rng = np.random.default_rng([seed, 7])
    bt = BalanceTest(TICK, terms, SPANS, 180.0, 5.0)
    t, next_move, raised, was, zmax = 0.0, 0.0, [], False, 0.0
    while t < minutes * 60:
        if t < moves_until_s and t >= next_move:
            next_move = t + rng.uniform(60, 300)
            random_move(plant, rng)
        if t >= drift_at_s and plant.fault is Fault.NONE:
            plant.fault_strength = 0.5
            plant.fault = Fault.SENSOR_DRIFT
        plant.step(TICK)
        t += TICK
        y, xs = readings(plant)
        seen = bt.add(y, xs, noise_var=NOISE_VAR)
        if seen and not was:
            raised.append(t)
        if bt.judging:
            zmax = max(zmax, abs(bt.z))
        was = seen
    return bt, raised, zmax


@pytest.mark.parametrize("seed", [11, 12])
def test_setpoint_moves_are_explained_and_never_flag(seed: int) -> None:
    bt, raised, _ = run(seed, 150.0)
    assert bt.judging and bt.learnt > 500
    assert raised == []


@pytest.mark.parametrize("seed", [41, 43, 47])
def test_large_steps_after_a_long_steady_spell_are_not_a_drift(seed: int) -> None:
    """40 minutes at one operating point, then heater 40 -> 100 %, the pump to 95 % and the valve
    to 30 %: each is a point the model has not seen (the mixing term was never excited), which it
    learns before it judges there (seed 43 flagged for 13 minutes after the pump step without that)."""
    plant = Plant(seed=seed)
    bt = BalanceTest(TICK, HEAT_BALANCE, SPANS, 180.0, 5.0)
    plant.heater_pct = 40.0
    steps = {40 * 60: ("heater_pct", 100.0), 55 * 60: ("pump_speed_pct", 95.0), 65 * 60: ("valve_pct", 30.0)}
    held = 0
    for k in range(int(80 * 60 / TICK)):
        if (k * TICK) in steps:
            setattr(plant, *steps[k * TICK])
        plant.step(TICK)
        y, xs = readings(plant)
        assert not bt.add(y, xs, noise_var=NOISE_VAR), k * TICK
        held += bt.hold > 0
    assert bt.judging and held > 0


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_a_drift_during_setpoint_moves_is_flagged_before_2_5_degC(seed: int) -> None:
    onset = 45 * 60.0
    _, raised, _ = run(seed, 60.0, drift_at_s=onset)
    assert raised and raised[0] > onset, raised
    assert (raised[0] - onset) / 60 * 0.5 < 2.5


def test_a_drift_at_a_steady_operating_point_is_flagged() -> None:
    onset = 60 * 60.0  # moves for 40 min, then every setpoint held
    _, raised, _ = run(31, 70.0, drift_at_s=onset, moves_until_s=40 * 60.0)
    assert raised and raised[0] > onset
    assert (raised[0] - onset) / 60 * 0.5 < 2.5


@pytest.mark.parametrize("seed", [12, 13, 14])
def test_the_mixing_term_explains_pump_and_valve_moves(seed: int) -> None:
    """Without ``flow / level`` the balance cannot explain a pump or valve move: the same normal
    operation swings its statistic further and raises flags."""
    _, raised, z_with = run(seed, 120.0)
    _, raised_without, z_without = run(seed, 120.0, terms=[(0, 1, "*"), (2, None, "")])
    assert raised == []
    assert raised_without and z_without > 1.5 * z_with


def test_a_gap_restarts_the_window() -> None:
    bt, _, _ = run(12, 20.0)
    assert bt.judging
    for _ in range(40):  # 20 s without a reading: two periods without a mean
        bt.add(None, [50.0, 1.0, 20.0, 60.0, 50.0], noise_var=NOISE_VAR)
    assert not bt.judging and not bt.seen


def test_a_period_with_a_step_of_a_tag_is_left_out() -> None:
    bt = BalanceTest(TICK, [(0, None, "")], [100.0], 60.0, 5.0)
    for k in range(120):  # two periods at 40 %, one with a step to 60 % in its middle, three at 60 %
        bt.add(20.0, [40.0 if k < 50 else 60.0])
    usable = [use for _, _, use in bt._win]  # the changes into periods 2..6
    assert usable == [True, False, False, False, True]  # the step's two periods, and the one after


def test_saved_state_round_trip_gives_the_same_verdicts() -> None:
    bt, _, _ = run(12, 30.0)
    doc = bt.export()
    back = BalanceTest(TICK, HEAT_BALANCE, SPANS, 180.0, 5.0)
    back.restore(doc)
    assert back.learnt == bt.learnt and np.array_equal(back.theta, bt.theta) and np.array_equal(back.cov, bt.cov)
    other = BalanceTest(TICK, [(2, None, "")], SPANS, 180.0, 5.0)
    with pytest.raises(ValueError, match="coefficients"):
        other.restore(doc)
    with pytest.raises(ValueError, match="bad balance state"):
        back.restore({"theta": []})


@pytest.mark.parametrize(
    ("terms", "spans"),
    [([], [1.0]), ([(1, None, "")], [1.0]), ([(0, 1, "")], [1.0, 1.0]), ([(0, None, "/")], [1.0]), ([(0, 1, "+")], [1.0, 1.0])],
)
def test_terms_must_name_known_tags_with_an_operator_for_two(terms, spans) -> None:
    with pytest.raises(ValueError):
        BalanceTest(TICK, terms, spans, 180.0, 5.0)


def test_the_validator_judges_drift_by_the_balance_once_it_judges() -> None:
    """A signal with a balance view: once it judges, the ramp and model views no longer raise
    the drift flag on their own (they are what flagged setpoint moves); before, they do."""
    bt = BalanceTest(TICK, HEAT_BALANCE, SPANS, 180.0, 5.0)
    v = SignalValidator("temperature", ValidationParams(learn_s=60.0), 0.1, TICK, ramp=True, balance=bt)
    v._drift_ramp = True
    v._see_drift()
    assert v.seen["drift"]  # the balance has not learnt: the ramp view judges
    plant = Plant(seed=12)
    rng = np.random.default_rng([12, 7])
    next_move = 0.0
    for k in range(int(20 * 60 / TICK)):
        if k * TICK >= next_move:
            next_move = k * TICK + rng.uniform(60, 300)
            random_move(plant, rng)
        plant.step(TICK)
        y, xs = readings(plant)
        v.observe(y)
        v.observe_balance(y, xs)
    assert bt.learnt >= BALANCE_MIN_PERIODS and bt.judging
    v._drift_ramp = True
    v._see_drift()
    assert not v.seen["drift"]
    assert v.export()["balance"]["learnt"] == bt.learnt
