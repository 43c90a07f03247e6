"""Fixtures of the MQTT tests: a Mosquitto broker, a registry with one device and one asset, a sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers.base import LinkState
from drivers.sample import Status, TagSample, utcnow
from edge.core.health import DeviceHealth
from edge.core.registry import TagInfo, TagRegistry
from edge.mqtt.settings import MqttSection
from edge.mqtt.sink import MqttSink
from tests.edge.mqtt.broker import Mosquitto


@pytest.fixture
def broker(tmp_path: Path, free_port_factory: Any) -> Any:
    b = Mosquitto(tmp_path, free_port_factory())
    b.start()
    yield b
    b.stop()


class Plant:
    """A registry shaped like the gateway's: device plc1 (with its link state) and asset tank1."""

    def __init__(self) -> None:
        self.registry = TagRegistry()
        r = self.registry
        r.add(TagInfo("plc1.temp", ("Devices", "plc1", "temp"), "float64", "degC", 0.0, 100.0, "tank temperature", True, device="plc1"))
        r.add(TagInfo("plc1.count", ("Devices", "plc1", "count"), "int32", None, device="plc1", writable=True))
        r.add(TagInfo("plc1.run", ("Devices", "plc1", "run"), "bool", device="plc1"))
        self.health = DeviceHealth("plc1")
        for info in self.health.infos():
            r.add(info)
        r.add(TagInfo("tank1.temp.estimate", ("Assets", "tank1", "temp", "Estimate"), "float64", "degC"))
        self.writes: list[tuple[str, object]] = []
        self.t0 = utcnow()
        self.n = 0

    def link(self, state: LinkState) -> None:
        self.health.link_state = state
        self.registry.publish(self.health.changed_samples())

    def value(self, key: str, value: object, status: int = Status.Good) -> TagSample:
        """Publish one sample; source times are distinct and increasing (1 ms apart)."""
        self.n += 1
        t = self.t0 + timedelta(milliseconds=self.n)
        s = TagSample(key, value, status, t, t)
        self.registry.publish([s])
        return s

    async def write(self, key: str, value: object) -> int:
        self.writes.append((key, value))
        return Status.Good


@pytest.fixture
def plant() -> Plant:
    return Plant()


def settings(broker_url: str, **kw: Any) -> MqttSection:
    base: dict[str, Any] = dict(broker=[broker_url], client_id="edgetwin-test", sparkplug_group="plant1", sparkplug_node="line3", publish_interval_s=0.05)
    base.update(kw)
    return MqttSection(**base)


@asynccontextmanager
async def running_sink(plant: Plant, state_dir: Path, cfg: MqttSection, **kw: Any) -> AsyncIterator[MqttSink]:
    sink = MqttSink(cfg, plant.registry, state_dir=state_dir, write=plant.write, **kw)
    async with sink:
        yield sink
