"""The simulated plant driven straight into a twin, without sockets: for benchmarks, the shipped
fault-pattern seed and tests.

``OfflineTwin`` maps the plant's readings to the demo's device tags (``DEMO_TAGS``, config/demo.toml:
``tank1_plc.temperature`` is ``tank_temp_c`` ...), publishes one Good sample per tag per tick into a
fresh registry, ticks the twin runner of the asset and publishes its outputs, all in simulated
time: an hour of plant runs in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from drivers.sample import Status, TagSample
from edge.config import AssetConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.sim.plant import Plant
from edge.twin.diagnosis.library import PatternFile
from edge.twin.runner import TwinRunner, build_runners, signal_infos

DEVICE = "tank1_plc"
# device tag -> (plant reading, units, low, high)
DEMO_TAGS: dict[str, tuple[str, str, float, float]] = {
    "temperature": ("tank_temp_c", "degC", -20.0, 150.0),
    "ambient_temperature": ("ambient_temp_c", "degC", -40.0, 60.0),
    "level": ("level_pct", "%", 0.0, 100.0),
    "pump_speed": ("pump_speed_rpm", "rpm", 0.0, 3000.0),
    "flow": ("flow_l_min", "l/min", 0.0, 200.0),
    "motor_current": ("motor_current_a", "A", 0.0, 50.0),
    "vibration": ("vibration_mm_s", "mm/s", 0.0, 50.0),
}
SETPOINTS = {"heater_setpoint": "heater_pct", "pump_speed_setpoint": "pump_speed_pct", "valve_setpoint": "valve_pct"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class OfflineTwin:
    """One asset's twin fed by *plant* every ``asset.tick_s`` of simulated time."""

    def __init__(self, asset: AssetConfig, plant: Plant, patterns: Callable[[AssetConfig], PatternFile] | None = None, *, t0: datetime = T0) -> None:
        self.plant = plant
        self.tick_s = asset.tick_s
        self.now = t0
        self.registry = TagRegistry()
        for tag, (_, units, low, high) in DEMO_TAGS.items():
            self.registry.add(TagInfo(f"{DEVICE}.{tag}", ("Devices", DEVICE, tag), "float64", units, low, high, device=DEVICE))
        for tag in SETPOINTS:
            self.registry.add(TagInfo(f"{DEVICE}.{tag}", ("Devices", DEVICE, tag), "float64", "%", 0.0, 100.0, writable=True, device=DEVICE))
        for info in signal_infos(asset, self.registry):
            self.registry.add(info)
        (self.runner,) = build_runners([asset], self.registry, None, patterns)
        self.asset = asset

    @property
    def twin(self) -> TwinRunner:
        return self.runner

    def step(self) -> list[TagSample]:
        """Advance the plant one tick, publish its readings and setpoints, tick the twin; returns
        the twin's outputs of this tick (already published)."""
        self.plant.step(self.tick_s)
        self.now += timedelta(seconds=self.tick_s)
        m = self.plant.measurements()
        t = self.now
        samples = [TagSample(f"{DEVICE}.{tag}", float(m[reading]), Status.Good, t, t) for tag, (reading, *_) in DEMO_TAGS.items()]
        samples += [TagSample(f"{DEVICE}.{tag}", float(getattr(self.plant, attr)), Status.Good, t, t) for tag, attr in SETPOINTS.items()]
        self.registry.publish(samples)
        out = self.runner.tick(t)
        self.registry.publish(out)
        return out

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.tick_s)):
            self.step()

    def latest(self, key: str) -> object:
        return self.registry.latest(key).value
