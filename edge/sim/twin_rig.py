"""The built-in plant wired straight to a twin, in simulated time (no sockets, no clock).

``TwinRig`` steps ``edge.sim.plant.Plant`` one twin tick at a time, publishes its sensor readings
(quantised like the Modbus registers of ``edge.sim.registers``) as the demo's device tags, ticks a
``TwinRunner`` built from the demo's ``tank1`` asset and keeps the twin's latest outputs. The
benchmarks (``benchmarks/bench_twin_model.py``) and the twin tests use it to measure the twin
against the plant's truth; the live gateway never imports it.

A failed flowmeter (``flow_fault``) is injected here: the reading drops to 0 L/min while the pump
runs (a broken transmitter loop). The plant's own faults (``Plant.fault``) act as documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from drivers.sample import Status, TagSample
from edge.config import AssetConfig, SignalConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.sim.params import PlantParams, Setpoints
from edge.sim.plant import Plant
from edge.twin.runner import TwinRunner, signal_infos

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = "tank1_plc"
# (tag, plant signal, units, low, high, register resolution)
TAGS = (
    ("temperature", "tank_temp_c", "degC", -20.0, 150.0, 0.1),
    ("level", "level_pct", "%", 0.0, 100.0, 0.1),
    ("flow", "flow_l_min", "l/min", None, None, 0.0),
    ("motor_current", "motor_current_a", "A", None, None, 0.0),
    ("vibration", "vibration_mm_s", "mm/s", None, None, 0.0),
)
HEATER_TAG = f"{DEVICE}.heater_setpoint"


def demo_asset(**changes: object) -> AssetConfig:
    """The demo's ``tank1`` asset (config/demo.toml), with *changes* applied."""

    def sig(name: str, model: str, q: float, r: float, horizon: float, **extra: object) -> SignalConfig:
        return SignalConfig(
            name=name,
            tag=f"{DEVICE}.{name}",
            model=model,
            process_noise=q,
            measurement_noise=r,
            forecast_horizon_s=horizon,
            **extra,  # type: ignore[arg-type]
        )

    signals = [
        sig("temperature", "constant_velocity", 1e-4, 0.1, 60.0, input=HEATER_TAG, input_model="fopdt", model_period_s=10.0, forgetting=0.998),
        sig("level", "constant_velocity", 1e-4, 0.2, 60.0),
        sig("flow", "random_walk", 1e-3, 0.2, 10.0),
        sig("motor_current", "random_walk", 1e-7, 0.05, 10.0),
        sig("vibration", "random_walk", 1e-7, 0.03, 10.0),
    ]
    base: dict[str, object] = {"name": "tank1", "tick_s": 0.5, "score_alpha": 0.05, "alarm_threshold": 9.0, "warmup_ticks": 20, "signals": signals}
    return AssetConfig(**{**base, **changes})  # type: ignore[arg-type]


def registry_for(asset: AssetConfig) -> TagRegistry:
    reg = TagRegistry()
    for name, _, units, low, high, _ in TAGS:
        reg.add(TagInfo(f"{DEVICE}.{name}", ("Devices", DEVICE, name), "float64", units, low, high, device=DEVICE))
    reg.add(TagInfo(HEATER_TAG, ("Devices", DEVICE, "heater_setpoint"), "float64", "%", 0.0, 100.0, device=DEVICE))
    for info in signal_infos(asset, reg):
        reg.add(info)
    return reg


def _quantise(v: float, step: float) -> float:
    return round(v / step) * step if step else v


@dataclass
class TwinRig:
    """Plant + twin. ``run(seconds)`` advances both; ``last`` holds the twin's latest outputs."""

    plant: Plant
    twin: TwinRunner
    reg: TagRegistry
    tick_s: float
    last: dict[str, TagSample] = field(default_factory=dict)
    flow_fault: bool = False
    ticks: int = 0

    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.plant.t_s)

    def tick(self) -> list[TagSample]:
        """One twin tick: advance the plant, publish its readings, tick the twin; its samples."""
        self.plant.step(self.tick_s)
        self.ticks += 1
        ts = self.now
        m = self.plant.measurements()
        if self.flow_fault:
            m["flow_l_min"] = 0.0
        samples = [TagSample(f"{DEVICE}.{name}", _quantise(m[key], q), Status.Good, ts, ts) for name, key, _, _, _, q in TAGS]
        samples.append(TagSample(HEATER_TAG, self.plant.heater_pct, Status.Good, ts, ts))
        self.reg.publish(samples)
        out = self.twin.tick()
        self.reg.publish(out)
        for s in out:
            self.last[s.tag] = s
        return out

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.tick_s)):
            self.tick()

    def value(self, key: str) -> object:
        s = self.last.get(key)
        return None if s is None else s.value

    @property
    def alarm(self) -> bool:
        return bool(self.value("tank1.alarm"))


def make_rig(*, seed: int = 0, asset: AssetConfig | None = None, params: PlantParams | None = None, heater_pct: float = 40.0) -> TwinRig:
    """A demo twin on a fresh plant at steady state (pump and valve at 50 %, heater *heater_pct*)."""
    asset = asset or demo_asset()
    reg = registry_for(asset)
    plant = Plant(params or PlantParams(), seed=seed, setpoints=Setpoints(heater_pct=heater_pct))
    return TwinRig(plant, TwinRunner([asset], reg, asset.tick_s), reg, asset.tick_s)
