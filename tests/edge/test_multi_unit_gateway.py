"""A multi-unit device end to end: one pymodbus server answering three unit ids on one loopback
connection, a gateway whose device declares ``units`` with its tags from a tag file, and an asyncua
client that browses ``Devices/<device>/<unit>/<tag>``, reads each unit's own values, writes to one
unit, and sees a unit added by a reload (SIGHUP) while its session stays connected."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from asyncua import Client, ua
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.app import run_gateway
from edge.config import load_config
from edge.reload.pidfile import read_status, status_path
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # a gateway with its OPC UA server starts, then reloads: several seconds on a loaded machine

NS = "urn:edgetwin:units"
UNITS = (1, 2, 3)

PUMP = """## one pump's register map, the same on every unit
[[tags]]
name = "temperature"
address = "ir:0"
type = "int16"
scale = 0.1
units = "degC"
alarm_high = 90.0

[[tags]]
name = "flow"
address = "ir:2"
type = "float32"

[[tags]]
name = "speed"
address = "hr:10"
writable = true
low = 0.0
high = 3000.0
"""

GATEWAY = """
[gateway]
endpoint = "opc.tcp://127.0.0.1:{opc_port}/edgetwin"
namespace_uri = "{ns}"
state_dir = "{state}"

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "operator"

[[devices]]
name = "pumps"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {mb_port}
poll_interval_s = 0.1
units = {units}
tags_from = "maps/pump.toml"
"""


def _unit(uid: int) -> SimDevice:
    """A unit whose input registers tell it apart: temperature 10*uid + 0.5 degC, flow uid + 0.25."""
    return SimDevice(
        id=uid,
        simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, count=32, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=32, values=0, datatype=DataType.REGISTERS)],
        ),
    )


@pytest.fixture
async def plant(free_port_factory):
    """One Modbus TCP server on loopback answering unit ids 1, 2 and 3, each with its own values."""
    import struct

    port = free_port_factory()
    server = ModbusTcpServer([_unit(u) for u in UNITS], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    for u in UNITS:
        flow = struct.unpack(">2H", struct.pack(">f", u + 0.25))
        await server.async_setValues(u, 4, 0, [10 * u * 10 + 5, 0, *flow])  # FC4 area: input registers
    try:
        yield server, port
    finally:
        await server.shutdown()
        await asyncio.sleep(0)


async def test_units_are_objects_with_their_own_values_and_a_reload_adds_one(plant, tmp_path: Path, free_port_factory) -> None:
    server, mb_port = plant
    opc_port, state = free_port_factory(), tmp_path / "state"
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "pump.toml").write_text(PUMP)
    config = tmp_path / "gateway.toml"

    def write_config(units: list[int]) -> None:
        config.write_text(GATEWAY.format(opc_port=opc_port, ns=NS, state=state, mb_port=mb_port, units=units))

    write_config([1, 2])
    cfg = load_config(config)
    stop, ready, holder = asyncio.Event(), asyncio.Event(), {}

    def on_ready(gw) -> None:
        holder["gw"] = gw
        ready.set()

    task = asyncio.create_task(run_gateway(cfg, shutdown_trigger=stop.wait, on_ready=on_ready), name="gateway")
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        async with Client(cfg.gateway.endpoint, timeout=5) as client:
            ns = await client.get_namespace_index(NS)

            def node(path: str):
                return client.get_node(ua.NodeId(f"edgetwin/{path}", ns))

            async def children(path: str) -> set[str]:
                return {(await c.read_browse_name()).Name for c in await node(path).get_children()}

            async def good(path: str) -> bool:
                return (await node(path).read_data_value(raise_on_bad_status=False)).StatusCode.is_good()

            # browsed from the root by browse names: Objects/edgetwin/Devices/pumps/unit2/temperature
            by_browse = await client.nodes.objects.get_child([f"{ns}:edgetwin", f"{ns}:Devices", f"{ns}:pumps", f"{ns}:unit2", f"{ns}:temperature"])
            assert by_browse.nodeid == ua.NodeId("edgetwin/Devices/pumps/unit2/temperature", ns)
            assert {"unit1", "unit2", "LinkState"} <= await children("Devices/pumps") and "unit3" not in await children("Devices/pumps")
            assert await children("Devices/pumps/unit1") == {"temperature", "flow", "speed"}
            # each unit's limit condition is on the unit's object (related by HasCondition, not a child)
            assert (await node("Devices/pumps/unit1/temperatureHighLimit").read_browse_name()).Name == "temperatureHighLimit"
            assert (await node("Devices/pumps/unit2").read_description()).Text == "unit 2 of device pumps"
            for u in (1, 2):
                await wait_for(lambda u=u: good(f"Devices/pumps/unit{u}/flow"), 15, f"unit {u} to read Good")
                assert await node(f"Devices/pumps/unit{u}/temperature").read_value() == pytest.approx(10 * u + 0.5)
                assert await node(f"Devices/pumps/unit{u}/flow").read_value() == pytest.approx(u + 0.25)

            # a write to one unit's tag goes to that unit only
            await node("Devices/pumps/unit2/speed").write_value(ua.DataValue(ua.Variant(1450, ua.VariantType.UInt16)))
            assert await server.async_getValues(2, 3, 10, 1) == [1450]
            assert await server.async_getValues(1, 3, 10, 1) == [0]

            # a reload adding unit 3: its nodes appear, the session stays, the other units keep their NodeIds
            write_config([1, 2, 3])
            os.kill(os.getpid(), signal.SIGHUP)

            async def reloaded() -> bool:
                status = read_status(status_path(state))
                return status is not None and status["count"] >= 1

            await wait_for(reloaded, 20, "the reload")
            status = read_status(status_path(state))
            assert status is not None and status["result"] == "applied", status
            assert status["changes"]["tags_added"] == ["pumps.unit3.flow", "pumps.unit3.speed", "pumps.unit3.temperature"]
            assert status["needs_restart"] == []
            assert "unit3" in await children("Devices/pumps")
            await wait_for(lambda: good("Devices/pumps/unit3/flow"), 15, "unit 3 to read Good")
            assert await node("Devices/pumps/unit3/temperature").read_value() == pytest.approx(30.5)
            assert (await node("Devices/pumps/unit3/temperatureHighLimit").read_browse_name()).Name == "temperatureHighLimit"
            assert await node("Devices/pumps/unit1/temperature").read_value() == pytest.approx(10.5)
            assert "pumps.unit3.temperature" in holder["gw"].registry
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task
    assert task.exception() is None
