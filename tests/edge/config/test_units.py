"""Multi-unit devices (``units``) and tag files (``tags_from``): expansion, names, includes, reload.

Broken configs with their located errors are golden cases (cases/tag_file_errors, cases/units_errors).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.plan import plan_reads
from edge.config import ConfigError, load_config, parse_config
from edge.config.nodes import planned_nodes
from edge.core import names
from edge.mqtt.catalog import metric_name
from edge.opcua.alarms import alarm_specs
from edge.reload.plan import plan_reload

ROOT = Path(__file__).resolve().parents[3]

DEVICE = """
[[devices]]
name = "pumps"
driver = "modbus_tcp"
host = "127.0.0.1"
{units}

  [[devices.tags]]
  name = "temperature"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  alarm_high = 80.0

  [[devices.tags]]
  name = "flow"
  address = "ir:2"
  type = "float32"
"""

PUMP_TOML = """## tags of one pump
[[tags]]
name = "speed"
address = "hr:10"
writable = true

[[tags]]
name = "running"
address = "coil:0"
type = "bool"
"""


def _tags(cfg) -> list[tuple[str, int | None]]:
    return [(t.name, t.unit_id) for t in cfg.devices[0].tags]


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (
            "units = [1, 2, 3]",
            [
                ("unit1.temperature", 1),
                ("unit1.flow", 1),
                ("unit2.temperature", 2),
                ("unit2.flow", 2),
                ("unit3.temperature", 3),
                ("unit3.flow", 3),
            ],
        ),
        ("units = [7]", [("unit7.temperature", 7), ("unit7.flow", 7)]),
        ("units = { pump_a = 4, pump_b = 9 }", [("pump_a.temperature", 4), ("pump_a.flow", 4), ("pump_b.temperature", 9), ("pump_b.flow", 9)]),
        ("units = [0, 255]", [("unit0.temperature", 0), ("unit0.flow", 0), ("unit255.temperature", 255), ("unit255.flow", 255)]),
    ],
)
def test_each_unit_gets_its_own_copy_of_every_tag(units: str, expected: list[tuple[str, int]]) -> None:
    cfg = parse_config(DEVICE.format(units=units))
    assert _tags(cfg) == expected
    dev = cfg.devices[0]
    assert [(p.name, p.unit_id) for p in dev.points()] == expected  # the driver reads each copy from its unit


def test_names_keys_and_node_ids_of_a_unit_tag() -> None:
    cfg = parse_config(DEVICE.format(units="units = [1, 2]"))
    tag = "unit2.temperature"
    assert names.tag_key("pumps", tag) == "pumps.unit2.temperature"
    assert names.tag_path("pumps", tag) == ("Devices", "pumps", "unit2", "temperature")
    assert names.node_id_text("edgetwin", names.tag_path("pumps", tag)) == "edgetwin/Devices/pumps/unit2/temperature"
    assert names.limit_condition_path("pumps", tag, "high") == ("Devices", "pumps", "unit2", "temperatureHighLimit")
    devices = [n for n in planned_nodes(cfg) if n.path[:2] == ("Devices", "pumps") and n.source != "devices[0]"]
    assert [("/".join(n.path), n.kind) for n in devices] == [
        ("Devices/pumps", "object"),
        ("Devices/pumps/unit1", "object"),
        ("Devices/pumps/unit2", "object"),
        ("Devices/pumps/unit1/temperature", "variable"),
        ("Devices/pumps/unit1/temperatureHighLimit", "condition"),
        ("Devices/pumps/unit1/flow", "variable"),
        ("Devices/pumps/unit2/temperature", "variable"),
        ("Devices/pumps/unit2/temperatureHighLimit", "condition"),
        ("Devices/pumps/unit2/flow", "variable"),
    ]
    # the limit condition sits on the unit's object; MQTT names the metric by its path below the device
    spec = next(s for s in alarm_specs(cfg) if s.key == "pumps.unit2.temperature")
    assert (spec.source, spec.name) == (("Devices", "pumps", "unit2"), "temperatureHighLimit")
    assert metric_name(names.tag_path("pumps", tag)) == ("pumps", "unit2/temperature")


def test_a_device_without_units_keeps_its_names_and_node_ids() -> None:
    """Stable NodeIds are a promise: a device with one unit_id is named exactly as before units existed."""
    cfg = parse_config(DEVICE.format(units="unit_id = 3"))
    assert _tags(cfg) == [("temperature", None), ("flow", None)]
    assert [(p.name, p.unit_id) for p in cfg.devices[0].points()] == [("temperature", 3), ("flow", 3)]
    paths = {names.node_id_text("edgetwin", n.path) for n in planned_nodes(cfg)}
    assert {"edgetwin/Devices/pumps/temperature", "edgetwin/Devices/pumps/temperatureHighLimit", "edgetwin/Devices/pumps/flow"} <= paths
    assert not any(p.startswith("edgetwin/Devices/pumps/unit") for p in paths)
    assert names.tag_key("pumps", "temperature") == "pumps.temperature"
    assert alarm_specs(cfg)[0].source == ("Devices", "pumps")
    # the shipped demo: every device tag right below its device, as the demo's clients know them
    demo = load_config(ROOT / "config" / "demo.toml")
    tags = [n.path for n in planned_nodes(demo) if n.kind == "variable" and n.source.endswith(".name") and n.path[0] == "Devices"]
    assert ("Devices", "tank1_plc", "temperature") in tags and all(len(p) == 3 for p in tags)


def test_requests_are_planned_per_unit() -> None:
    """The bus plans each unit's blocks apart (one connection, several unit ids): a contiguous
    template becomes one request per unit."""
    cfg = parse_config(DEVICE.format(units="units = [1, 2, 3]"))
    requests = plan_reads(cfg.devices[0].points())
    assert [(r.unit_id, r.start, r.count, [p.name for p in r.points]) for r in requests] == [
        (u, 0, 4, [f"unit{u}.temperature", f"unit{u}.flow"]) for u in (1, 2, 3)
    ]


def test_assets_history_and_mqtt_name_a_unit_tag() -> None:
    text = DEVICE.format(units="units = [1, 2]").replace('type = "float32"', 'type = "float32"\n  historize = true') + (
        '\n[[assets]]\nname = "pump2"\n\n  [[assets.signals]]\n  name = "flow"\n  tag = "pumps.unit2.flow"\n  input = "pumps.unit2.temperature"\n'
    )
    cfg = parse_config(text)
    assert cfg.assets[0].signals[0].tag == "pumps.unit2.flow"
    historized = [names.tag_key("pumps", t.name) for t in cfg.devices[0].tags if t.historize]
    assert historized == ["pumps.unit1.flow", "pumps.unit2.flow"]


def test_tags_from_files_are_appended_in_order_relative_to_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "pump.toml").write_text(PUMP_TOML)
    (tmp_path / "maps" / "extra.csv").write_text("name,address,type\nlevel,ir:20,uint16\n")
    (tmp_path / "old.csv").write_text("name,address\nalarm_word,ir:30\n")
    config = tmp_path / "gateway.toml"
    units = 'units = [1, 2]\ntags_csv = "old.csv"\ntags_from = ["maps/pump.toml", "maps/extra.csv"]'
    config.write_text(DEVICE.format(units=units))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the config file, not to the working directory
    cfg = load_config(config)
    template = ["temperature", "flow", "alarm_word", "speed", "running", "level"]
    assert [t.name for t in cfg.devices[0].tags] == [f"unit{u}.{t}" for u in (1, 2) for t in template]
    speed = next(t for t in cfg.devices[0].tags if t.name == "unit2.speed")
    assert (speed.address, speed.writable, speed.unit_id) == ("hr:10", True, 2)


def test_one_tag_file_serves_several_devices(tmp_path: Path) -> None:
    (tmp_path / "pump.toml").write_text(PUMP_TOML)
    text = "".join(f'[[devices]]\nname = "{n}"\ndriver = "modbus_tcp"\nhost = "127.0.0.1"\ntags_from = "pump.toml"\n\n' for n in ("p1", "p2"))
    (tmp_path / "gateway.toml").write_text(text)
    cfg = load_config(tmp_path / "gateway.toml")
    assert [[t.name for t in d.tags] for d in cfg.devices] == [["speed", "running"], ["speed", "running"]]


def test_an_error_in_a_tag_file_is_located_there_once_for_all_units(tmp_path: Path) -> None:
    """Each unit's copy of a template has the template's problem: it is listed once, at the template."""
    pump = PUMP_TOML.replace("writable = true", "writable = true\nalarm_high = 900.0") + '\n[[tags]]\nname = "speedHighLimit"\naddress = "hr:11"\n'
    (tmp_path / "pump.toml").write_text(pump)
    (tmp_path / "gateway.toml").write_text(DEVICE.format(units='units = [1, 2, 3]\ntags_from = "pump.toml"'))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gateway.toml")
    where = tmp_path / "pump.toml"
    assert info.value.problems == [f"{where}:14: tags[2].name: 'speedHighLimit' collides with the HighLimit condition of 'speed' ({where}:2)"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 255), min_size=1, max_size=6, unique=True),
    st.lists(st.integers(0, 500), min_size=1, max_size=5, unique=True),
)
def test_expansion_covers_every_unit_and_template_once(unit_ids: list[int], addresses: list[int]) -> None:
    tags = "".join(f'\n  [[devices.tags]]\n  name = "t{a}"\n  address = "hr:{a}"\n' for a in addresses)
    cfg = parse_config(f'[[devices]]\nname = "d"\ndriver = "modbus_tcp"\nhost = "127.0.0.1"\nunits = {unit_ids}\n{tags}')
    got = [(p.unit_id, p.address, p.name) for p in cfg.devices[0].points()]
    assert got == [(u, a, f"unit{u}.t{a}") for u in unit_ids for a in addresses]
    assert len({names.tag_path("d", t.name) for t in cfg.devices[0].tags}) == len(unit_ids) * len(addresses)


def test_reload_adding_a_unit_adds_its_tags() -> None:
    old = parse_config(DEVICE.format(units="units = [1, 2]"))
    new = parse_config(DEVICE.format(units="units = [1, 2, 3]"))
    plan = plan_reload(old, new)
    assert plan.tags_added == ("pumps.unit3.flow", "pumps.unit3.temperature")
    assert plan.tags_removed == () and plan.tags_changed == () and plan.needs_restart == ()
    assert plan.devices_restart == ("pumps",)  # its poll task restarts with the new unit; the gateway does not
    back = plan_reload(new, old)
    assert back.tags_removed == ("pumps.unit3.flow", "pumps.unit3.temperature") and back.tags_added == ()


EXAMPLE = ROOT / "docs" / "examples" / "pump_skid" / "gateway.toml"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def flat_form(path: Path) -> str:
    """*path* written without units and tag files, as it had to be before them: every tag of
    every unit as its own ``[[devices.tags]]`` table, named ``u<N>_<tag>``, with its ``unit_id``."""
    cfg = load_config(path)
    text = path.read_text()
    head, _, rest = text.partition("\n[[assets]]")
    head = "\n".join(line for line in head.splitlines() if not line.startswith(("units =", "tags_from =")))
    tables = []
    for tag in cfg.devices[0].tags:
        leaf = names.split_tag(tag.name)[1]
        keys = {"name": f"u{tag.unit_id}_{leaf}", "unit_id": tag.unit_id}
        keys |= {k: getattr(tag, k) for k in type(tag).model_fields if k in tag.model_fields_set and k not in ("name", "unit_id")}
        tables.append("  [[devices.tags]]\n" + "".join(f"  {k} = {_toml_value(v)}\n" for k, v in keys.items()))
    assets = "\n[[assets]]" + rest
    for u in (1, 2, 3):
        assets = assets.replace(f"skid.unit{u}.", f"skid.u{u}_")
    return head + "\n\n" + "\n".join(tables) + assets


def test_the_pump_skid_example_reads_what_its_flat_form_reads(tmp_path: Path) -> None:
    """docs/examples/pump_skid: three units from one tag file poll exactly the registers (unit,
    area, address, type, order, scaling) of the same skid written tag by tag."""
    flat = tmp_path / "flat.toml"
    flat.write_text(flat_form(EXAMPLE))
    before, after = load_config(flat), load_config(EXAMPLE)

    def registers(cfg) -> list[str]:  # every point with its name left out
        return sorted(repr(replace(p, name="")) for p in cfg.devices[0].points())

    assert len(after.devices[0].tags) == 3 * 34 and registers(before) == registers(after)
    lines_after = len(EXAMPLE.read_text().splitlines()) + len((EXAMPLE.parent / "maps" / "pump.toml").read_text().splitlines())
    assert len(flat.read_text().splitlines()) > 2.5 * lines_after


def test_tags_from_is_generic_over_the_drivers_tag_model(tmp_path: Path) -> None:
    """An upstream OPC UA server's tags from a tag file: validated with that driver's tag model."""
    good = '[[tags]]\nname = "temperature"\nnode = "ns=2;s=Boiler.T"\ntype = "float64"\n'
    (tmp_path / "boiler.toml").write_text(good + '\n[[tags]]\nname = "bad"\nnode = "ns=2;s=X"\n')
    config = '[[devices]]\nname = "boiler"\ndriver = "opcua"\nendpoint = "opc.tcp://127.0.0.1:4840"\ntags_from = "boiler.toml"\n'
    (tmp_path / "gateway.toml").write_text(config)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "gateway.toml")
    assert info.value.problems == [f"{tmp_path / 'boiler.toml'}:6: tags[1].type: required key is missing"]
    (tmp_path / "boiler.toml").write_text(good)
    assert [(t.name, t.node) for t in load_config(tmp_path / "gateway.toml").devices[0].tags] == [("temperature", "ns=2;s=Boiler.T")]
