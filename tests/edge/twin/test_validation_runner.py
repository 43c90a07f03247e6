"""Sensor validation in the twin runner: SensorFault nodes, the asset alarm and its event message,
spikes kept from the filter, saved state, config; and every kind on the seeded simulated plant."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from asyncua import Client, ua

from drivers.sample import Status, TagSample, utcnow
from edge.config import ConfigError, load_config, parse_config
from edge.config.models import ValidationConfig
from edge.core import names
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.alarms import AlarmSpec, ConditionState, OpcUaAlarms, alarm_specs
from edge.opcua.server import OpcUaServer
from edge.sim.drive import PlantDrive
from edge.sim.plant import Fault, Plant
from edge.twin.persist import TwinStateStore
from edge.twin.runner import TwinRunner, signal_infos
from edge.twin.state import decode, encode
from edge.twin.state_hash import asset_hashes, asset_section
from tests.edge.twin.rig import Process, asset_config, registry_for

DEMO = "config/demo.toml"


def validated_twin() -> tuple[TwinRunner, Process]:
    asset = asset_config(validation=ValidationConfig(learn_s=60.0, hold_s=5.0))
    twin = TwinRunner([asset], registry_for(asset), 1.0)
    proc = Process()
    for heater in (60.0, 30.0, 70.0):
        proc.feed(twin, 60, heater)
    return twin, proc


def latest(twin: TwinRunner, key: str) -> TagSample:
    return twin.registry.latest(key)


def test_sensor_fault_nodes_are_declared_only_for_validated_assets() -> None:
    plain = asset_config()
    assert not any(i.key.endswith("sensor_fault") for i in signal_infos(plain, registry_for(plain)))
    asset = asset_config(validation=ValidationConfig())
    infos = {i.key: i for i in signal_infos(asset, registry_for(asset)) if i.key.endswith("sensor_fault")}
    assert set(infos) == {"tank.sensor_fault", "tank.temperature.sensor_fault", "tank.level.sensor_fault"}
    assert infos["tank.temperature.sensor_fault"].path == ("Assets", "tank", "temperature", "SensorFault")
    assert infos["tank.sensor_fault"].path == ("Assets", "tank", "SensorFault")
    assert all(i.data_type == "string" for i in infos.values())


def test_a_stuck_reading_sets_the_node_the_asset_summary_and_the_alarm() -> None:
    twin, proc = validated_twin()
    assert latest(twin, "tank.temperature.sensor_fault").value == "" and latest(twin, "tank.temperature.sensor_fault").status == Status.Good
    assert latest(twin, "tank.sensor_fault").value == ""
    assert latest(twin, "tank.alarm").value is False
    frozen = proc.temp
    for _ in range(60):  # the transmitter repeats its last value
        proc.step()
        twin.registry.publish([
            TagSample("plc.temperature", round(frozen, 1), Status.Good, proc.t, proc.t),
            TagSample("plc.level", proc.level + float(proc.rng.normal(0, 0.02)), Status.Good, proc.t, proc.t),
            TagSample("plc.heater", proc.heater, Status.Good, proc.t, proc.t),
        ])  # fmt: skip
        twin.registry.publish(twin.tick())
    assert latest(twin, "tank.temperature.sensor_fault").value == "stuck"
    assert latest(twin, "tank.level.sensor_fault").value == ""
    assert latest(twin, "tank.sensor_fault").value == "temperature: stuck"
    assert latest(twin, "tank.alarm").value is True
    assert twin.validation.trusted("tank", "temperature") is False
    assert twin.validation.trusted("tank", "level") is True
    learn = twin.validation.model_learn(twin.model_groups[0])
    assert learn.tolist() == [False]


def test_a_spike_is_flagged_and_never_reaches_the_filter() -> None:
    twin, proc = validated_twin()
    g, i = twin._kalman_of[("tank", "temperature")]
    updates = int(g.updates[i])
    proc.step()
    twin.registry.publish([TagSample("plc.temperature", proc.temp + 30.0, Status.Good, proc.t, proc.t)])
    out = {s.tag: s for s in twin.tick()}
    assert int(g.updates[i]) == updates  # not fed
    assert "tank.temperature.residual" not in out
    proc.feed(twin, 1)
    assert latest(twin, "tank.temperature.sensor_fault").value == "spike"
    assert int(g.updates[i]) == updates + 1
    assert abs(latest(twin, "tank.temperature.estimate").value - proc.temp) < 1.0


def test_sensor_fault_waits_for_initial_data_until_learnt() -> None:
    asset = asset_config(validation=ValidationConfig(learn_s=60.0))
    twin = TwinRunner([asset], registry_for(asset), 1.0)
    proc = Process()
    proc.feed(twin, 10)
    s = latest(twin, "tank.temperature.sensor_fault")
    assert s.status == Status.BadWaitingForInitialData and s.value is None


def test_saved_state_round_trip_carries_what_validation_learnt(tmp_path) -> None:
    twin, _ = validated_twin()
    state = twin.export_state("tank", "sha256:x", utcnow())
    assert state.validation is not None and set(state.validation) == {"temperature", "level"}
    back = decode(encode(state))
    assert back.validation == state.validation
    asset = twin.assets[0]
    fresh = TwinRunner([asset], registry_for(asset), 1.0)
    fresh.import_state(back, utcnow())
    assert fresh.validation.export_state("tank") == twin.validation.export_state("tank")
    # through the store's files
    store = TwinStateStore(tmp_path, {"tank": "sha256:x"})
    twin.config_hashes = {"tank": "sha256:x"}
    assert store.save(twin) == 1
    again = TwinRunner([asset], registry_for(asset), 1.0)
    assert store.attach(again) == {"tank": "restored"}
    assert again.validation.export_state("tank") == twin.validation.export_state("tank")


def test_a_saved_validation_state_that_does_not_fit_is_refused() -> None:
    twin, _ = validated_twin()
    state = twin.export_state("tank", "sha256:x", utcnow())
    plain = asset_config()
    other = TwinRunner([plain], registry_for(plain), 1.0)
    with pytest.raises(ValueError, match="sensor validation"):
        other.import_state(state, utcnow())


EXPLAINED = '  explained_by = ["tank1_plc.heater_setpoint * tank1_plc.heater_enable", "tank1_plc.ambient_temperature", "tank1_plc.flow / tank1_plc.level"]\n'


def test_config_hashes_without_validation_are_unchanged_by_it() -> None:
    cfg = load_config(DEMO)
    text = Path(DEMO).read_text()
    assert EXPLAINED in text
    plain = parse_config(
        text.replace('  related = ["tank1_plc.motor_current", "tank1_plc.pump_speed"]\n', "").replace("  [assets.validation]\n", "").replace(EXPLAINED, ""),
        DEMO,
    )
    assert asset_hashes(cfg) != asset_hashes(plain)  # validation is part of what the state was learnt under
    assert plain.assets[0].validation is None and not any(s.related or s.explained_by for s in plain.assets[0].signals)
    section = asset_section(plain.assets[0])
    assert "validation" not in section and not any("related" in s or "explained_by" in s for s in section["signals"])
    assert "balance_sigma" not in asset_section(cfg.assets[0])["validation"]  # at its default: hashes from before it stay
    other = parse_config(text.replace("  # balance_sigma = 5.0", "  balance_sigma = 6.0"), DEMO)
    assert asset_hashes(other) != asset_hashes(cfg)


def test_explained_by_names_known_numeric_tags_in_terms_of_one_or_two() -> None:
    text = Path(DEMO).read_text()
    bad = text.replace(EXPLAINED, '  explained_by = ["tank1_plc.heater_setpont", "tank1_plc.flow / tank1_plc.temperature", "tank1_plc.status_word"]\n')
    with pytest.raises(ConfigError) as info:
        parse_config(bad, DEMO)
    msg = str(info.value)
    assert "explained_by[0]" in msg and "unknown tag 'tank1_plc.heater_setpont'" in msg and "did you mean" in msg
    assert "explained_by[1]" in msg and "other than the signal's own" in msg
    syntax = text.replace(EXPLAINED, '  explained_by = ["tank1_plc.flow / tank1_plc.level / tank1_plc.level"]\n')
    with pytest.raises(ConfigError, match="must be a tag, a ratio"):
        parse_config(syntax, DEMO)
    terms = load_config(DEMO).assets[0].signals[0].balance_terms
    assert terms == [
        ("tank1_plc.heater_setpoint", "tank1_plc.heater_enable", "*"),
        ("tank1_plc.ambient_temperature", None, ""),
        ("tank1_plc.flow", "tank1_plc.level", "/"),
    ]


def test_the_demo_temperature_has_a_balance_view_whose_state_is_saved() -> None:
    asset = load_config(DEMO).assets[0]
    drive = PlantDrive.build(asset, [Plant(seed=3)])
    drive.run(2 * 60 * 15)  # 15 min
    ch = drive.twin.validation.by_asset["tank1"][0]
    assert ch.signal == "temperature" and ch.v.balance is not None and ch.v.balance.learnt > 0
    assert ch.balance_tags == ["tank1_plc.heater_setpoint", "tank1_plc.heater_enable", "tank1_plc.ambient_temperature", "tank1_plc.flow", "tank1_plc.level"]
    doc = drive.twin.validation.export_state("tank1")
    assert doc is not None and doc["temperature"]["balance"]["learnt"] == ch.v.balance.learnt
    fresh = PlantDrive.build(asset, [Plant(seed=3)])
    fresh.twin.validation.import_state("tank1", doc)
    assert fresh.twin.validation.export_state("tank1") == doc
    older = {k: {kk: vv for kk, vv in v.items() if kk != "balance"} for k, v in doc.items()}  # saved before the balance view
    again = PlantDrive.build(asset, [Plant(seed=3)])
    again.twin.validation.import_state("tank1", older)
    assert again.twin.validation.by_asset["tank1"][0].v.balance.learnt == 0


def test_related_tags_must_be_known_numeric_tags() -> None:
    text = Path(DEMO).read_text().replace('"tank1_plc.motor_current", "tank1_plc.pump_speed"', '"tank1_plc.motor_curent", "tank1_plc.flow"')
    with pytest.raises(ConfigError) as info:
        parse_config(text, DEMO)
    msg = str(info.value)
    assert "related[0]" in msg and "unknown tag 'tank1_plc.motor_curent'" in msg and "did you mean" in msg
    assert "related[1]" in msg and "other than the signal's own" in msg


# -- the alarm event's message --------------------------------------------------------------------


def test_the_anomaly_alarm_message_names_signal_and_kind() -> None:
    spec = alarm_specs(load_config(DEMO))[0]
    assert spec.detail_key == names.sensor_fault_key("tank1")
    st = ConditionState()
    t = utcnow()
    st = st.on_detail(TagSample(spec.detail_key, "temperature: drift", Status.Good, t, t)) or st
    st = st.on_sample(spec, TagSample(spec.key, True, Status.Good, t, t)) or st
    assert st.message(spec) == "tank1 sensor fault: temperature: drift (or tank1 anomaly score above threshold 9)"
    assert st.on_detail(TagSample(spec.detail_key, "temperature: drift", Status.Good, t, t)) is None
    st = st.on_detail(TagSample(spec.detail_key, "", Status.Good, t, t)) or st
    assert st.message(spec) == "tank1 anomaly score above threshold 9"


@pytest.mark.asyncio
async def test_the_alarm_event_carries_the_sensor_fault_over_opc_ua(free_port_factory) -> None:
    reg = TagRegistry()
    reg.add(TagInfo("tank.alarm", ("Assets", "tank", "Alarm"), "bool"))
    reg.add(TagInfo("tank.sensor_fault", ("Assets", "tank", "SensorFault"), "string"))
    spec = AlarmSpec("AnomalyAlarm", "tank.alarm", ("Assets", "tank"), 700, "flag", 9.0, text="tank anomaly score", detail_key="tank.sensor_fault")
    alarms = OpcUaAlarms([spec])
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    queue: asyncio.Queue = asyncio.Queue()

    class Handler:
        def event_notification(self, event) -> None:
            queue.put_nowait(event)

    async with OpcUaServer(reg, endpoint=url, namespace_uri="urn:test:validation", gateway_name="gw", extensions=[alarms]), Client(url, timeout=5) as client:
        sub = await client.create_subscription(10, Handler())
        await sub.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
        t = utcnow()
        reg.publish([TagSample("tank.sensor_fault", "flow: contradiction", Status.Good, t, t), TagSample("tank.alarm", True, Status.Good, t, t)])
        async with asyncio.timeout(5):
            ev = await queue.get()
        assert getattr(ev, "ActiveState/Id") is True
        assert ev.Message.Text.startswith("tank sensor fault: flow: contradiction")
        t = utcnow()
        reg.publish([TagSample("tank.sensor_fault", "flow: contradiction, temperature: stuck", Status.Good, t, t)])
        async with asyncio.timeout(5):
            ev = await queue.get()
        assert "temperature: stuck" in ev.Message.Text and getattr(ev, "ActiveState/Id") is True
        await sub.delete()


# -- every kind on the seeded simulated plant -------------------------------------------------------


@pytest.mark.slow
def test_every_kind_on_the_simulated_plant() -> None:
    """The demo's asset on five seeded plants (no sockets, the demo's tick, setpoint steps): one
    healthy, one each with a stuck, spiking, drifting (0.5 degC/min) temperature and a failed flow
    meter. Each fault is flagged with its signal and kind within the goal; the healthy plant never."""
    asset = load_config(DEMO).assets[0]
    faults = [Fault.NONE, Fault.STUCK_SENSOR, Fault.SPIKE, Fault.SENSOR_DRIFT, Fault.FLOW_SENSOR]
    plants = [Plant(seed=40 + i) for i in range(len(faults))]
    drive = PlantDrive.build(asset, plants)
    rng = np.random.default_rng(4)
    heater = [40.0, 70.0, 30.0, 60.0, 50.0, 80.0, 45.0]
    normal_flags = []
    for k, h in enumerate(heater):  # 21 min of heater steps, with a pump move
        for p in plants:
            p.heater_pct = h
            if k == 3:
                p.pump_speed_pct = 70.0
        for _ in range(360):
            drive.run(1)
            normal_flags += [(i, s) for i in range(len(plants)) if (s := drive.twin.registry.latest(f"tank{i + 1}.sensor_fault").value)]
    assert normal_flags == []  # no flag on normal operation with setpoint steps
    for p, f in zip(plants, faults):
        p.fault_strength = 0.5 if f is Fault.SENSOR_DRIFT else 1.0
        p.fault = f
    first: dict[int, tuple[float, str]] = {}
    for tick in range(1, 600 + 1):  # 5 min
        if tick == 240:
            for p in plants:
                p.heater_pct = float(rng.uniform(30, 70))
        drive.run(1)
        for i in range(len(plants)):
            text = drive.twin.registry.latest(f"tank{i + 1}.sensor_fault").value
            if text and i not in first:
                first[i] = (tick * 0.5, text)
    assert 0 not in first, first.get(0)
    assert first[1][1] == "temperature: stuck" and first[1][0] <= 60.0
    assert first[2][1] == "temperature: spike"
    assert first[4][1] == "flow: contradiction"
    assert first[3][1] == "temperature: drift" and first[3][0] / 60 * 0.5 < 2.5
    assert drive.twin.registry.latest("tank2.temperature.sensor_fault").value == "stuck"
    assert drive.twin.registry.latest("tank2.alarm").value is True
    assert math.isfinite(drive.twin.registry.latest("tank1.temperature.estimate").value)
