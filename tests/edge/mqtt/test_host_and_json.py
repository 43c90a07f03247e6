"""Primary host application awareness (STATE), and the plain JSON mode, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from drivers.base import LinkState
from drivers.sample import Status
from edge.mqtt.sparkplug import get_value
from tests.edge.mqtt.broker import Recorder
from tests.edge.mqtt.conftest import Plant, running_sink, settings

STATE = "spBv1.0/STATE/scada-host"


def _state(online: bool) -> bytes:
    return json.dumps({"online": online, "timestamp": int(time.time() * 1000)}).encode()


async def test_publishes_only_while_the_primary_host_is_online(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """No birth before the host's STATE is online; NDEATH when it goes offline; the values meanwhile arrive historical."""
    plant.link(LinkState.CONNECTED)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url, primary_host="scada-host")) as sink:
        await rec.wait_for(lambda: sink.stats.link_state == "waiting_for_host")
        plant.value("plc1.temp", 1.0)
        await asyncio.sleep(0.3)
        assert rec.of("NBIRTH") == []
        assert rec.client is not None
        await rec.client.publish(STATE, _state(True), qos=1, retain=True)
        await rec.wait_for(lambda: any(m.is_historical and get_value(m) == 1.0 for _, p in rec.of("DDATA") for m in p.metrics))
        await rec.client.publish(STATE, _state(False), qos=1, retain=True)
        await rec.wait_for(lambda: rec.of("NDEATH"))
        await rec.wait_for(lambda: sink.stats.link_state == "waiting_for_host")
        plant.value("plc1.temp", 2.0)
        await asyncio.sleep(0.3)
        assert len(rec.of("NBIRTH")) == 1
        await rec.client.publish(STATE, _state(True), qos=1, retain=True)
        await rec.wait_for(lambda: any(m.is_historical and get_value(m) == 2.0 for _, p in rec.of("DDATA") for m in p.metrics))
        bd = [next(m.long_value for m in p.metrics if m.name == "bdSeq") for _, p in rec.of("NBIRTH") + rec.of("NDEATH")]
        assert bd[0] == bd[2] and bd[1] == (bd[0] + 1) % 256  # NBIRTH 1, NBIRTH 2, NDEATH of session 1
        await rec.client.publish(STATE, b"", qos=1, retain=True)  # clear the retained STATE


async def test_json_per_tag(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """mode = "json": one JSON message per tag change with value, status and timestamps."""
    plant.link(LinkState.CONNECTED)
    cfg = settings(broker.url, mode="json", json_topic="plant/{node}/{device}/{metric}")
    async with Recorder(broker.port, topic="plant/#") as rec, running_sink(plant, tmp_path, cfg):
        await asyncio.sleep(0.3)
        s = plant.value("plc1.temp", 42.5)
        plant.value("plc1.count", None, Status.BadNoCommunication)
        await rec.wait_for(lambda: any(t == "plant/line3/plc1/count" for t, _ in rec.messages))
        docs = {t: json.loads(p) for t, p in rec.messages}
        temp = docs["plant/line3/plc1/temp"]
        assert temp["value"] == 42.5 and temp["status"] == "Good" and temp["status_code"] == 0 and temp["units"] == "degC"
        assert temp["timestamp"] == int(s.source_time.timestamp() * 1000) and temp["historical"] is False
        count = docs["plant/line3/plc1/count"]
        assert count["value"] is None and count["status"] == "BadNoCommunication" and count["quality"] == 0


async def test_json_per_device_after_outage(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """Without {metric} one message per device; values spooled during an outage arrive flagged historical."""
    cfg = settings(broker.url, mode="json", json_topic="plant/{device}")
    async with Recorder(broker.port, topic="plant/#") as rec, running_sink(plant, tmp_path, cfg):
        await asyncio.sleep(0.3)
        broker.stop()
        plant.value("plc1.temp", 7.0)
        await asyncio.sleep(0.5)
        broker.start()
        await rec.wait_for(lambda: any("temp" in json.loads(p)["metrics"] for t, p in rec.messages if t == "plant/plc1"), timeout=15)
        doc = next(json.loads(p) for t, p in rec.messages if t == "plant/plc1" and "temp" in json.loads(p)["metrics"])
        assert doc["historical"] is True and doc["metrics"]["temp"]["value"] == 7.0
