"""The information model against a real asyncua Client: type tree, instances, attributes, NodeIds."""

from __future__ import annotations

import pytest
import pytest_asyncio
from asyncua import Client, Server, ua

import kernels
from edge import __version__
from edge.app import Gateway
from edge.config import parse_config
from edge.opcua.model import ModelBuilder, ModelInfo
from edge.opcua.server import OpcUaServer
from edge.opcua.settings import server_options

NS = "urn:edgetwin:model-test"

CONFIG = """
[gateway]
name = "gw"
namespace_uri = "urn:edgetwin:model-test"

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "viewer"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = 1
description = "tank PLC"

  [[devices.tags]]
  name = "temp"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  units = "degC"
  low = -20.0
  high = 150.0
  description = "tank temperature"

  [[devices.tags]]
  name = "count"
  address = "ir:1"
  type = "uint16"

  [[devices.tags]]
  name = "sp"
  address = "hr:0"
  type = "float32"
  units = "%"
  low = 0.0
  high = 100.0
  writable = true
{extra_tag}
[[assets]]
name = "tank"
description = "heated tank"

  [[assets.signals]]
  name = "temp"
  tag = "plc.temp"
  forecast_horizon_s = 45.0
{extra_signal}
"""

EXTRA_TAG = """
  [[devices.tags]]
  name = "level"
  address = "ir:5"
  type = "int16"
  units = "%"
"""
EXTRA_SIGNAL = """
  [[assets.signals]]
  name = "level"
  tag = "plc.level"
"""


def _config(extra: bool = False, *, sp_high: float = 100.0):
    text = CONFIG.format(extra_tag=EXTRA_TAG if extra else "", extra_signal=EXTRA_SIGNAL if extra else "")
    return parse_config(text.replace("high = 100.0", f"high = {sp_high}"), "<memory>")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(free_port_factory):
    cfg = _config()
    gw = Gateway(cfg)
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with (
        OpcUaServer(gw.registry, endpoint=url, namespace_uri=NS, gateway_name="gw", **server_options(cfg)) as server,
        Client(url, timeout=5) as client,
    ):
        ns = await client.get_namespace_index(NS)
        yield server, client, ns


def _nid(ns: int, path: str) -> ua.NodeId:
    return ua.NodeId(f"gw/{path}", ns)


async def _type_definition(client: Client, nid: ua.NodeId) -> ua.NodeId:
    return await client.get_node(nid).read_type_definition()


@pytest.mark.asyncio(loop_scope="module")
async def test_type_tree_shows_each_structure_once(served) -> None:
    """AssetType, TwinSignalType and DeviceType hang under BaseObjectType with mandatory members."""
    _, client, _ = served
    base = client.get_node(ua.NodeId(ua.ObjectIds.BaseObjectType))
    subtypes = {(await t.read_browse_name()).Name: t for t in await base.get_children(refs=ua.ObjectIds.HasSubtype)}
    assert {"AssetType", "TwinSignalType", "DeviceType"} <= set(subtypes)
    members = {
        name: {(await c.read_browse_name()).Name: c for c in await subtypes[name].get_children()} for name in ("AssetType", "TwinSignalType", "DeviceType")
    }
    assert set(members["TwinSignalType"]) == {"Measured", "Estimate", "Forecast", "Residual", "AnomalyScore"}
    assert {"AnomalyScore", "Alarm", "<Signal>"} <= set(members["AssetType"])
    assert {"LinkState", "LastError", "ReadsOk", "ReadsFailed", "Reconnects", "PollCycleTime", "<Tag>"} <= set(members["DeviceType"])
    estimate = members["TwinSignalType"]["Estimate"]
    rule = await estimate.get_referenced_nodes(refs=ua.ObjectIds.HasModellingRule)
    assert [r.nodeid for r in rule] == [ua.NodeId(ua.ObjectIds.ModellingRule_Mandatory)]
    assert await estimate.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
    forecast_children = {(await c.read_browse_name()).Name for c in await members["TwinSignalType"]["Forecast"].get_properties()}
    assert "ForecastHorizon" in forecast_children
    placeholder = members["AssetType"]["<Signal>"]
    assert await placeholder.read_type_definition() == subtypes["TwinSignalType"].nodeid
    rule = await placeholder.get_referenced_nodes(refs=ua.ObjectIds.HasModellingRule)
    assert [r.nodeid for r in rule] == [ua.NodeId(ua.ObjectIds.ModellingRule_OptionalPlaceholder)]


