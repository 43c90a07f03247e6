"""SIGHUP against a running gateway: a real plant (pymodbus), a real OPC UA client over loopback.

A valid change adds and removes nodes while the client's session and subscription stay; NodeIds,
values and history of the unchanged nodes stay; only the changed asset's twin restarts. An
invalid change changes nothing and logs every error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from asyncua import Client, ua
from structlog.testing import capture_logs

from edge.app import run_gateway
from edge.config import ConfigError, load_config
from edge.opcua.history_read import OpcUaHistory
from edge.reload.pidfile import pid_path, read_status, status_path
from tests.edge.reload.gateway_configs import NS, gateway_toml
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # each starts a gateway with the plant and waits for twins to warm up


class _Changes:
    def __init__(self) -> None:
        self.values: list[tuple[float, ua.DataValue]] = []

    def datachange_notification(self, node, val, data) -> None:
        self.values.append((time.monotonic(), data.monitored_item.Value))


async def _reload_outcome(state: Path, count: int) -> dict:
    async def done() -> bool:
        status = read_status(status_path(state))
        return status is not None and status["count"] >= count

    await wait_for(done, 20, f"reload #{count} to finish")
    status = read_status(status_path(state))
    assert status is not None
    return status


@pytest.fixture
async def gateway(tmp_path: Path, free_port_factory):
    """A gateway from config version 1 in a file, running in this process until the test ends."""
    opc_port, mb_port, state = free_port_factory(), free_port_factory(), tmp_path / "state"
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(opc_port, mb_port, state))
    cfg = load_config(path)
    stop, holder = asyncio.Event(), {}
    ready = asyncio.Event()

    def on_ready(gw) -> None:
        holder["gw"] = gw
        ready.set()

    task = asyncio.create_task(run_gateway(cfg, shutdown_trigger=stop.wait, on_ready=on_ready), name="gateway")
    try:
        async with asyncio.timeout(60):  # the asyncua address space takes seconds on a busy machine
            await ready.wait()
        yield holder["gw"], path, (opc_port, mb_port, state)
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task
    assert task.exception() is None
    assert not pid_path(state).exists(), "the pid file is removed at exit"


async def test_sighup_applies_a_valid_change_without_dropping_the_session(gateway) -> None:
    gw, path, (opc_port, mb_port, state) = gateway
    assert pid_path(state).read_text().strip() == str(os.getpid())
    async with Client(gw.cfg.gateway.endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(NS)

        def node(p: str):
            return client.get_node(ua.NodeId(f"edgetwin/{p}", ns))

        async def good(p: str) -> bool:
            return (await node(p).read_data_value(raise_on_bad_status=False)).StatusCode.is_good()

        watched = (
            "Devices/tank1_plc/temperature",
            "Devices/tank1_plc/pump_speed",
            "Devices/meter/power",
            "Assets/tank/AnomalyScore",
            "Assets/vessel/AnomalyScore",
        )
        for p in watched:
            await wait_for(lambda p=p: good(p), 10, f"{p} to be Good")
        temperature_id = (await client.nodes.objects.get_child([f"{ns}:edgetwin", f"{ns}:Devices", f"{ns}:tank1_plc", f"{ns}:temperature"])).nodeid
        changes = _Changes()
        sub = await client.create_subscription(50, changes)
        await sub.subscribe_data_change([node("Devices/tank1_plc/temperature")])
        await wait_for(lambda: _true(len(changes.values) > 0), 5, "the first notification")
        vessel_runner = next(t for t in gw.twins if any(a.name == "vessel" for a in t.assets))
        tank_runner = next(t for t in gw.twins if any(a.name == "tank" for a in t.assets))
        recorder = next(e for e in gw.server.extensions if isinstance(e, OpcUaHistory)).recorder
        await wait_for(lambda: _rows(recorder, "tank1_plc.pump_speed"), 10, "pump_speed rows in history")
        assert (await node("Devices/tank1_plc/pump_speedHighLimit").read_browse_name()).Name == "pump_speedHighLimit"
        vessel_statuses: list[int] = []
        gw.registry.subscribe(lambda batch: vessel_statuses.extend(s.status for s in batch if s.tag == "vessel.anomaly_score"))

        path.write_text(gateway_toml(opc_port, mb_port, state, version=2))
        reloaded_at = time.monotonic()
        os.kill(os.getpid(), signal.SIGHUP)
        status = await _reload_outcome(state, 1)
        assert status["result"] == "applied", status
        assert status["changes"]["tags_added"] == ["tank1_plc.flow"] and status["changes"]["tags_removed"] == ["meter.power", "tank1_plc.pump_speed"]
        assert status["changes"]["assets_changed"] == ["tank"] and status["needs_restart"] == []
        assert status["changes"]["devices_stop"] == ["meter"] and status["changes"]["devices_restart"] == ["tank1_plc"]

        # added node: browsable, Good values from the device
        names = {(await c.read_browse_name()).Name for c in await node("Devices/tank1_plc").get_children()}
        assert "flow" in names and "pump_speed" not in names
        await wait_for(lambda: good("Devices/tank1_plc/flow"), 10, "the added tag to read Good")
        assert 0.0 <= (await node("Devices/tank1_plc/flow").read_value()) < 1000.0
        # removed node: gone from the address space and the registry; its history stays stored
        dv = await node("Devices/tank1_plc/pump_speed").read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
        assert "tank1_plc.pump_speed" not in gw.registry
        gone = await node("Devices/tank1_plc/pump_speedHighLimit").read_data_value(raise_on_bad_status=False)  # its limit alarm
        assert gone.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
        # removed device: its objects, registry entries and poll task are gone
        assert "meter" not in {(await c.read_browse_name()).Name for c in await node("Devices").get_children()}
        assert "meter" not in {(await c.read_browse_name()).Name for c in await node("Diagnostics").get_children()}
        assert not [i for i in gw.registry.infos() if "meter" in i.key] and [r.name for r in gw.supervisor.runners] == ["tank1_plc"]
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "poll:meter"]
        assert await _rows(recorder, "tank1_plc.pump_speed")
        # unchanged nodes: same NodeId, and the same session's subscription still delivers
        again = await client.nodes.objects.get_child([f"{ns}:edgetwin", f"{ns}:Devices", f"{ns}:tank1_plc", f"{ns}:temperature"])
        assert again.nodeid == temperature_id
        await wait_for(lambda: _true(any(t > reloaded_at and dv.StatusCode.is_good() for t, dv in changes.values)), 5, "a notification after the reload")
        # history follows the new config: level now historized, its node says so
        assert (await node("Devices/tank1_plc/level").read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
        await wait_for(lambda: _rows(recorder, "tank1_plc.level"), 10, "level rows in history")
        # twins: only the changed asset's runner was rebuilt; the other kept running warm
        assert vessel_runner in gw.twins and tank_runner not in gw.twins
        assert all(s == ua.StatusCodes.Good for s in vessel_statuses) and vessel_statuses
        await wait_for(lambda: good("Assets/tank/AnomalyScore"), 10, "the rebuilt twin to warm up")
        assert gw.cfg.assets[0].alarm_threshold == 12.0
        # a variable whose only change is its description keeps its node (and monitored items)
        assert (await node("Assets/tank/Alarm").read_description()).Text == "anomaly score above 12"
        # the changed asset's condition was made again (same NodeId)
        assert (await node("Assets/tank/AnomalyAlarm").read_browse_name()).Name == "AnomalyAlarm"
        assert (await node("Diagnostics/Gateway/Sessions").read_value()) == 1
        await sub.delete()


async def test_sighup_with_an_invalid_config_changes_nothing_and_logs_every_error(gateway) -> None:
    gw, path, (opc_port, mb_port, state) = gateway
    keys = sorted(i.key for i in gw.registry.infos())
    twins = list(gw.twins)
    running = gw.cfg
    broken = gateway_toml(opc_port, mb_port, state, version=2).replace('address = "ir:10"', 'address = "ir:70000"').replace("poll_interval_s", "pol_interval_s")
    path.write_text(broken)
    with capture_logs() as logs:
        os.kill(os.getpid(), signal.SIGHUP)
        status = await _reload_outcome(state, 1)
    with pytest.raises(ConfigError) as expected:
        load_config(path)
    assert status["result"] == "rejected" and status["errors"] == expected.value.problems
    rejected = [e for e in logs if e["event"] == "reload_rejected"]
    assert len(rejected) == len(expected.value.problems) == 2  # one line per error (the broken device's signals are not listed again)
    assert {"devices[0].pol_interval_s", "devices[0].tags[2].address"} <= {e["key"] for e in rejected}
    assert all(e["file"] == str(path) and isinstance(e["line"], int) and e["key"] and e["message"] for e in rejected)
    assert all(e["log_level"] == "error" for e in rejected)
    assert sorted(i.key for i in gw.registry.infos()) == keys and gw.twins == twins and gw.cfg is running
    assert not any(e["event"] == "reload_applied" for e in logs)


async def _rows(recorder, key: str) -> bool:
    await recorder.flush()
    return await asyncio.to_thread(recorder.store.count, key) > 0


async def _true(value: bool) -> bool:
    return value


HEATER = (
    '\n  [[devices.tags]]\n  name = "heater_setpoint"\n  address = "hr:0"\n  type = "int16"\n  scale = 0.1\n  low = 0.0\n  high = 100.0\n  writable = true\n'
)


async def test_an_identified_model_added_and_removed_brings_and_takes_its_methods(gateway) -> None:
    """A reload that gives an asset an identified model adds its Model variables and its Simulate
    and ResetModel methods to the running server (the first methods: the extension is attached
    then), bound to the new twin runner; the reload that takes it away deletes them."""
    gw, path, (opc_port, mb_port, state) = gateway
    with_heater = gateway_toml(opc_port, mb_port, state).replace(
        '  [[devices.tags]]\n  name = "level"', HEATER.lstrip("\n") + '\n  [[devices.tags]]\n  name = "level"', 1
    )
    identified = with_heater.replace(
        'tag = "tank1_plc.temperature"', 'tag = "tank1_plc.temperature"\n  input = "tank1_plc.heater_setpoint"\n  model_period_s = 0.5'
    )
    async with Client(gw.cfg.gateway.endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        tank = client.get_node(ua.NodeId("edgetwin/Assets/tank", ns))

        async def members(node) -> set[str]:
            return {(await c.read_browse_name()).Name for c in await node.get_children()}

        path.write_text(with_heater)
        os.kill(os.getpid(), signal.SIGHUP)
        assert (await _reload_outcome(state, 1))["result"] == "applied"
        assert "Simulate" not in await members(tank)

        path.write_text(identified)
        os.kill(os.getpid(), signal.SIGHUP)
        status = await _reload_outcome(state, 2)
        assert status["result"] == "applied" and status["changes"] == {"assets_changed": ["tank"]}, status
        assert {"Simulate", "ResetModel"} <= await members(tank)
        assert "Gain" in await members(client.get_node(ua.NodeId("edgetwin/Assets/tank/temperature/Model", ns)))
        simulate = client.get_node(ua.NodeId("edgetwin/Assets/tank/Simulate", ns))
        with pytest.raises(ua.UaStatusCodeError) as refused:  # the new runner answers: its model is not warm yet
            await tank.call_method(simulate, ua.Variant([10.0], ua.VariantType.Double, is_array=True), ua.Variant(5, ua.VariantType.UInt32))
        assert refused.value.code == ua.StatusCodes.BadInvalidArgument

        path.write_text(with_heater)
        os.kill(os.getpid(), signal.SIGHUP)
        assert (await _reload_outcome(state, 3))["result"] == "applied"
        assert not {"Simulate", "ResetModel"} & await members(tank)
        assert "Model" not in await members(client.get_node(ua.NodeId("edgetwin/Assets/tank/temperature", ns)))
