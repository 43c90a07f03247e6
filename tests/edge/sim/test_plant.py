"""Physics of the simulated heated tank (edge.sim.plant), checked against closed forms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sim.plant import SIGNALS, Fault, Plant, PlantParams, Setpoints, parse_fault, steady_state

# No ambient swing, so the thermal model is a plain first-order lag.
FLAT = PlantParams(ambient_amplitude_c=0.0)


def run(plant: Plant, seconds: float, dt_s: float = 1.0) -> list[dict[str, float]]:
    """Step *plant* for *seconds* and return the readings taken after every step."""
    out = []
    for _ in range(round(seconds / dt_s)):
        plant.step(dt_s)
        out.append(plant.measurements())
    return out


# ---------------------------------------------------------------- temperature
@pytest.mark.parametrize("dt_s", [0.05, 0.1, 0.37, 1.0, 7.5])
def test_temperature_step_reaches_63_percent_after_one_tau(dt_s: float) -> None:
    """With no inflow, a heater step gives T = T_amb + K*u*(1 - exp(-t/tau)) for any dt."""
    p = FLAT
    plant = Plant(p, setpoints=Setpoints(heater_pct=0.0, pump_enable=False), temp_c=p.ambient_mean_c)
    plant.heater_pct = 50.0
    n = round(p.temp_tau_s / dt_s)
    for _ in range(n):
        plant.step(dt_s)
    t = n * dt_s
    gain = p.heater_gain_c_per_pct * 50.0
    expected = p.ambient_mean_c + gain * (1.0 - math.exp(-t / p.temp_tau_s))
    assert plant.temp_c == pytest.approx(expected, rel=1e-9)
    if t == p.temp_tau_s:
        assert (plant.temp_c - p.ambient_mean_c) / gain == pytest.approx(1.0 - math.exp(-1.0), rel=1e-9)


def test_temperature_settles_at_ambient_plus_gain_times_heater() -> None:
    p = FLAT
    plant = Plant(p, setpoints=Setpoints(heater_pct=80.0, pump_enable=False), temp_c=p.ambient_mean_c)
    plant.step(20 * p.temp_tau_s)
    assert plant.temp_c == pytest.approx(p.ambient_mean_c + p.heater_gain_c_per_pct * 80.0, abs=1e-3)


def test_disabled_heater_adds_no_heat() -> None:
    p = FLAT
    plant = Plant(p, setpoints=Setpoints(heater_pct=100.0, heater_enable=False, pump_enable=False), temp_c=50.0)
    plant.step(20 * p.temp_tau_s)
    assert plant.temp_c == pytest.approx(p.ambient_mean_c, abs=1e-3)
    assert not plant.heater_on


def test_cold_inflow_cools_a_little() -> None:
    """Mixing with 15 degC inflow lowers the steady temperature by a few kelvin, not tens."""
    p = FLAT
    no_flow = steady_state(p, Setpoints(pump_enable=False, valve_pct=0.0))
    with_flow = steady_state(p, Setpoints())
    assert 1.0 < no_flow.temp_c - with_flow.temp_c < 6.0
    # and the dynamic model settles at the same point
    plant = Plant(p, temp_c=no_flow.temp_c)
    plant.step(4 * 3600.0)
    assert plant.temp_c == pytest.approx(with_flow.temp_c, abs=1e-3)


def test_ambient_is_a_slow_sinusoid() -> None:
    p = PlantParams()
    plant = Plant(p)
    assert plant.ambient_c(0.0) == pytest.approx(p.ambient_mean_c)
    assert plant.ambient_c(p.ambient_period_s / 4) == pytest.approx(p.ambient_mean_c + p.ambient_amplitude_c)
    assert plant.ambient_c(3 * p.ambient_period_s / 4) == pytest.approx(p.ambient_mean_c - p.ambient_amplitude_c)


# ---------------------------------------------------------------------- level
def _torricelli_level_pct(p: PlantParams, pump_pct: float, valve_pct: float) -> float:
    """Closed form of q_in == q_out: pump_max*pump = valve_coeff*valve*sqrt(level)."""
    q_in = p.pump_max_flow_l_min * pump_pct / 100.0
    q_full_open = p.valve_coeff_l_min * valve_pct / 100.0
    return 100.0 * (q_in / q_full_open) ** 2


@pytest.mark.parametrize("start_pct", [5.0, 95.0])
@pytest.mark.parametrize(("pump_pct", "valve_pct"), [(50.0, 50.0), (30.0, 80.0), (90.0, 100.0)])
def test_level_converges_where_inflow_equals_outflow(start_pct: float, pump_pct: float, valve_pct: float) -> None:
    p = PlantParams(tank_capacity_l=200.0, max_substep_s=0.5)  # smaller tank: shorter time constant
    plant = Plant(p, setpoints=Setpoints(pump_speed_pct=pump_pct, valve_pct=valve_pct), level_pct=start_pct)
    plant.step(3 * 3600.0)
    expected = _torricelli_level_pct(p, pump_pct, valve_pct)
    assert plant.level_pct == pytest.approx(expected, abs=0.05)
    outflow_l_min = p.valve_coeff_l_min * valve_pct / 100.0 * math.sqrt(plant.level_pct / 100.0)
    assert plant.true_values()["flow_l_min"] == pytest.approx(outflow_l_min, rel=1e-3)


def test_default_plant_starts_at_its_steady_state() -> None:
    p = PlantParams()
    plant = Plant(p)
    assert plant.level_pct == pytest.approx(_torricelli_level_pct(p, 50.0, 50.0))
    before = plant.true_values()
    plant.step(60.0)
    after = plant.true_values()
    assert after["level_pct"] == pytest.approx(before["level_pct"], abs=1e-9)
    assert after["flow_l_min"] == pytest.approx(20.0)


def test_tank_overflows_at_100_percent_and_empties_to_0() -> None:
    full = Plant(setpoints=Setpoints(pump_speed_pct=100.0, valve_pct=0.0), level_pct=85.0)
    full.step(3600.0)
    assert full.level_pct == 100.0
    assert full.high_level and not full.low_level

    empty = Plant(setpoints=Setpoints(pump_enable=False, valve_pct=100.0), level_pct=15.0)
    empty.step(6 * 3600.0)
    assert 0.0 <= empty.level_pct < 0.1
    assert empty.low_level and not empty.high_level


def test_pump_ramps_and_totalisers_count() -> None:
    p = PlantParams()
    plant = Plant(p, setpoints=Setpoints(pump_enable=False))
    assert plant.rpm == 0.0 and not plant.pump_running
    plant.pump_enable = True
    plant.pump_speed_pct = 100.0
    plant.step(p.pump_tau_s)
    assert plant.rpm == pytest.approx(p.pump_rated_rpm * (1 - math.exp(-1)), rel=1e-9)
    plant.step(60.0)
    tv = plant.true_values()
    assert tv["flow_l_min"] == pytest.approx(p.pump_max_flow_l_min, rel=1e-6)
    assert tv["pump_runtime_s"] == pytest.approx(60.0 + p.pump_tau_s, abs=0.2)
    # pumped volume ~ integral of the ramping inflow
    assert tv["pumped_volume_l"] == pytest.approx(p.pump_max_flow_l_min * (61.5 - p.pump_tau_s) / 60.0, rel=0.01)
    # current and vibration grow with speed (quadratic load)
    assert tv["motor_current_a"] == pytest.approx(p.motor_rated_current_a, rel=1e-6)
    assert tv["vibration_mm_s"] == pytest.approx(p.vibration_floor_mm_s + p.vibration_rated_mm_s, rel=1e-6)


def test_stopped_pump_reads_zero_speed_and_flow() -> None:
    plant = Plant(setpoints=Setpoints(pump_enable=False))
    m = plant.measurements()
    assert m["pump_speed_rpm"] == 0.0
    assert m["flow_l_min"] == 0.0
    assert m["vibration_mm_s"] >= 0.0 and m["motor_current_a"] >= 0.0


# ---------------------------------------------------------------------- faults
def _paired(fault: Fault, seconds: float, seed: int = 7) -> tuple[Plant, Plant, list, list]:
    """A healthy and a faulty plant with the same seed, fault injected at t=0."""
    healthy, faulty = Plant(seed=seed), Plant(seed=seed)
    faulty.fault = fault
    return healthy, faulty, run(healthy, seconds), run(faulty, seconds)


def test_bearing_wear_raises_vibration_and_current_at_the_documented_rate() -> None:
    p = PlantParams()
    _, faulty, hm, fm = _paired(Fault.BEARING_WEAR, 60.0)
    s = faulty.rpm / p.pump_rated_rpm  # 0.5 at the default setpoint
    for k, (h, f) in enumerate(zip(hm, fm, strict=True)):
        minutes = (k + 1) / 60.0
        assert f["vibration_mm_s"] - h["vibration_mm_s"] == pytest.approx(p.bearing_vibration_rate_mm_s_per_min * minutes * s, abs=1e-9)
        assert f["motor_current_a"] - h["motor_current_a"] == pytest.approx(p.bearing_current_rate_a_per_min * minutes * s, abs=1e-9)
        for name in SIGNALS:
            if name not in ("vibration_mm_s", "motor_current_a"):
                assert f[name] == h[name], name
    # detectable against the noise within a minute, but not instantly
    last30 = [m["vibration_mm_s"] for m in fm[30:]]
    base = p.vibration_floor_mm_s + p.vibration_rated_mm_s * s * s
    assert sum(last30) / len(last30) - base > 10 * p.vibration_noise_mm_s
    assert fm[0]["vibration_mm_s"] - hm[0]["vibration_mm_s"] < p.vibration_noise_mm_s


def test_fault_growth_saturates() -> None:
    p = PlantParams(fault_saturation_s=120.0)
    plant = Plant(p, fault=Fault.BEARING_WEAR)
    plant.step(120.0)
    at_saturation = plant.true_values()["vibration_mm_s"]
    plant.step(600.0)
    assert plant.true_values()["vibration_mm_s"] == pytest.approx(at_saturation)


def test_sensor_drift_offsets_only_the_temperature_reading() -> None:
    p = PlantParams()
    healthy, faulty, hm, fm = _paired(Fault.SENSOR_DRIFT, 60.0)
    for k, (h, f) in enumerate(zip(hm, fm, strict=True)):
        minutes = (k + 1) / 60.0
        drift = p.sensor_drift_rate_c_per_min * minutes
        assert f["tank_temp_c"] - h["tank_temp_c"] == pytest.approx(drift, abs=1e-9)
        others = [n for n in SIGNALS if n != "tank_temp_c"]
        assert [f[n] for n in others] == [h[n] for n in others]
    assert faulty.temp_c == healthy.temp_c  # the process is untouched; only the sensor lies


def test_stuck_sensor_repeats_its_last_reading() -> None:
    plant = Plant(seed=3)
    run(plant, 10.0)
    last = plant.measurements()["tank_temp_c"]
    plant.fault = Fault.STUCK_SENSOR
    plant.heater_pct = 100.0  # the true temperature climbs
    readings = run(plant, 120.0)
    assert {m["tank_temp_c"] for m in readings} == {last}
    assert plant.temp_c > last + 2.0
    plant.fault = Fault.NONE
    assert plant.measurements()["tank_temp_c"] == pytest.approx(plant.temp_c, abs=5 * plant.params.temp_noise_c)


def test_flow_sensor_failure_loses_the_flow_reading_only() -> None:
    healthy, faulty, hm, fm = _paired(Fault.FLOW_SENSOR, 30.0)
    assert all(h["flow_l_min"] > 5.0 for h in hm)
    assert all(f["flow_l_min"] == 0.0 for f in fm)  # below the meter's cutoff
    others = [n for n in SIGNALS if n != "flow_l_min"]
    assert [[f[n] for n in others] for f in fm] == [[h[n] for n in others] for h in hm]
    assert faulty.true_values()["flow_l_min"] == healthy.true_values()["flow_l_min"]


def test_flow_sensor_failure_strength_scales_the_loss() -> None:
    plant = Plant(seed=5, fault=Fault.FLOW_SENSOR, fault_strength=0.25)
    readings = run(plant, 60.0)
    true = plant.true_values()["flow_l_min"]
    mean = sum(m["flow_l_min"] for m in readings) / len(readings)
    assert mean == pytest.approx(0.75 * true, abs=0.1)


def test_spikes_hit_the_temperature_reading_only_now_and_then() -> None:
    p = PlantParams(spike_probability=0.1, spike_size_c=5.0)
    healthy, faulty = Plant(p, seed=9), Plant(p, seed=9, fault=Fault.SPIKE, fault_strength=2.0)
    hm, fm = run(healthy, 600.0), run(faulty, 600.0)
    jumps = [f["tank_temp_c"] - h["tank_temp_c"] for h, f in zip(hm, fm, strict=True)]
    spikes = [j for j in jumps if j != 0.0]
    assert 30 < len(spikes) < 90  # about 10 % of 600 readings
    assert all(abs(j) == pytest.approx(10.0) for j in spikes)
    assert any(j > 0 for j in spikes) and any(j < 0 for j in spikes)
    assert [h["flow_l_min"] for h in hm] == [f["flow_l_min"] for f in fm]


def test_fault_strength_scales_the_drift_rate_and_is_checked() -> None:
    plant = Plant(PlantParams(ambient_amplitude_c=0.0), fault=Fault.SENSOR_DRIFT, fault_strength=0.5)
    ref = Plant(PlantParams(ambient_amplitude_c=0.0))
    plant.step(120.0)
    ref.step(120.0)
    assert plant.measurements()["tank_temp_c"] - ref.measurements()["tank_temp_c"] == pytest.approx(1.0, abs=1e-9)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="fault_strength"):
            plant.fault_strength = bad
    with pytest.raises(ValueError, match="flow_sensor_loss"):
        PlantParams(flow_sensor_loss=1.5)


def test_fault_onset_is_kept_when_the_same_fault_is_set_again() -> None:
    plant = Plant(fault=Fault.BEARING_WEAR)
    plant.step(30.0)
    plant.fault = Fault.BEARING_WEAR
    assert plant.fault_onset_s == 0.0
    plant.fault = Fault.SENSOR_DRIFT
    assert plant.fault_onset_s == pytest.approx(30.0)
    assert plant.fault_active


def test_parse_fault_accepts_cli_spellings() -> None:
    assert parse_fault("bearing_wear") is Fault.BEARING_WEAR
    assert parse_fault("Sensor-Drift") is Fault.SENSOR_DRIFT
    assert parse_fault("none") is Fault.NONE
    with pytest.raises(ValueError, match="known faults: none, bearing_wear, sensor_drift, stuck_sensor, flow_sensor, spike"):
        parse_fault("bearing")


# --------------------------------------------------------- noise, determinism
def test_same_seed_gives_identical_readings_and_other_seeds_differ() -> None:
    a, b, c = Plant(seed=42), Plant(seed=42), Plant(seed=43)
    ra, rb, rc = run(a, 30.0), run(b, 30.0), run(c, 30.0)
    assert ra == rb
    assert ra != rc


def test_noise_has_the_documented_sigma() -> None:
    p = PlantParams()
    plant = Plant(p, seed=11)
    temps = [plant.measurements()["tank_temp_c"] - plant.temp_c for _ in range(4000)]
    mean = sum(temps) / len(temps)
    sigma = math.sqrt(sum((x - mean) ** 2 for x in temps) / (len(temps) - 1))
    assert abs(mean) < 0.01
    assert sigma == pytest.approx(p.temp_noise_c, rel=0.05)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("name", ["heater_pct", "pump_speed_pct", "valve_pct"])
@pytest.mark.parametrize("value", [-0.1, 100.1, float("nan")])
def test_out_of_range_setpoints_are_rejected_not_clamped(name: str, value: float) -> None:
    plant = Plant()
    before = getattr(plant, name)
    with pytest.raises(ValueError, match=name):
        setattr(plant, name, value)
    assert getattr(plant, name) == before


def test_invalid_params_list_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        PlantParams(temp_tau_s=0.0, temp_noise_c=-1.0)
    assert "temp_tau_s" in str(info.value) and "temp_noise_c" in str(info.value)


def test_step_rejects_negative_or_nan_dt() -> None:
    plant = Plant()
    for dt in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            plant.step(dt)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(0.0, 5.0),  # dt_s
            st.floats(0.0, 100.0),  # heater
            st.floats(0.0, 100.0),  # pump
            st.floats(0.0, 100.0),  # valve
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    ),
    level=st.floats(0.0, 100.0),
)
def test_state_stays_physical_for_any_setpoint_sequence(steps, level) -> None:
    p = PlantParams()
    plant = Plant(p, level_pct=level)
    t_hi = p.ambient_mean_c + p.ambient_amplitude_c + p.heater_gain_c_per_pct * 100.0
    t_lo = min(p.inlet_temp_c, p.ambient_mean_c - p.ambient_amplitude_c)
    for dt, heater, pump, valve, pump_en, heater_en in steps:
        plant.apply(Setpoints(heater, pump, valve, pump_en, heater_en))
        plant.step(dt)
        assert 0.0 <= plant.level_pct <= 100.0
        assert t_lo - 1e-9 <= plant.temp_c <= t_hi + 1e-9
        assert 0.0 <= plant.rpm <= p.pump_rated_rpm + 1e-9
        assert all(math.isfinite(v) for v in plant.measurements().values())
