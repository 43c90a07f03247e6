"""A small twin for the saved-state tests: a synthetic first-order process (heater -> temperature,
gain 0.5, time constant 20 s) and a level, an identified model, a PCA detector; simulated time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from drivers.sample import Status, TagSample
from edge.config import AssetConfig, DetectorConfig, SignalConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.runner import TwinRunner, signal_infos

TICK_S = 1.0
PERIOD_S = 2.0
TAU_S = 20.0
GAIN = 0.5
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def asset_config(**changes: object) -> AssetConfig:
    temp = SignalConfig(
        name="temperature", tag="plc.temperature", model="constant_velocity", process_noise=1e-4, measurement_noise=0.05,
        forecast_horizon_s=10.0, input="plc.heater", model_period_s=PERIOD_S, model_warmup=20,
    )  # fmt: skip
    level = SignalConfig(name="level", tag="plc.level", model="random_walk", process_noise=1e-4, measurement_noise=0.05)
    base = {"name": "tank", "tick_s": TICK_S, "warmup_ticks": 5, "signals": [temp, level], "detector": DetectorConfig(train_ticks=60)}
    return AssetConfig(**{**base, **changes})


def registry_for(asset: AssetConfig) -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.temperature", ("Devices", "plc", "temperature"), "float64", "degC", -20.0, 150.0, device="plc"))
    reg.add(TagInfo("plc.heater", ("Devices", "plc", "heater"), "float64", "%", 0.0, 100.0, device="plc"))
    reg.add(TagInfo("plc.level", ("Devices", "plc", "level"), "float64", "%", 0.0, 100.0, device="plc"))
    for info in signal_infos(asset, reg):
        reg.add(info)
    return reg


@dataclass
class Process:
    """The plant behind the tags; ``feed`` publishes one tick of readings and ticks the twin."""

    temp: float = 20.0
    level: float = 50.0
    heater: float = 40.0
    t: datetime = T0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    def step(self) -> None:
        a = math.exp(-TICK_S / TAU_S)
        self.temp = a * self.temp + (1 - a) * (20.0 + GAIN * self.heater)
        self.level += float(self.rng.normal(0, 0.02))
        self.t += timedelta(seconds=TICK_S)

    def feed(self, twin: TwinRunner, ticks: int, heater: float | None = None) -> list[TagSample]:
        if heater is not None:
            self.heater = heater
        out: list[TagSample] = []
        for _ in range(ticks):
            self.step()
            noise = self.rng.normal(0, 0.02, 2)
            twin.registry.publish([
                TagSample("plc.temperature", self.temp + float(noise[0]), Status.Good, self.t, self.t),
                TagSample("plc.level", self.level + float(noise[1]), Status.Good, self.t, self.t),
                TagSample("plc.heater", self.heater, Status.Good, self.t, self.t),
            ])  # fmt: skip
            out = twin.tick()
            twin.registry.publish(out)
        return out


def trained(asset: AssetConfig | None = None) -> tuple[TwinRunner, Process]:
    """A twin whose model is warm and whose detector is fitted."""
    asset = asset or asset_config()
    twin = TwinRunner([asset], registry_for(asset), TICK_S)
    proc = Process()
    for heater in (60.0, 30.0, 70.0, 45.0, 55.0):
        proc.feed(twin, 60, heater)
    return twin, proc
