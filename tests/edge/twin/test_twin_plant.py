"""The demo twin on the built-in plant (edge.sim.twin_rig: pure physics, simulated time): the asset
alarm releases soon after a fault clears and clearing raises none, a heater step within the
identified range raises none, a sensor drift does not train the model, and the forecast interval
covers about 95 %, also right after a setpoint step (seeded)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from edge.sim.params import Fault, PlantParams
from edge.sim.twin_rig import TwinRig, make_rig

K = "tank1.temperature.model_"


def _alarm_trace(rig: TwinRig, seconds: float) -> list[bool]:
    out = []
    for _ in range(round(seconds / rig.tick_s)):
        rig.tick()
        out.append(rig.alarm)
    return out


def _raised(trace: list[bool], was: bool) -> int:
    return sum(on and not prev for prev, on in zip([was, *trace], trace))


def test_a_flow_fault_alarms_throughout_and_releases_within_60_s_without_a_new_alarm() -> None:
    """The flowmeter reads 0 for 3 min: the alarm holds all along (the flow's filter adapts to the
    0 within seconds, but it stays away from its pre-fault value), releases within 60 s of the
    recovery, and the jump back raises no alarm afterwards."""
    rig = make_rig(seed=3)
    rig.run(120.0)
    assert not rig.alarm
    rig.flow_fault = True
    during = _alarm_trace(rig, 180.0)
    assert all(during[10:])  # on within 5 s and held through the fault
    rig.flow_fault = False
    after = _alarm_trace(rig, 300.0)
    released = after.index(False) * rig.tick_s
    assert released <= 60.0
    assert _raised(after, was=True) == 0


@pytest.fixture(scope="module")
def identified() -> TwinRig:
    """The demo twin after an hour of random heater steps (20..100 %)."""
    rig = make_rig(seed=5, params=PlantParams(sensor_drift_rate_c_per_min=0.5))
    rng = np.random.default_rng(11)
    t = 0.0
    while t < 3600.0:
        rig.plant.heater_pct = float(rng.uniform(20, 100))
        dwell = float(rng.uniform(120, 600))
        rig.run(dwell)
        t += dwell
    assert rig.twin.model_groups[0].warm[0]
    return rig


@pytest.mark.slow
def test_a_heater_step_within_the_identified_range_raises_no_alarm(identified: TwinRig) -> None:
    """40 -> 100 % moves the temperature by ~25 K; the model predicts it, so no anomaly."""
    rig = copy.deepcopy(identified)
    g = rig.twin.model_groups[0].guard
    assert g.seen_lo[0] <= 40.0 and g.seen_hi[0] >= 95.0
    rig.plant.heater_pct = 40.0
    rig.run(600.0)
    assert not rig.alarm
    rig.plant.heater_pct = 100.0
    assert _raised(_alarm_trace(rig, 600.0), was=False) == 0


@pytest.mark.slow
def test_a_drifting_sensor_does_not_train_the_model(identified: TwinRig) -> None:
    """+0.5 degC/min for 10 min raises the asset alarm, which holds the identification: gain and
    time constant end the drift within 10 % of the model before it (without the hold they end
    20..40 % off), and 10 min after it, learning again, within 15 % (the model's own wander under
    the plant room's temperature swing)."""
    rig = copy.deepcopy(identified)
    g0, t0 = rig.value(K + "gain"), rig.value(K + "time_constant")
    rig.plant.fault = Fault.SENSOR_DRIFT
    trace = _alarm_trace(rig, 600.0)
    assert sum(trace) > len(trace) / 2
    assert rig.value(K + "gain") == pytest.approx(g0, rel=0.10)
    assert rig.value(K + "time_constant") == pytest.approx(t0, rel=0.10)
    rig.plant.fault = Fault.NONE
    rig.run(600.0)
    assert rig.value(K + "gain") == pytest.approx(g0, rel=0.15)
    assert rig.value(K + "time_constant") == pytest.approx(t0, rel=0.15)


@pytest.mark.slow
def test_the_95_percent_forecast_interval_covers_about_95_percent_also_right_after_a_step(identified: TwinRig) -> None:
    """Over an hour of random heater steps, forecasts with the input then held cover their block
    average 91..99 % of the time (nominal 95 %; seeded plant and steps): those made at period
    boundaries, and separately those made less than a horizon (60 s) after a setpoint step,
    including the ones published on the tick of the step."""
    rig = copy.deepcopy(identified)
    g = rig.twin.model_groups[0]
    m, h = g.period_ticks, int(g.horizons[0])
    rng = np.random.default_rng(2)
    readings: dict[int, float] = {}
    made: list[tuple[int, int, float, float]] = []  # (tick made, target block, low, high)
    step_ticks: list[int] = []
    next_step = rig.plant.t_s + 300.0
    for _ in range(round(3600.0 / rig.tick_s)):
        if rig.plant.t_s >= next_step:
            rig.plant.heater_pct = float(rng.uniform(20, 100))
            next_step += float(rng.uniform(120, 600))
            step_ticks.append(rig.ticks + 1)
        out = {s.tag: s.value for s in rig.tick()}
        readings[rig.ticks] = float(rig.reg.latest("tank1_plc.temperature").value)  # type: ignore[arg-type]
        if out.get(K + "forecast") is not None:
            made.append((rig.ticks, rig.ticks // m + h - 1, float(out[K + "forecast_low"]), float(out[K + "forecast_high"])))  # type: ignore[arg-type]
    steps = np.array(step_ticks)
    boundary, after_step = [], []
    for made_at, target, lo, hi in made:
        ticks = range(target * m + 1, (target + 1) * m + 1)
        if all(t in readings for t in ticks) and not np.any((steps > made_at) & (steps <= ticks[-1])):
            y = float(np.mean([readings[t] for t in ticks]))
            if made_at % m == 0:
                boundary.append(lo <= y <= hi)
            if np.any((steps <= made_at) & (steps > made_at - h * m)):
                after_step.append(lo <= y <= hi)
    assert len(boundary) > 200 and len(after_step) > 50
    assert 0.91 <= np.mean(boundary) <= 0.99
    assert 0.91 <= np.mean(after_step) <= 0.99, len(after_step)