@pytest.mark.asyncio(loop_scope="module")
async def test_instances_reference_their_types(served) -> None:
    server, client, ns = served
    assert await _type_definition(client, _nid(ns, "Devices")) == ua.NodeId(ua.ObjectIds.FolderType)
    assert await _type_definition(client, _nid(ns, "Devices/plc")) == server.type_node_id("DeviceType")
    assert await _type_definition(client, _nid(ns, "Assets/tank")) == server.type_node_id("AssetType")
    assert await _type_definition(client, _nid(ns, "Assets/tank/temp")) == server.type_node_id("TwinSignalType")
    assert (await client.get_node(_nid(ns, "Devices/plc")).read_description()).Text == "tank PLC"
    assert (await client.get_node(_nid(ns, "Assets/tank")).read_description()).Text == "heated tank"
    # the device object carries its link state and counters as well as its tags
    names = {(await c.read_browse_name()).Name for c in await client.get_node(_nid(ns, "Devices/plc")).get_children()}
    assert {"temp", "count", "sp", "LinkState", "ReadsOk", "PollCycleTime"} <= names
    gw_root = await client.nodes.objects.get_child([f"{ns}:gw"])
    assert {(await c.read_browse_name()).Name for c in await gw_root.get_children()} == {"Devices", "Assets", "Diagnostics"}


