"""History through the whole gateway: SIGTERM flushes what the registry accepted, and a restarted
gateway serves it over OPC UA HistoryRead; alarms and history come from the config."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta

from asyncua import Client, ua
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.app import Gateway, run_gateway
from edge.config import parse_config
from edge.history.store import HistoryStore
from edge.opcua.extensions import history_path
from tests.gateway_task import running_gateway

NS = "urn:edgetwin:test-gateway-history"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
N = 500


def _config(tmp_path, opcua_port: int, modbus_port: int):
    text = f"""
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{opcua_port}/edgetwin"
namespace_uri = "{NS}"
state_dir = "state"

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "viewer"

[history]
flush_interval_s = 60.0   # nothing reaches the disk before shutdown except by the final flush

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}      # nothing listens: the device stays unreachable
poll_interval_s = 5.0

  [[devices.tags]]
  name = "temp"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  units = "degC"
  historize = true
  alarm_high = 80.0

  [[devices.tags]]
  name = "level"
  address = "ir:1"
  type = "int16"

[[assets]]
name = "tank"
historize = true

  [[assets.signals]]
  name = "temp"
  tag = "plc.temp"
"""
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return parse_config(text, str(path))


async def test_sigterm_flushes_history_and_a_restart_serves_it(tmp_path, free_port_factory) -> None:
    cfg = _config(tmp_path, free_port_factory(), free_port_factory())
    now = utcnow()  # producers stamp the server time: when the gateway received the value
    samples = [TagSample("plc.temp", 20.0 + i / 10, Status.Good, T0 + timedelta(milliseconds=10 * i), now) for i in range(N)]

    def publish_then_sigterm(gw: Gateway) -> None:
        for s in samples:
            gw.registry.publish([s])
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own SIGTERM handler stops it

    async with asyncio.timeout(30):
        await run_gateway(cfg, on_ready=publish_then_sigterm)

    path = history_path(cfg)
    assert path == tmp_path / "state" / "history.sqlite"
    store = HistoryStore(path, retention_days=30, max_db_mb=64)
    store.open()
    try:
        rows = store.read("plc.temp", None, None)
        # every sample the registry accepted; the device outage adds its own BadNoCommunication rows
        ours = [r for r in rows if r.status == Status.Good]
        assert [r.value for r in ours] == [s.value for s in samples]
        assert store.count("plc.level") == 0  # not historized
        assert store.count("tank.temp.estimate") > 0  # the asset's twin outputs are
    finally:
        store.close()

    async with running_gateway(cfg, ready_s=20, stop_s=None), Client(cfg.gateway.endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        temp = client.get_node(ua.NodeId("gw/Devices/plc/temp", ns))
        assert (await temp.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
        dvs = await temp.read_raw_history(T0, T0 + timedelta(seconds=10), return_bounds=False)
        assert [dv.Value.Value for dv in dvs] == [s.value for s in samples]
        assert [dv.SourceTimestamp.replace(tzinfo=UTC) for dv in dvs] == [s.source_time for s in samples]
        size = await client.get_node(ua.NodeId("gw/Diagnostics/Gateway/HistoryDatabaseSize", ns)).read_value()
        assert size > 50 * N  # the 500 samples and the twin outputs are on disk
        # the limit alarm from the config is a condition on the device object
        cond = client.get_node(ua.NodeId("gw/Devices/plc/tempHighLimit", ns))
        assert (await cond.read_browse_name()).Name == "tempHighLimit"


async def test_northbound_loops_are_gateway_tasks_and_a_crashed_one_restarts(tmp_path, free_port_factory) -> None:
    """The publish loop, the alarms loop and the history writer are named tasks of the running
    gateway; a crash of the publish loop is logged at once (task_crashed) and the loop restarts
    (task_restarted), so later samples still reach the address space; shutdown is clean."""
    cfg = _config(tmp_path, free_port_factory(), free_port_factory())
    running: dict[str, Gateway] = {}

    async def check_then_stop() -> None:
        gw = running["gw"]
        server = gw.server
        assert server is not None
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"opcua:publish", "opcua:alarms", "history:writer", "poll:plc", "diagnostics"} <= names
        write_batch = server._write_batch
        crashed: list[object] = []

        async def crash_once(batch) -> None:
            if not crashed:
                crashed.append(batch)
                raise RuntimeError("unexpected")
            await write_batch(batch)

        server._write_batch = crash_once  # type: ignore[method-assign]
        now = utcnow()
        gw.registry.publish([TagSample("plc.level", 1, Status.Good, now, now)])
        await server.drain()
        now = utcnow()
        gw.registry.publish([TagSample("plc.level", 2, Status.Good, now, now)])
        async with asyncio.timeout(5):
            await server.drain()
        assert await server.ua_server.get_node(server.node_id("plc.level")).read_value() == 2

    with capture_logs() as logs:
        async with asyncio.timeout(30):
            await run_gateway(cfg, shutdown_trigger=check_then_stop, on_ready=lambda gw: running.setdefault("gw", gw))
    events = [e["event"] for e in logs]
    assert [e["task"] for e in logs if e["event"] == "task_crashed"] == ["opcua:publish"]
    assert [e["task"] for e in logs if e["event"] == "task_restarted"] == ["opcua:publish"]
    assert events.index("gateway_stopping") < events.index("opcua_server_stopped") < events.index("history_closed") < events.index("gateway_stopped")
