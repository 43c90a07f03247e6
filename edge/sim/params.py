"""Parameters, setpoints and fault modes of the simulated plant (pure data, validated)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields

__all__ = ["Fault", "PlantParams", "Setpoints", "check_pct", "parse_fault"]


def check_pct(name: str, value: float) -> float:
    """Return *value* as float if it lies in 0..100, else raise ValueError naming *name*."""
    value = float(value)
    if not 0.0 <= value <= 100.0:  # also rejects NaN
        raise ValueError(f"{name}={value!r} is outside 0..100 %")
    return value


class Fault(enum.IntEnum):
    """Injectable fault modes. The values are the ones written to holding register 10."""

    NONE = 0
    BEARING_WEAR = 1
    SENSOR_DRIFT = 2
    STUCK_SENSOR = 3
    FLOW_SENSOR = 4
    SPIKE = 5


def parse_fault(text: str) -> Fault:
    """Return the fault named *text* (``"bearing_wear"``, ``"bearing-wear"``, ``"none"``...)."""
    key = text.strip().upper().replace("-", "_")
    try:
        return Fault[key]
    except KeyError:
        known = ", ".join(f.name.lower() for f in Fault)
        raise ValueError(f"unknown fault {text!r}; known faults: {known}") from None


@dataclass(frozen=True, slots=True)
class PlantParams:
    """Physical constants, sensor noise and fault rates of the simulated plant.

    Every field carries its unit in its name. Defaults describe a 1 m3 heated buffer tank
    with a small centrifugal pump on a variable speed drive.
    """

    # --- tank and hydraulics
    tank_capacity_l: float = 1000.0  # volume at 100 % level (overflow edge), L
    pump_max_flow_l_min: float = 40.0  # inflow at 100 % pump speed, L/min
    valve_coeff_l_min: float = 50.0  # outflow with the valve 100 % open and a full tank, L/min
    # --- pump and motor
    pump_rated_rpm: float = 1450.0  # speed at 100 % setpoint (4-pole motor at 50 Hz), rpm
    pump_tau_s: float = 1.5  # speed ramp time constant of drive + inertia, s
    pump_running_rpm: float = 10.0  # above this speed the pump counts as running, rpm
    motor_noload_current_a: float = 1.2  # linear (magnetising/friction) part at rated speed, A
    motor_rated_current_a: float = 6.5  # total current at rated speed, healthy, A
    vibration_floor_mm_s: float = 0.1  # background vibration with the pump stopped, mm/s RMS
    vibration_rated_mm_s: float = 1.4  # speed-dependent part at rated speed (~ speed^2), mm/s RMS
    # --- thermal
    temp_tau_s: float = 300.0  # time constant of the losses to ambient, s
    heater_gain_c_per_pct: float = 0.5  # steady rise over ambient per % heater (no flow), K/%
    inlet_temp_c: float = 15.0  # temperature of the pumped-in water, degC
    ambient_mean_c: float = 20.0  # mean plant-room temperature, degC
    ambient_amplitude_c: float = 2.0  # amplitude of the slow ambient sinusoid, K
    ambient_period_s: float = 3600.0  # period of the ambient sinusoid (HVAC cycle), s
    min_mixing_volume_l: float = 1.0  # floor of V in the mixing term, keeps q/V finite when empty, L
    # --- sensor noise (1 sigma, Gaussian)
    temp_noise_c: float = 0.1
    ambient_noise_c: float = 0.1
    level_noise_pct: float = 0.2
    speed_noise_rpm: float = 2.0  # only while running; a stopped drive reports exactly 0
    flow_noise_l_min: float = 0.2
    flow_cutoff_l_min: float = 0.2  # flowmeter low-flow cutoff: below it the meter reports 0
    current_noise_a: float = 0.05
    vibration_noise_mm_s: float = 0.03
    # --- alarms (level switches act on the true level)
    high_level_pct: float = 90.0
    low_level_pct: float = 10.0
    # --- faults: linear growth from onset, at rated speed, held after fault_saturation_s
    bearing_vibration_rate_mm_s_per_min: float = 1.0  # extra vibration per minute of wear (x speed fraction)
    bearing_current_rate_a_per_min: float = 0.3  # extra current per minute of wear (x speed fraction)
    sensor_drift_rate_c_per_min: float = 1.0  # temperature reading offset growth
    flow_sensor_loss: float = 1.0  # failed flowmeter: share of the true flow it stops reporting (1 = reads 0)
    spike_size_c: float = 5.0  # spike fault: size of one spike on the temperature reading, K
    spike_probability: float = 0.02  # spike fault: chance that a temperature reading is a spike
    fault_saturation_s: float = 1200.0  # fault severity stops growing after this sim time
    # --- numerics
    max_substep_s: float = 0.1  # longest internal integration step, s

    def __post_init__(self) -> None:
        problems: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value):
                problems.append(f"{f.name}={value!r} is not finite")
        positive = (
            "tank_capacity_l",
            "pump_max_flow_l_min",
            "valve_coeff_l_min",
            "pump_rated_rpm",
            "pump_tau_s",
            "temp_tau_s",
            "ambient_period_s",
            "min_mixing_volume_l",
            "max_substep_s",
            "fault_saturation_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)!r} must be > 0")
        non_negative = (
            "pump_running_rpm",
            "motor_noload_current_a",
            "vibration_floor_mm_s",
            "vibration_rated_mm_s",
            "heater_gain_c_per_pct",
            "ambient_amplitude_c",
            "temp_noise_c",
            "ambient_noise_c",
            "level_noise_pct",
            "speed_noise_rpm",
            "flow_noise_l_min",
            "flow_cutoff_l_min",
            "current_noise_a",
            "vibration_noise_mm_s",
            "bearing_vibration_rate_mm_s_per_min",
            "bearing_current_rate_a_per_min",
            "sensor_drift_rate_c_per_min",
            "spike_size_c",
        )
        for name in non_negative:
            if not getattr(self, name) >= 0:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 0")
        if not self.motor_rated_current_a >= self.motor_noload_current_a:
            problems.append("motor_rated_current_a must be >= motor_noload_current_a")
        if not 0 <= self.low_level_pct < self.high_level_pct <= 100:
            problems.append("need 0 <= low_level_pct < high_level_pct <= 100")
        for name in ("flow_sensor_loss", "spike_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)!r} must be within 0..1")
        if problems:
            raise ValueError("invalid PlantParams: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Setpoints:
    """What the operator (or a Modbus client) commands. Percentages are 0..100."""

    heater_pct: float = 40.0
    pump_speed_pct: float = 50.0
    valve_pct: float = 50.0
    pump_enable: bool = True
    heater_enable: bool = True

    def __post_init__(self) -> None:
        for name in ("heater_pct", "pump_speed_pct", "valve_pct"):
            check_pct(name, getattr(self, name))
