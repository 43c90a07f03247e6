"""With [mqtt], the planned nodes (edge.config.nodes) still equal the nodes the server builds:
the sink's Diagnostics/Gateway/Mqtt* variables included."""

from __future__ import annotations

from pathlib import Path

from edge.config.loader import parse_config
from edge.config.nodes import planned_nodes
from edge.core.names import MQTT_DIAGNOSTICS, gateway_diag_path
from edge.mqtt import mqtt_sink
from tests.edge.built_nodes import built_nodes

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
    built = await built_nodes(cfg, free_port, prepare=lambda gw: mqtt_sink(cfg, gw.registry))  # declares its diagnostics (not entered)
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
