"""With [mqtt], the planned nodes (edge.config.nodes) still equal the nodes the server builds:
the sink's Diagnostics/Gateway/Mqtt* variables included."""

from __future__ import annotations

from pathlib import Path

from edge.app import Gateway
from edge.config.loader import parse_config
from edge.config.nodes import planned_nodes
from edge.core.names import MQTT_DIAGNOSTICS, gateway_diag_path
from edge.mqtt import mqtt_sink
from edge.opcua.extensions import northbound_extensions
from edge.opcua.model import ModelInfo
from edge.opcua.server import OpcUaServer
from tests.edge.core.test_names import _kind

CONFIG = """
[opcua]
security_policies = ["None"]

[mqtt]
broker = "mqtt://127.0.0.1:1"
client_id = "c"
sparkplug_node = "n"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"

  [[devices.tags]]
  name = "temp"
  address = "hr:0"
  type = "int16"
  deadband = 0.5
"""


async def test_planned_nodes_with_mqtt_are_built(tmp_path: Path, free_port: int) -> None:
    cfg = parse_config(CONFIG, str(tmp_path / "gateway.toml"))
    planned = {(n.path, n.kind) for n in planned_nodes(cfg)}
    assert {(gateway_diag_path(leaf), "variable") for leaf in MQTT_DIAGNOSTICS} <= planned
    gw = Gateway(cfg)
    mqtt_sink(cfg, gw.registry)  # declares its diagnostics (not entered: no connection here)
    gateway = cfg.gateway.name
    async with northbound_extensions(cfg, gw.registry, gw.twins) as extensions:
        server = OpcUaServer(
            gw.registry, endpoint=f"opc.tcp://127.0.0.1:{free_port}/x", namespace_uri=cfg.gateway.namespace_uri, gateway_name=gateway,
            extensions=extensions, model=ModelInfo.from_config(cfg),
        )  # fmt: skip
        async with server:
            built = set()
            for nid in list(server.ua_server.iserver.aspace.keys()):
                text = nid.Identifier
                if nid.NamespaceIndex != server.namespace_index or not isinstance(text, str):
                    continue
                if (text != gateway and not text.startswith(f"{gateway}/")) or "." in text:
                    continue
                node = server.ua_server.get_node(nid)
                kind = _kind(await node.read_node_class(), await node.read_type_definition())
                if kind is not None:
                    built.add((tuple(text.split("/")[1:]), kind))
    assert planned == built


def test_deadbands_come_from_the_tags(tmp_path: Path) -> None:
    from edge.mqtt.sink import deadbands_of

    assert deadbands_of(parse_config(CONFIG, str(tmp_path / "gateway.toml"))) == {"plc.temp": 0.5}


def test_spool_lives_in_the_state_folder(tmp_path: Path) -> None:
    from edge.mqtt import mqtt_state_dir

    cfg = parse_config(CONFIG, str(tmp_path / "gateway.toml"))
    assert mqtt_state_dir(cfg) == cfg.state.mqtt_dir == cfg.state_path / "mqtt"
    cfg = parse_config('[gateway]\nstate_dir = "st"\n' + CONFIG, str(tmp_path / "gateway.toml"))
    assert mqtt_state_dir(cfg) == tmp_path / "st" / "mqtt"
