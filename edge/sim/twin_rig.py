"""The built-in plant wired straight to the demo's ``tank1`` twin, in simulated time (no sockets, no clock).

A thin layer over ``edge.sim.drive.PlantDrive`` (which steps the plant, publishes its readings
quantised like the Modbus registers and ticks the twin): ``TwinRig`` keeps the twin's latest
outputs, counts ticks and injects a failed flowmeter (``flow_fault``: the reading drops to
0 L/min while the pump runs, a broken transmitter loop). The plant's own faults (``Plant.fault``)
act as documented there. The benchmarks (``benchmarks/bench_twin_model.py``) and the twin tests
use it to measure the twin against the plant's truth; the live gateway never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drivers.sample import TagSample
from edge.config import AssetConfig, SignalConfig
from edge.core.registry import TagRegistry
from edge.sim.drive import DEVICE, PlantDrive
from edge.sim.params import PlantParams, Setpoints
from edge.sim.plant import Plant
from edge.twin.runner import TwinRunner

HEATER_TAG = f"{DEVICE}.heater_setpoint"
FLOW_TAG = f"{DEVICE}.flow"


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


@dataclass
class TwinRig:
    """Plant + twin. ``run(seconds)`` advances both; ``last`` holds the twin's latest outputs."""

    drive: PlantDrive
    last: dict[str, TagSample] = field(default_factory=dict)
    ticks: int = 0

    @property
    def plant(self) -> Plant:
        return self.drive.plant

    @property
    def twin(self) -> TwinRunner:
        return self.drive.twin

    @property
    def reg(self) -> TagRegistry:
        return self.drive.registry

    @property
    def tick_s(self) -> float:
        return self.drive.tick_s

    @property
    def now(self) -> datetime:
        return self.drive.t

    @property
    def flow_fault(self) -> bool:
        return FLOW_TAG in self.drive.forced

    @flow_fault.setter
    def flow_fault(self, on: bool) -> None:
        if on:
            self.drive.forced[FLOW_TAG] = 0.0
        else:
            self.drive.forced.pop(FLOW_TAG, None)

    def tick(self) -> list[TagSample]:
        """One twin tick: advance the plant, publish its readings, tick the twin; its samples."""
        out = self.drive.tick()
        self.ticks += 1
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
    plant = Plant(params or PlantParams(), seed=seed, setpoints=Setpoints(heater_pct=heater_pct))
    return TwinRig(PlantDrive.build(asset or demo_asset(), [plant]))
