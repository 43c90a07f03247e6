"""``edgetwin browse``: an upstream server's variables as tag entries that load as they are."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import Server, ua

from drivers.opcua_client.browse import BrowsedVariable, browse_variables, render_csv, render_toml, tag_names
from drivers.opcua_client.client import build_client
from edge.config import parse_config

NS = "urn:test:browse"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def plant(free_port: int) -> AsyncIterator[str]:
    """Boiler/{Temperature (writable, with a property), Count, Name, Vector, Limits (a structure)} and Pump/Temperature."""
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port}/browse"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.register_namespace("urn:test:other")  # the plant namespace is 3, not 2
    ns = await server.register_namespace(NS)
    boiler = await server.nodes.objects.add_folder(ua.NodeId("Boiler", ns), ua.QualifiedName("Boiler", ns))
    temp = await boiler.add_variable(ua.NodeId("Boiler.Temperature", ns), ua.QualifiedName("Temperature", ns), ua.Variant(21.5, ua.VariantType.Double))
    await temp.set_writable()
    await temp.add_property(ua.NodeId("Boiler.Temperature.Units", ns), ua.QualifiedName("Units", ns), "degC")
    await boiler.add_variable(ua.NodeId(7, ns), ua.QualifiedName("Count", ns), ua.Variant(3, ua.VariantType.UInt32))
    await boiler.add_variable(ua.NodeId("Boiler.Name", ns), ua.QualifiedName("Name", ns), ua.Variant("one", ua.VariantType.String))
    vector = await boiler.add_variable(ua.NodeId("Boiler.Vector", ns), ua.QualifiedName("Vector", ns), ua.Variant([1.0, 2.0], ua.VariantType.Double))
    await vector.write_attribute(ua.AttributeIds.ValueRank, ua.DataValue(ua.Variant(ua.ValueRank.OneDimension, ua.VariantType.Int32)))
    await boiler.add_variable(
        ua.NodeId("Boiler.Limits", ns), ua.QualifiedName("Limits", ns), ua.Range(Low=0.0, High=1.0), datatype=ua.NodeId(ua.ObjectIds.Range)
    )
    pump = await server.nodes.objects.add_object(ua.NodeId("Pump", ns), ua.QualifiedName("Pump", ns))
    await pump.add_variable(ua.NodeId("Pump.Temperature", ns), ua.QualifiedName("Temperature", ns), ua.Variant(30.0, ua.VariantType.Double))
    async with server:
        yield url


async def _browse(url: str) -> list[BrowsedVariable]:
    client = build_client(url, timeout_s=5)
    await client.connect()
    try:
        return await browse_variables(client)
    finally:
        await client.disconnect()


async def test_variables_come_with_uri_node_ids_types_and_access(plant: str) -> None:
    """Each variable below Objects (but not properties) is listed with its NodeId written with the
    namespace URI, the registry type of its DataType, array and writable flags, and its browse path."""
    found = {v.browse_path: v for v in await _browse(plant) if v.node.startswith(f"nsu={NS};")}
    temp = found["/Objects/3:Boiler/3:Temperature"]
    assert (temp.node, temp.type, temp.array, temp.writable) == (f"nsu={NS};s=Boiler.Temperature", "float64", False, True)
    count = found["/Objects/3:Boiler/3:Count"]
    assert (count.node, count.type, count.writable) == (f"nsu={NS};i=7", "uint32", False)
    assert found["/Objects/3:Boiler/3:Name"].type == "string"
    assert found["/Objects/3:Boiler/3:Vector"].array is True
    assert found["/Objects/3:Boiler/3:Limits"].type is None  # a structure: no built-in type
    assert "/Objects/3:Boiler/3:Temperature/3:Units" not in found  # a property, not a tag
    assert "/Objects/3:Pump/3:Temperature" in found


async def test_the_printed_entries_load_as_a_device_config(plant: str) -> None:
    """The TOML output pasted below a [[devices]] table with driver = "opcua" passes the config
    check as it is; the structure is written commented out, so it does not break the config."""
    variables = [v for v in await _browse(plant) if v.node.startswith(f"nsu={NS};")]
    text = f'[[devices]]\nname = "boiler"\ndriver = "opcua"\nendpoint = "{plant}"\n\n' + render_toml(variables)
    cfg = parse_config(text, "browsed.toml")
    tags = {t.name: t for t in cfg.devices[0].tags}
    assert set(tags) == {"Temperature", "Count", "Name", "Vector", "Pump_Temperature"}
    assert tags["Temperature"].writable and tags["Vector"].array
    assert "# type = ?" in render_toml(variables)


async def test_the_command_prints_csv_rows_for_the_tag_import(plant: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", "browse", plant, "--csv", "--root", f"nsu={NS};s=Boiler", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert [r["name"] for r in rows] == ["Temperature", "Count", "Name", "Vector"]
    assert rows[0] == {
        "name": "Temperature",
        "node": f"nsu={NS};s=Boiler.Temperature",
        "type": "float64",
        "array": "false",
        "writable": "true",
        "description": "",
    }


async def test_a_closed_port_is_a_clear_error_and_exit_1(free_port: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", "browse", f"opc.tcp://127.0.0.1:{free_port}", "--timeout", "2", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert f"edgetwin browse: opc.tcp://127.0.0.1:{free_port}" in err.decode() and out == b""


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["Temperature", "Flow"], ["Temperature", "Flow"]),
        (["Temp (°C)", "2nd stage", "a.b/c"], ["Temp_C", "t_2nd_stage", "a_b_c"]),
        (["x", "x", "x"], ["x", "B_x", "x_2"]),
        (["", "é"], ["tag", "B"]),  # a clash takes the parent name in front
    ],
)
def test_names_are_unique_and_follow_the_config_name_rule(names: list[str], expected: list[str]) -> None:
    variables = [BrowsedVariable(f"i={i}", f"/Objects/{'A' if i == 0 else 'B'}/{n}", n, "float64", False, False) for i, n in enumerate(names)]
    assert tag_names(variables) == expected


def test_csv_leaves_out_variables_without_a_built_in_type() -> None:
    variables = [BrowsedVariable("i=1", "/Objects/a", "a", "float64", False, False), BrowsedVariable("i=2", "/Objects/s", "s", None, False, False)]
    rows = list(csv.DictReader(io.StringIO(render_csv(variables))))
    assert [r["name"] for r in rows] == ["a"]


async def test_the_csv_output_is_a_tag_list_for_tags_csv(plant: str, tmp_path: Path) -> None:
    """``browse --csv`` written to a file and named by ``tags_csv`` gives the same tags as the TOML output."""
    variables = [v for v in await _browse(plant) if v.node.startswith(f"nsu={NS};")]
    (tmp_path / "tags.csv").write_text(render_csv(variables))
    text = f'[[devices]]\nname = "boiler"\ndriver = "opcua"\nendpoint = "{plant}"\ntags_csv = "tags.csv"\n'
    cfg = parse_config(text, str(tmp_path / "gateway.toml"))
    tags = {t.name: t for t in cfg.devices[0].tags}
    assert set(tags) == {"Temperature", "Count", "Name", "Vector", "Pump_Temperature"}
    assert tags["Temperature"].writable and tags["Vector"].array and tags["Count"].type == "uint32"
