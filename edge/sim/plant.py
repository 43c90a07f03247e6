"""Heated tank with a pump: the physics of the built-in simulated plant.

Pure: no I/O, no asyncio, no clock. Time advances only through ``Plant.step(dt_s)``.

State (true process values, noise free):

* ``rpm``: pump speed. First-order ramp towards the commanded speed,
  ``tau_pump * drpm/dt = rpm_cmd - rpm`` with ``rpm_cmd = rated_rpm * pump_speed_pct/100``
  (0 when the pump is disabled).
* ``volume_l``: water in the tank. Volume balance
  ``dV/dt = q_in - q_out`` with ``q_in = pump_max_flow * rpm/rated_rpm`` and the valve
  outflow ``q_out = valve_coeff * valve_pct/100 * sqrt(level)`` (Torricelli, level as a
  fraction). The tank overflows at ``capacity`` and cannot go below empty: those are physical
  limits of the state, not a clamp on a sensor.
* ``temp_c``: water temperature. First-order losses to ambient, heater, and mixing with the
  colder inflow::

      tau * dT/dt = -(T - T_amb) + K_heater * heater_pct        (heater term only when enabled)
              dT/dt += (q_in / V) * (T_in - T)                   (mixing)

  ``T_amb(t) = ambient_mean + ambient_amplitude * sin(2*pi*t / ambient_period)``.

Integration: ``step(dt_s)`` splits ``dt_s`` into sub-steps of at most ``max_substep_s``.
Within a sub-step the pump speed and the temperature use the exact exponential solution
(inputs held constant), and the volume uses a linearly implicit step, so the model is stable
for any ``dt_s``; the volume step has the exact steady state ``q_in == q_out``.

Sensor readings (``measurements()``) are the true values plus Gaussian noise with the sigmas
in ``PlantParams`` and the sensor faults (temperature: drift, stuck, spike; flow: a failed meter). ``true_values()`` returns
the same keys without noise and without sensor faults (bearing wear is physical, so it shows
up in both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import Fault, PlantParams, Setpoints, check_pct, parse_fault

__all__ = [
    "SIGNALS",
    "Fault",
    "Plant",
    "PlantParams",
    "Setpoints",
    "SteadyState",
    "parse_fault",
    "steady_state",
]

#: Keys of ``Plant.measurements()`` and ``Plant.true_values()``, in a fixed order.
SIGNALS: tuple[str, ...] = (
    "tank_temp_c",
    "ambient_temp_c",
    "level_pct",
    "pump_speed_rpm",
    "flow_l_min",
    "motor_current_a",
    "vibration_mm_s",
    "pump_runtime_s",
    "pumped_volume_l",
)


@dataclass(frozen=True, slots=True)
class SteadyState:
    """Equilibrium of the process for constant setpoints and ambient at its mean."""

    level_pct: float
    temp_c: float


def _inflow_l_s(params: PlantParams, rpm: float) -> float:
    return params.pump_max_flow_l_min / 60.0 * rpm / params.pump_rated_rpm


def _valve_k(params: PlantParams, valve_pct: float) -> float:
    """Outflow coefficient so that q_out = k * sqrt(V) in L/s."""
    return params.valve_coeff_l_min / 60.0 * valve_pct / 100.0 / math.sqrt(params.tank_capacity_l)


def steady_state(params: PlantParams, setpoints: Setpoints) -> SteadyState:
    """Return the equilibrium level and temperature for *setpoints*.

    Level: ``q_in = q_out`` gives ``level = (q_in / (valve_coeff * valve))^2``; with the
    valve closed and the pump running the tank sits at the overflow (100 %); with no inflow
    and an open valve it is empty; with neither the level is undetermined and 50 % is used.
    """
    rpm = params.pump_rated_rpm * setpoints.pump_speed_pct / 100.0 if setpoints.pump_enable else 0.0
    q_in = _inflow_l_s(params, rpm)
    q_full = params.valve_coeff_l_min / 60.0 * setpoints.valve_pct / 100.0
    if q_full > 0:
        level = min(1.0, (q_in / q_full) ** 2)
    else:
        level = 1.0 if q_in > 0 else 0.5
    volume = max(level * params.tank_capacity_l, params.min_mixing_volume_l)
    heat = params.heater_gain_c_per_pct * setpoints.heater_pct if setpoints.heater_enable else 0.0
    mix = params.temp_tau_s * q_in / volume
    temp = (params.ambient_mean_c + heat + mix * params.inlet_temp_c) / (1.0 + mix)
    return SteadyState(level_pct=100.0 * level, temp_c=temp)


class Plant:
    """The simulated heated tank. Mutate the setpoint attributes, call ``step``, read sensors."""

    def __init__(
        self,
        params: PlantParams | None = None,
        *,
        seed: int = 0,
        setpoints: Setpoints | None = None,
        fault: Fault = Fault.NONE,
        fault_strength: float = 1.0,
        level_pct: float | None = None,
        temp_c: float | None = None,
    ) -> None:
        """Build a plant at the steady state of *setpoints* unless *level_pct*/*temp_c* say otherwise."""
        self.params = params if params is not None else PlantParams()
        self._rng = np.random.default_rng(seed)
        # Faults draw from their own stream, so a fault never shifts the noise of the others.
        self._fault_rng = np.random.default_rng([seed, 1])
        sp = setpoints if setpoints is not None else Setpoints()
        self.apply(sp)
        eq = steady_state(self.params, sp)
        p = self.params
        self.t_s = 0.0
        self._rpm = p.pump_rated_rpm * sp.pump_speed_pct / 100.0 if sp.pump_enable else 0.0
        start_level = check_pct("level_pct", eq.level_pct if level_pct is None else level_pct)
        self._volume_l = p.tank_capacity_l * start_level / 100.0
        self._temp_c = float(eq.temp_c if temp_c is None else temp_c)
        if not math.isfinite(self._temp_c):
            raise ValueError(f"temp_c={temp_c!r} is not finite")
        self._runtime_s = 0.0
        self._pumped_l = 0.0
        self._fault = Fault.NONE
        self._fault_onset_s = 0.0
        self._stuck_temp_c = math.nan
        self._last_temp_reading_c: float | None = None
        self._fault_strength = 1.0
        self.fault_strength = fault_strength
        self.fault = fault

    # ----------------------------------------------------------------- setpoints
    @property
    def heater_pct(self) -> float:
        return self._heater_pct

    @heater_pct.setter
    def heater_pct(self, value: float) -> None:
        self._heater_pct = check_pct("heater_pct", value)

    @property
    def pump_speed_pct(self) -> float:
        return self._pump_speed_pct

    @pump_speed_pct.setter
    def pump_speed_pct(self, value: float) -> None:
        self._pump_speed_pct = check_pct("pump_speed_pct", value)

    @property
    def valve_pct(self) -> float:
        return self._valve_pct

    @valve_pct.setter
    def valve_pct(self, value: float) -> None:
        self._valve_pct = check_pct("valve_pct", value)

    # pump_enable / heater_enable are plain booleans
    pump_enable: bool
    heater_enable: bool

    def apply(self, setpoints: Setpoints) -> None:
        """Set all setpoint fields at once."""
        self.heater_pct = setpoints.heater_pct
        self.pump_speed_pct = setpoints.pump_speed_pct
        self.valve_pct = setpoints.valve_pct
        self.pump_enable = bool(setpoints.pump_enable)
        self.heater_enable = bool(setpoints.heater_enable)

    @property
    def setpoints(self) -> Setpoints:
        return Setpoints(
            heater_pct=self.heater_pct,
            pump_speed_pct=self.pump_speed_pct,
            valve_pct=self.valve_pct,
            pump_enable=self.pump_enable,
            heater_enable=self.heater_enable,
        )

    # -------------------------------------------------------------------- faults
    @property
    def fault(self) -> Fault:
        return self._fault

    @fault.setter
    def fault(self, value: Fault) -> None:
        """Change the fault mode; the onset (sim time) is recorded only on a change."""
        value = Fault(value)
        if value is self._fault:
            return
        self._fault = value
        self._fault_onset_s = self.t_s
        if value is Fault.STUCK_SENSOR:
            # A stuck transmitter keeps repeating the last value it sent.
            last = self._last_temp_reading_c
            self._stuck_temp_c = self._temp_c if last is None else last

    @property
    def fault_strength(self) -> float:
        """Scale of the fault's effect (1 = the rates in PlantParams): rates, spike size, flow loss."""
        return self._fault_strength

    @fault_strength.setter
    def fault_strength(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"fault_strength={value!r} must be finite and >= 0")
        self._fault_strength = value

    @property
    def fault_onset_s(self) -> float:
        """Sim time at which the current fault started (meaningless for Fault.NONE)."""
        return self._fault_onset_s

    def _fault_minutes(self) -> float:
        """Minutes of fault growth so far, held at fault_saturation_s, times the fault strength."""
        if self._fault is Fault.NONE:
            return 0.0
        return self._fault_strength * min(self.t_s - self._fault_onset_s, self.params.fault_saturation_s) / 60.0

    # ------------------------------------------------------------------- physics
    def ambient_c(self, t_s: float | None = None) -> float:
        p = self.params
        t = self.t_s if t_s is None else t_s
        return p.ambient_mean_c + p.ambient_amplitude_c * math.sin(2.0 * math.pi * t / p.ambient_period_s)

    def step(self, dt_s: float) -> None:
        """Advance the process by *dt_s* seconds of sim time."""
        if not (math.isfinite(dt_s) and dt_s >= 0):
            raise ValueError(f"dt_s={dt_s!r} must be finite and >= 0")
        if dt_s == 0:
            return
        n = max(1, math.ceil(dt_s / self.params.max_substep_s - 1e-9))
        h = dt_s / n
        for _ in range(n):
            self._substep(h)

    def _substep(self, h: float) -> None:
        p = self.params
        # Pump speed: exact first-order ramp.
        rpm_cmd = p.pump_rated_rpm * self._pump_speed_pct / 100.0 if self.pump_enable else 0.0
        self._rpm = rpm_cmd + (self._rpm - rpm_cmd) * math.exp(-h / p.pump_tau_s)
        q_in = _inflow_l_s(p, self._rpm)  # L/s

        # Volume: linearly implicit Torricelli outflow, q_out ~ k*V_new/sqrt(V_old).
        k = _valve_k(p, self._valve_pct)
        v_old = self._volume_l
        denom = 1.0 + h * k / math.sqrt(max(v_old, 1e-9))
        v_new = (v_old + h * q_in) / denom
        self._volume_l = min(v_new, p.tank_capacity_l)  # excess leaves by the overflow

        # Temperature: exact exponential with inputs held over the sub-step.
        t_amb = self.ambient_c(self.t_s + 0.5 * h)
        heat = p.heater_gain_c_per_pct * self._heater_pct if self.heater_enable else 0.0
        mix_rate = q_in / max(self._volume_l, p.min_mixing_volume_l)  # 1/s
        a = 1.0 / p.temp_tau_s + mix_rate
        t_eq = ((t_amb + heat) / p.temp_tau_s + mix_rate * p.inlet_temp_c) / a
        self._temp_c = t_eq + (self._temp_c - t_eq) * math.exp(-a * h)

        # Totalisers.
        if self._rpm > p.pump_running_rpm:
            self._runtime_s += h
        self._pumped_l += q_in * h
        self.t_s += h

    # ----------------------------------------------------------------- readings
    @property
    def level_pct(self) -> float:
        return 100.0 * self._volume_l / self.params.tank_capacity_l

    @property
    def temp_c(self) -> float:
        return self._temp_c

    @property
    def rpm(self) -> float:
        return self._rpm

    @property
    def pump_running(self) -> bool:
        return self._rpm > self.params.pump_running_rpm

    @property
    def heater_on(self) -> bool:
        return self.heater_enable and self._heater_pct > 0.0

    @property
    def fault_active(self) -> bool:
        return self._fault is not Fault.NONE

    @property
    def high_level(self) -> bool:
        return self.level_pct > self.params.high_level_pct

    @property
    def low_level(self) -> bool:
        return self.level_pct < self.params.low_level_pct

    def true_values(self) -> dict[str, float]:
        """Noise-free process values (bearing wear included, sensor faults excluded)."""
        p = self.params
        s = self._rpm / p.pump_rated_rpm
        wear_min = self._fault_minutes() if self._fault is Fault.BEARING_WEAR else 0.0
        current = p.motor_noload_current_a * s + (p.motor_rated_current_a - p.motor_noload_current_a) * s * s + p.bearing_current_rate_a_per_min * wear_min * s
        vibration = p.vibration_floor_mm_s + p.vibration_rated_mm_s * s * s + p.bearing_vibration_rate_mm_s_per_min * wear_min * s
        return {
            "tank_temp_c": self._temp_c,
            "ambient_temp_c": self.ambient_c(),
            "level_pct": self.level_pct,
            "pump_speed_rpm": self._rpm,
            "flow_l_min": 60.0 * _inflow_l_s(p, self._rpm),
            "motor_current_a": current,
            "vibration_mm_s": vibration,
            "pump_runtime_s": self._runtime_s,
            "pumped_volume_l": self._pumped_l,
        }

    def measurements(self) -> dict[str, float]:
        """Sensor readings: true values + Gaussian noise + sensor faults.

        Exactly seven normal deviates are drawn per call whatever the fault, so for a given
        seed a fault changes only the signals it acts on.
        """
        p = self.params
        true = self.true_values()
        n = self._rng.standard_normal(7).tolist()

        temp = true["tank_temp_c"] + p.temp_noise_c * n[0]
        if self._fault is Fault.SENSOR_DRIFT:
            temp += p.sensor_drift_rate_c_per_min * self._fault_minutes()
        elif self._fault is Fault.STUCK_SENSOR:
            temp = self._stuck_temp_c
        elif self._fault is Fault.SPIKE:
            u, sign = self._fault_rng.random(2).tolist()
            if u < p.spike_probability:
                temp += (1.0 if sign < 0.5 else -1.0) * p.spike_size_c * self._fault_strength
        self._last_temp_reading_c = temp

        running = self.pump_running
        flow_true = true["flow_l_min"]
        if self._fault is Fault.FLOW_SENSOR:
            flow_true *= 1.0 - min(1.0, p.flow_sensor_loss * self._fault_strength)
        flow = flow_true + p.flow_noise_l_min * n[4] if flow_true >= p.flow_cutoff_l_min else 0.0
        return {
            "tank_temp_c": temp,
            "ambient_temp_c": true["ambient_temp_c"] + p.ambient_noise_c * n[1],
            "level_pct": true["level_pct"] + p.level_noise_pct * n[2],
            "pump_speed_rpm": true["pump_speed_rpm"] + p.speed_noise_rpm * n[3] if running else 0.0,
            "flow_l_min": flow,
            # RMS readings are magnitudes.
            "motor_current_a": abs(true["motor_current_a"] + p.current_noise_a * n[5]),
            "vibration_mm_s": abs(true["vibration_mm_s"] + p.vibration_noise_mm_s * n[6]),
            "pump_runtime_s": true["pump_runtime_s"],
            "pumped_volume_l": true["pumped_volume_l"],
        }


def random_move(plant: Plant, rng: np.random.Generator) -> str:
    """One setpoint move of normal operation, as the benchmarks make them: the heater (half the
    time, 10-90 %), the pump (30-100 %) or the inlet valve (30-80 %). Returns which one moved."""
    r = rng.random()
    if r < 0.5:
        plant.heater_pct = float(rng.uniform(10, 90))
        return "heater"
    if r < 0.8:
        plant.pump_speed_pct = float(rng.uniform(30, 100))
        return "pump"
    plant.valve_pct = float(rng.uniform(30, 80))
    return "valve"