@pytest.mark.asyncio(loop_scope="module")
async def test_analog_device_tag_attributes(served) -> None:
    _, client, ns = served
    temp = client.get_node(_nid(ns, "Devices/plc/temp"))
    assert await temp.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
    assert await temp.read_data_type() == ua.NodeId(ua.ObjectIds.Double)  # scaled int16 -> engineering float
    assert (await temp.read_description()).Text == "tank temperature"
    assert await temp.read_value_rank() == ua.ValueRank.Scalar
    level = (await temp.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
    assert level == ua.AccessLevel.CurrentRead.mask
    assert (await temp.read_attribute(ua.AttributeIds.Historizing)).Value.Value is False
    eu = await (await temp.get_child(["0:EngineeringUnits"])).read_value()
    assert (eu.NamespaceUri, eu.UnitId, eu.DisplayName.Text) == ("http://www.opcfoundation.org/UA/units/un/cefact", 4408652, "°C")
    rng = await (await temp.get_child(["0:EURange"])).read_value()
    assert (rng.Low, rng.High) == (-20.0, 150.0)


@pytest.mark.asyncio(loop_scope="module")
async def test_plain_and_writable_tag_attributes(served) -> None:
    _, client, ns = served
    count = client.get_node(_nid(ns, "Devices/plc/count"))
    assert await count.read_type_definition() == ua.NodeId(ua.ObjectIds.BaseDataVariableType)
    assert await count.read_data_type() == ua.NodeId(ua.ObjectIds.UInt16)
    assert (await count.read_description()).Text  # generated when the config has none
    assert {(await p.read_browse_name()).Name for p in await count.get_properties()} == set()
    sp = client.get_node(_nid(ns, "Devices/plc/sp"))
    assert await sp.read_data_type() == ua.NodeId(ua.ObjectIds.Float)
    level = (await sp.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
    assert level == ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.CurrentWrite.mask
    # this session is an anonymous viewer: its UserAccessLevel has no write bit
    user_level = (await sp.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
    assert user_level == ua.AccessLevel.CurrentRead.mask


@pytest.mark.asyncio(loop_scope="module")
async def test_twin_and_diagnostic_attributes(served) -> None:
    _, client, ns = served
    forecast = client.get_node(_nid(ns, "Assets/tank/temp/Forecast"))
    assert await forecast.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
    assert await (await forecast.get_child([f"{ns}:ForecastHorizon"])).read_value() == 45.0
    score = client.get_node(_nid(ns, "Assets/tank/AnomalyScore"))
    eu = await (await score.get_child(["0:EngineeringUnits"])).read_value()
    assert eu.DisplayName.Text == "1"
    alarm = client.get_node(_nid(ns, "Assets/tank/Alarm"))
    assert await alarm.read_data_type() == ua.NodeId(ua.ObjectIds.Boolean)
    link = client.get_node(_nid(ns, "Diagnostics/plc/LinkState"))
    assert await link.read_data_type() == ua.NodeId(ua.ObjectIds.String)
    mirror = client.get_node(_nid(ns, "Devices/plc/LinkState"))
    assert (await mirror.read_data_value(raise_on_bad_status=False)).StatusCode == (await link.read_data_value(raise_on_bad_status=False)).StatusCode
    cycle = client.get_node(_nid(ns, "Diagnostics/plc/PollCycleTime"))
    assert (await (await cycle.get_child(["0:EngineeringUnits"])).read_value()).DisplayName.Text == "s"


@pytest.mark.asyncio(loop_scope="module")
async def test_every_gateway_variable_has_a_description_and_a_data_type(served) -> None:
    server, client, _ = served
    for key in server.registry.infos():
        node = client.get_node(server.node_id(key.key))
        assert (await node.read_description()).Text, key.key
        assert (await node.read_data_type()).NamespaceIndex == 0, key.key


@pytest.mark.asyncio(loop_scope="module")
async def test_sessions_and_build_info(served) -> None:
    server, client, ns = served
    await server.drain()
    sessions = await client.get_node(_nid(ns, "Diagnostics/Gateway/Sessions")).read_value()
    assert sessions >= 1
    async with Client(client.server_url.geturl(), timeout=5):
        await server.drain()
        assert await client.get_node(_nid(ns, "Diagnostics/Gateway/Sessions")).read_value() == sessions + 1
    version = await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_BuildInfo_SoftwareVersion)).read_value()
    build = await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_BuildInfo_BuildNumber)).read_value()
    assert version == __version__ and build == f"kernels={kernels.IMPLEMENTATION}"


def _ours(server: Server, ns: int) -> dict[str, ua.NodeId]:
    return {nid.Identifier: nid for nid in list(server.iserver.aspace.keys()) if nid.NamespaceIndex == ns}


async def _node_ids(cfg) -> dict[str, ua.NodeId]:
    """Build the address space of *cfg* in a fresh server (no endpoint); every node in our namespace by id."""
    gw = Gateway(cfg)
    OpcUaServer(gw.registry, endpoint="opc.tcp://127.0.0.1:1/x", namespace_uri=NS, gateway_name="gw")  # declares its own tags
    server = Server()
    await server.init()
    ns = await server.register_namespace(NS)
    builder = ModelBuilder(server, ns, "gw", gw.registry, ModelInfo.from_config(cfg))
    await builder.build_types()
    await builder.build_instances()
    return _ours(server, ns)


@pytest.mark.asyncio(loop_scope="module")
async def test_node_ids_are_stable_across_restarts_and_unrelated_config_edits(served) -> None:
    """NodeIds depend only on the node's own path: a rebuild gives the same ids, and a new tag, a new
    signal and a changed limit elsewhere leave every other NodeId as it was."""
    server, _, _ = served
    first = _ours(server.ua_server, server.namespace_index)
    assert "gw/Devices/plc/temp" in first and "types:TwinSignalType/Forecast" in first
    edited = await _node_ids(_config(extra=True, sp_high=80.0))
    assert set(first) < set(edited)
    assert all(edited[k] == v for k, v in first.items())
    assert {"gw/Devices/plc/level", "gw/Assets/tank/level/Estimate"} <= set(edited) - set(first)
    again = await _node_ids(_config())  # a restart with the same config
    assert again == first
