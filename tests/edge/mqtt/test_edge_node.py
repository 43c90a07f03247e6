"""The Sparkplug B edge node against a real Mosquitto: births, data, deaths, rebirth, commands."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from drivers.base import LinkState
from drivers.sample import Status
from edge.mqtt.sparkplug import QUALITY_GOOD, QUALITY_STALE, DataType, Payload, get_value, properties
from tests.edge.mqtt.broker import Recorder
from tests.edge.mqtt.conftest import Plant, running_sink, settings

N = "spBv1.0/plant1"


def names(payload: Any) -> dict[str, Any]:
    return {m.name: m for m in payload.metrics}


def seqs(rec: Recorder) -> list[int]:
    return [p.seq for t, p in rec.messages if "/NDEATH/" not in t and "/STATE/" not in t and "CMD/" not in t]


async def test_birth_then_data_with_aliases_and_continuous_seq(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """NBIRTH (seq 0, bdSeq, Node Control/Rebirth) then a DBIRTH per device and asset, then DDATA by alias with seq counting on."""
    plant.link(LinkState.CONNECTED)
    plant.value("plc1.temp", 20.5)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url)):
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
        topic, nbirth = rec.of("NBIRTH")[0]
        assert topic == f"{N}/NBIRTH/line3"
        assert nbirth.seq == 0
        node_metrics = names(nbirth)
        assert node_metrics["bdSeq"].datatype == DataType.Int64
        assert node_metrics["Node Control/Rebirth"].boolean_value is False
        assert "Diagnostics/plc1/LinkState" in node_metrics
        assert "Diagnostics/Gateway/MqttLinkState" in node_metrics
        births = dict(rec.of("DBIRTH"))
        plc = names(births[f"{N}/DBIRTH/line3/plc1"])
        assert set(plc) == {"temp", "count", "run"}
        temp = plc["temp"]
        assert temp.datatype == DataType.Double and temp.double_value == 20.5
        props = properties(temp)
        assert props["Quality"] == QUALITY_GOOD and props["engUnit"] == "degC" and props["engLow"] == 0.0 and props["engHigh"] == 100.0
        assert plc["count"].is_null and properties(plc["count"])["Quality"] == 0  # never read: Bad
        assert set(names(births[f"{N}/DBIRTH/line3/tank1"])) == {"temp/Estimate"}
        aliases = {m.alias for _, p in rec.of("DBIRTH") + rec.of("NBIRTH") for m in p.metrics if m.HasField("alias")}
        assert len(aliases) == sum(1 for _, p in rec.of("DBIRTH") + rec.of("NBIRTH") for m in p.metrics if m.HasField("alias"))

        plant.value("plc1.temp", 21.0)
        plant.value("plc1.count", -7)
        await rec.wait_for(lambda: rec.of("DDATA"))
        _, ddata = rec.of("DDATA")[-1]
        by_alias = {m.alias: m for m in ddata.metrics}
        assert all(not m.name for m in ddata.metrics)
        assert get_value(by_alias[temp.alias]) == 21.0 and get_value(by_alias[plc["count"].alias]) == -7
        s = seqs(rec)
        assert s == list(range(len(s)))


async def test_seq_wraps_and_stale_quality(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """seq runs 0..255 and wraps to 0; an Uncertain status travels as Quality STALE with its StatusCode."""
    plant.link(LinkState.CONNECTED)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url, publish_interval_s=0.005)):
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
        for i in range(300):  # one DDATA each: wait for it before the next change
            plant.value("plc1.temp", float(i))
            await rec.wait_for(lambda i=i: len(rec.of("DDATA")) > i)
        plant.value("plc1.temp", 1.5, Status.UncertainLastUsableValue)
        await rec.wait_for(lambda: any(get_value(m) == 1.5 for _, p in rec.of("DDATA") for m in p.metrics))
        s = seqs(rec)
        assert len(s) > 256
        assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(s))
        last = next(m for _, p in rec.of("DDATA") for m in p.metrics if get_value(m) == 1.5)
        assert properties(last)["Quality"] == QUALITY_STALE and properties(last)["StatusCode"] == Status.UncertainLastUsableValue


async def test_device_link_down_ddeath_then_dbirth(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """A device whose link drops is announced with DDEATH; it is born again (DBIRTH) when the link is back."""
    plant.link(LinkState.CONNECTED)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url)):
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
        plant.link(LinkState.DISCONNECTED)
        await rec.wait_for(lambda: rec.of("DDEATH"))
        assert rec.of("DDEATH")[0][0] == f"{N}/DDEATH/line3/plc1"
        plant.value("plc1.temp", 30.0)  # while dead: not published as DDATA
        plant.link(LinkState.CONNECTED)
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 3)
        topic, reborn = rec.of("DBIRTH")[-1]
        assert topic == f"{N}/DBIRTH/line3/plc1" and names(reborn)["temp"].double_value == 30.0
        kinds = [t.split("/")[2] for t, _ in rec.messages if "/line3/plc1" in t]
        assert kinds[-2:] == ["DDEATH", "DBIRTH"]
        s = seqs(rec)
        assert s == list(range(len(s)))


async def test_rebirth_on_command(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """NCMD Node Control/Rebirth = true: a new NBIRTH (seq 0, same bdSeq) and every DBIRTH."""
    plant.link(LinkState.CONNECTED)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url)):
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
        cmd = Payload(timestamp=1)
        cmd.metrics.add(name="Node Control/Rebirth", datatype=DataType.Boolean, boolean_value=True)
        assert rec.client is not None
        await rec.client.publish(f"{N}/NCMD/line3", cmd.SerializeToString(), qos=1)
        await rec.wait_for(lambda: len(rec.of("NBIRTH")) == 2 and len(rec.of("DBIRTH")) == 4)
        first, second = (p for _, p in rec.of("NBIRTH"))
        assert second.seq == 0
        assert names(first)["bdSeq"].long_value == names(second)["bdSeq"].long_value
        old = {(m.name, m.alias) for _, p in rec.of("DBIRTH")[:2] for m in p.metrics}
        new = {(m.name, m.alias) for _, p in rec.of("DBIRTH")[2:] for m in p.metrics}
        assert old == new  # aliases are stable across a rebirth


def _dcmd(metric: str, dt: DataType, value: object) -> bytes:
    from edge.mqtt.sparkplug import set_value

    p = Payload(timestamp=1)
    m = p.metrics.add(name=metric, datatype=dt)
    set_value(m, dt, value)  # type: ignore[arg-type]
    return p.SerializeToString()


async def test_dcmd_refused_when_commands_are_off(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """With allow_commands = false a DCMD never reaches the device; the refusal is logged and the current value republished."""
    from structlog.testing import capture_logs

    plant.link(LinkState.CONNECTED)
    plant.value("plc1.temp", 20.0)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url)):
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
        assert rec.client is not None
        with capture_logs() as logs:
            await rec.client.publish(f"{N}/DCMD/line3/plc1", _dcmd("temp", DataType.Double, 50.0), qos=1)
            await rec.wait_for(lambda: rec.of("DDATA"))
        assert plant.writes == []
        rejected = [e for e in logs if e["event"] == "write_rejected"]
        assert rejected and rejected[0]["status"] == "BadUserAccessDenied" and rejected[0]["tag"] == "plc1.temp"
        assert [get_value(m) for _, p in rec.of("DDATA") for m in p.metrics] == [20.0]


async def test_dcmd_validated_when_commands_are_on(broker: Any, plant: Plant, tmp_path: Path) -> None:
    """With allow_commands = true a DCMD goes through the write checks: in range is written, out of range refused (never clamped)."""
    from structlog.testing import capture_logs

    plant.link(LinkState.CONNECTED)
    plant.value("plc1.temp", 20.0)
    async with Recorder(broker.port) as rec, running_sink(plant, tmp_path, settings(broker.url, allow_commands=True)):
        await rec.wait_for(lambda: len(rec.of("DBIRTH")) == 2)
        assert rec.client is not None
        with capture_logs() as logs:
            await rec.client.publish(f"{N}/DCMD/line3/plc1", _dcmd("temp", DataType.Double, 55.5), qos=1)
            await rec.client.publish(f"{N}/DCMD/line3/plc1", _dcmd("temp", DataType.Double, 150.0), qos=1)
            await rec.client.publish(f"{N}/DCMD/line3/plc1", _dcmd("temp", DataType.String, "hot"), qos=1)
            await rec.client.publish(f"{N}/DCMD/line3/plc1", _dcmd("run", DataType.Boolean, True), qos=1)
            await rec.wait_for(lambda: len([e for e in logs if e["event"].startswith("write_")]) == 4)
        assert plant.writes == [("plc1.temp", 55.5)]
        events = [(e["event"], e["status"]) for e in logs if e["event"].startswith("write_")]
        assert events == [
            ("write_done", "Good"),
            ("write_rejected", "BadOutOfRange"),
            ("write_rejected", "BadTypeMismatch"),
            ("write_rejected", "BadNotWritable"),
        ]
