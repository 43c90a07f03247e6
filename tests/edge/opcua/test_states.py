"""Coded values with names (`states`): a MultiStateValueDiscrete with EnumValues and ValueAsText,
through the whole daemon with a real Modbus server; writes outside the states are refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from drivers.modbus.address import Area
from edge.config import ConfigError, parse_config
from tests.drivers.modbus_servers import PymodbusServer
from tests.gateway_task import running_gateway

CONFIG = """
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{opcua_port}/edgetwin"
state_dir = "{state}"

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "operator"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
poll_interval_s = 0.05

  [[devices.tags]]
  name = "fault_mode"
  address = "hr:7"
  type = "uint16"
  writable = true
  states = {{ 0 = "none", 1 = "bearing", 2 = "sensor drift" }}
"""


def test_states_need_raw_integer_codes_and_names() -> None:
    base = '[[devices]]\nname = "plc"\ndriver = "modbus_tcp"\nhost = "h"\n  [[devices.tags]]\n  name = "m"\n  address = "hr:1"\n'
    for extra, message in (
        ('  type = "uint16"\n  scale = 0.1\n  states = { 0 = "a" }\n', "states need an integer tag without scaling"),
        ('  type = "float32"\n  states = { 0 = "a" }\n', "states need an integer tag"),
        ('  type = "uint16"\n  states = { 0 = "" }\n', "code 0 has an empty name"),
        ('  type = "uint16"\n  states = { x = "a" }\n', "states.x"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(base + extra, "g.toml")
        assert len(info.value.problems) == 1 and message in info.value.problems[0] and info.value.problems[0].startswith("g.toml:")


def test_states_from_a_csv_cell(tmp_path: Path) -> None:
    (tmp_path / "tags.csv").write_text("name,address,type,states\nmode,hr:1,uint16,0=stopped;1=running\n")
    cfg = parse_config('[[devices]]\nname = "plc"\ndriver = "modbus_tcp"\nhost = "h"\ntags_csv = "tags.csv"\n', str(tmp_path / "g.toml"))
    assert cfg.devices[0].tags[0].states == {0: "stopped", 1: "running"}


async def test_a_state_variable_is_a_multistate_value_discrete_with_its_text(tmp_path: Path, free_port_factory) -> None:
    modbus = PymodbusServer(free_port_factory())
    await modbus.start()
    await modbus.set(Area.HOLDING, 7, [1])
    cfg = parse_config(CONFIG.format(opcua_port=free_port_factory(), modbus_port=modbus.port, state=tmp_path / "state"), str(tmp_path / "g.toml"))
    try:
        async with running_gateway(cfg), Client(cfg.gateway.endpoint, timeout=5) as client:
            ns = await client.get_namespace_index(cfg.gateway.namespace_uri)
            node = client.get_node(ua.NodeId("gw/Devices/plc/fault_mode", ns))
            assert (await node.read_type_definition()) == ua.NodeId(ua.ObjectIds.MultiStateValueDiscreteType)
            enum_values = await (await node.get_child("0:EnumValues")).read_value()
            assert [(e.Value, e.DisplayName.Text) for e in enum_values] == [(0, "none"), (1, "bearing"), (2, "sensor drift")]
            text = await node.get_child("0:ValueAsText")

            async def shows(value: int, label: str) -> None:
                deadline = time.monotonic() + 5
                while (await node.read_value(), (await text.read_value()).Text) != (value, label):
                    assert time.monotonic() < deadline, f"timed out waiting for {value} {label!r}"
                    await asyncio.sleep(0.05)

            await shows(1, "bearing")
            await node.write_value(ua.DataValue(ua.Variant(2, ua.VariantType.UInt16)))
            assert await modbus.get(Area.HOLDING, 7, 1) == [2]
            await shows(2, "sensor drift")
            with pytest.raises(ua.UaStatusCodeError) as info:
                await node.write_value(ua.DataValue(ua.Variant(5, ua.VariantType.UInt16)))
            assert info.value.code == ua.StatusCodes.BadOutOfRange
            await modbus.set(Area.HOLDING, 7, [9])  # a code the config does not name: shown as the number
            await shows(9, "9")
    finally:
        await modbus.stop()
