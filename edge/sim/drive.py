"""Drive a twin from the pure simulated plant, without sockets: for benchmarks and tests.

``PlantDrive`` steps one or more ``Plant``s at the asset's tick, writes its readings into a registry under
the demo's tag keys (quantised as the demo's Modbus registers deliver them: int16 with scale 0.1
for temperature and level, whole rpm, float32 for flow, current and vibration), ticks a
``TwinRunner`` and publishes its outputs, as the daemon does. Simulated time: each tick is
``tick_s`` of source time after the previous one, however fast the loop runs. ``forced`` holds
readings forced to a value (a failed transmitter: ``{"tank1_plc.flow": 0.0}``), applied after
quantisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from drivers.sample import Status, TagSample
from edge.config import AssetConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.sim.plant import Plant
from edge.twin.diagnosis.library import PatternFile
from edge.twin.runner import TwinRunner, build_runners, signal_infos

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = "tank1_plc"

# tag -> (plant reading, quantum (0 = float32), units, low, high); the demo's register map (docs/plant.md)
TAGS: dict[str, tuple[str, float, str, float, float]] = {
    "temperature": ("tank_temp_c", 0.1, "degC", -20.0, 150.0),
    "ambient_temperature": ("ambient_temp_c", 0.1, "degC", -40.0, 60.0),
    "level": ("level_pct", 0.1, "%", 0.0, 100.0),
    "pump_speed": ("pump_speed_rpm", 1.0, "rpm", 0.0, 3000.0),
    "flow": ("flow_l_min", 0.0, "l/min", 0.0, 200.0),
    "motor_current": ("motor_current_a", 0.0, "A", 0.0, 50.0),
    "vibration": ("vibration_mm_s", 0.0, "mm/s", 0.0, 50.0),
}
SETPOINTS = {"heater_setpoint": "heater_pct", "pump_speed_setpoint": "pump_speed_pct", "valve_setpoint": "valve_pct"}
SWITCHES = ("heater_enable", "pump_enable")  # coils, read back as the plant has them


def asset_for(template: AssetConfig, index: int) -> AssetConfig:
    """*template* (the demo's ``tank1`` on ``tank1_plc``) as asset ``tank<index>`` on device
    ``tank<index>_plc``: many plants in one runner share its kernel calls."""
    dev = f"tank{index}_plc"

    def retag(tag: str) -> str:
        return f"{dev}.{tag.partition('.')[2]}"

    signals = [
        s.model_copy(
            update={
                "tag": retag(s.tag),
                "input": None if s.input is None else retag(s.input),
                "related": [retag(t) for t in s.related],
                "explained_by": [retag(a) if b is None else f"{retag(a)} {op} {retag(b)}" for a, b, op in s.balance_terms],
            }
        )
        for s in template.signals
    ]
    return template.model_copy(update={"name": f"tank{index}", "signals": signals})


def demo_registry(assets: Sequence[AssetConfig]) -> TagRegistry:
    """A registry with the demo device's tags (one device per asset, ``<asset>_plc``) and the assets' twin outputs."""
    reg = TagRegistry()
    for asset in assets:
        dev = f"{asset.name}_plc"
        for tag, (_, _, units, low, high) in TAGS.items():
            reg.add(TagInfo(f"{dev}.{tag}", ("Devices", dev, tag), "float64", units, low, high, device=dev))
        for tag in SETPOINTS:
            reg.add(TagInfo(f"{dev}.{tag}", ("Devices", dev, tag), "float64", "%", 0.0, 100.0, device=dev))
        for tag in SWITCHES:
            reg.add(TagInfo(f"{dev}.{tag}", ("Devices", dev, tag), "bool", device=dev))
    for asset in assets:
        for info in signal_infos(asset, reg):
            reg.add(info)
    return reg


def _f32(x: float) -> float:
    return float(np.float32(x))


@dataclass
class PlantDrive:
    """Plants and the twin that watches them: plant i behind asset ``tank<i+1>``."""

    plants: list[Plant]
    twin: TwinRunner
    t: datetime = T0
    forced: dict[str, float] = field(default_factory=dict)  # registry key -> reading it is forced to

    @classmethod
    def build(cls, template: AssetConfig, plants: Sequence[Plant], patterns: Callable[[AssetConfig], PatternFile] | None = None) -> PlantDrive:
        """*patterns*: the fault-pattern library of an asset with ``[assets.diagnosis]`` (else no diagnosis)."""
        assets = [asset_for(template, i + 1) for i in range(len(plants))]
        (twin,) = build_runners(assets, demo_registry(assets), None, patterns)
        return cls(list(plants), twin)

    @property
    def plant(self) -> Plant:
        return self.plants[0]

    @property
    def tick_s(self) -> float:
        return self.twin.tick_s

    @property
    def registry(self) -> TagRegistry:
        return self.twin.registry

    def latest(self, key: str) -> object:
        """The latest value of a registry key (a tag or a twin output)."""
        return self.twin.registry.latest(key).value

    def run_for(self, seconds: float) -> Sequence[TagSample]:
        return self.run(round(seconds / self.tick_s))

    def readings(self) -> list[TagSample]:
        out = []
        for i, plant in enumerate(self.plants):
            dev = f"tank{i + 1}_plc"
            m = plant.measurements()
            for tag, (key, quantum, *_rest) in TAGS.items():
                v = m[key]
                v = round(v / quantum) * quantum if quantum else _f32(v)
                key = f"{dev}.{tag}"
                out.append(TagSample(key, self.forced.get(key, v), Status.Good, self.t, self.t))
            for tag, attr in SETPOINTS.items():
                out.append(TagSample(f"{dev}.{tag}", round(getattr(plant, attr) * 10) / 10, Status.Good, self.t, self.t))
            for tag in SWITCHES:
                out.append(TagSample(f"{dev}.{tag}", bool(getattr(plant, tag)), Status.Good, self.t, self.t))
        return out

    def run(self, ticks: int) -> Sequence[TagSample]:
        """Advance *ticks* ticks; returns the twin's samples of the last one."""
        out: list[TagSample] = []
        for _ in range(ticks):
            out = self.tick()
        return out

    def tick(self) -> list[TagSample]:
        """One tick: advance the plants, publish their readings, tick the twin and publish its samples (returned)."""
        dt = self.twin.tick_s
        for plant in self.plants:
            plant.step(dt)
        self.t += timedelta(seconds=dt)
        reg = self.twin.registry
        reg.publish(self.readings())
        out = self.twin.tick(self.t)
        reg.publish(out)
        return out
