"""Store and forward with a real broker that is stopped and started again, and across a gateway restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from drivers.base import LinkState
from edge.mqtt.sparkplug import get_value
from tests.edge.mqtt.broker import Recorder
from tests.edge.mqtt.conftest import Plant, running_sink, settings


def temp_values(rec: Recorder, alias: int) -> list[tuple[int, float, bool]]:
    """(source timestamp, value, historical) of every DDATA metric of *alias*, in arrival order."""
    return [(m.timestamp, get_value(m), m.is_historical) for _, p in rec.of("DDATA") for m in p.metrics if m.alias == alias]


async def _outage(broker: Any, plant: Plant, tmp_path: Path, outage_s: float) -> None:
    plant.link(LinkState.CONNECTED)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url)) as sink:
        await rec.wait_for(lambda: rec.of("DBIRTH"))
        alias = next(m.alias for _, p in rec.of("DBIRTH") for m in p.metrics if m.name == "temp")
        produced = []
        i = 0

        async def produce(seconds: float) -> None:
            nonlocal i
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                i += 1
                produced.append(plant.value("plc1.temp", float(i)))
                await asyncio.sleep(0.02)

        await produce(0.5)
        broker.stop()
        await produce(outage_s)
        await rec.wait_for(lambda: sink.stats.metrics_buffered > 0, timeout=5)
        broker.start()
        await produce(0.5)
        last = float(i)
        await rec.wait_for(lambda: any(v == last for _, v, _ in temp_values(rec, alias)), timeout=30 + outage_s)
        got = temp_values(rec, alias)
        births = {(m.timestamp, get_value(m)) for _, p in rec.of("DBIRTH") for m in p.metrics if m.alias == alias}
        # every value arrived (a DBIRTH carries the value current at the birth); duplicates (QoS 1)
        # have the same source timestamp
        sent = {(int(s.source_time.timestamp() * 1000), s.value) for s in produced}
        assert sent <= {(t, v) for t, v, _ in got} | births
        unique = list(dict.fromkeys((t, v) for t, v, _ in got))
        assert unique == sorted(unique), "values arrive in the order they were produced"
        # the ones produced while the broker was down are flagged historical
        down = [v for t, v, h in got if h]
        assert len(down) >= outage_s / 0.02 * 0.5
        assert sink.stats.metrics_dropped == 0
        assert sink.stats.reconnects == 1
        nbirths = rec.of("NBIRTH")
        assert len(nbirths) == 2  # a new session after the restart: a new NBIRTH with the next bdSeq
        bd = [next(m.long_value for m in p.metrics if m.name == "bdSeq") for _, p in nbirths]
        assert bd[1] == (bd[0] + 1) % 256


async def test_broker_restart_loses_nothing(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """Broker stopped for 3 s and started again: every value arrives, in order, the missed ones flagged historical."""
    await _outage(broker, plant, tmp_path, 3.0)


@pytest.mark.slow
async def test_broker_down_30_s_loses_nothing(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """The same with the broker stopped for 30 s."""
    await _outage(broker, plant, tmp_path, 30.0)


async def test_spool_survives_a_gateway_restart(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """Values spooled while the broker was down are sent, historical, by the next gateway process after its births."""
    plant.link(LinkState.CONNECTED)
    broker.stop()
    async with running_sink(plant, tmp_path, settings(broker.url)) as sink:
        for i in range(20):
            plant.value("plc1.temp", float(i))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
    assert sink.spool.metrics >= 20  # spooled on disk, the sink closed
    broker.start()
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url)) as sink2:
        await rec.wait_for(lambda: len([m for _, p in rec.of("DDATA") for m in p.metrics if m.is_historical]) >= 20)
        kinds = [t.split("/")[2] for t, _ in rec.messages]
        assert kinds.index("NBIRTH") < kinds.index("DDATA")
        values = [get_value(m) for _, p in rec.of("DDATA") for m in p.metrics if m.is_historical]
        assert values[-20:] == [float(i) for i in range(20)]
        await rec.wait_for(lambda: sink2.stats.metrics_buffered == 0)
