"""plan_reload: a table of (running config, new config) pairs and what each reload changes."""

from __future__ import annotations

import pytest

from edge.config import parse_config
from edge.reload.plan import ReloadPlan, effective_config, located, plan_reload

BASE = """
[gateway]
endpoint = "opc.tcp://127.0.0.1:4840/edgetwin"

[opcua]
security_policies = ["None"]
allow_anonymous = true

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = 5020
poll_interval_s = 0.5

  [[devices.tags]]
  name = "temp"
  address = "ir:0"
  type = "int16"
  units = "degC"

  [[devices.tags]]
  name = "level"
  address = "ir:1"
  type = "int16"

[[devices]]
name = "meter"
driver = "modbus_tcp"
host = "127.0.0.1"
port = 5021

  [[devices.tags]]
  name = "power"
  address = "ir:0"
  type = "float32"

[[assets]]
name = "tank"
tick_s = 0.5

  [[assets.signals]]
  name = "temp"
  tag = "plc.temp"

[[assets]]
name = "grid"
tick_s = 1.0

  [[assets.signals]]
  name = "power"
  tag = "meter.power"
"""


def _edit(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


LEVEL_TAG = '  [[devices.tags]]\n  name = "level"\n  address = "ir:1"\n  type = "int16"\n'
METER = BASE[BASE.index('[[devices]]\nname = "meter"') : BASE.index("[[assets]]")]
GRID = BASE[BASE.index('[[assets]]\nname = "grid"') :]

CASES = [
    ("identical", BASE, ReloadPlan()),
    (
        "devices, tags and signals reordered",
        # the meter device first, the plc's two tags swapped
        _edit(
            BASE,
            (METER, ""),
            ('[[devices]]\nname = "plc"', METER + '[[devices]]\nname = "plc"'),
            (LEVEL_TAG, ""),
            ('  [[devices.tags]]\n  name = "temp"', LEVEL_TAG + '\n  [[devices.tags]]\n  name = "temp"'),
        ),
        ReloadPlan(),
    ),
    (
        "a tag added",
        _edit(BASE, (LEVEL_TAG, LEVEL_TAG + '\n  [[devices.tags]]\n  name = "flow"\n  address = "ir:2"\n  type = "int16"\n')),
        ReloadPlan(devices_restart=("plc",), tags_added=("plc.flow",)),
    ),
    ("a tag removed", _edit(BASE, (LEVEL_TAG, "")), ReloadPlan(devices_restart=("plc",), tags_removed=("plc.level",))),
    (
        "a tag read by an asset changed: the asset too",
        _edit(BASE, ('units = "degC"', 'units = "K"')),
        ReloadPlan(devices_restart=("plc",), tags_changed=("plc.temp",), assets_changed=("tank",)),
    ),
    ("a device setting", _edit(BASE, ("poll_interval_s = 0.5", "poll_interval_s = 0.25")), ReloadPlan(devices_restart=("plc",))),
    (
        "a device removed with the asset that reads it",
        _edit(BASE, (METER, ""), (GRID, "")),
        ReloadPlan(devices_stop=("meter",), tags_removed=("meter.power",), assets_removed=("grid",)),
    ),
    (
        "a device and an asset added",
        BASE + METER.replace('"meter"', '"pump"').replace("5021", "5022") + GRID.replace('"grid"', '"line"').replace("meter.power", "pump.power"),
        ReloadPlan(devices_start=("pump",), tags_added=("pump.power",), assets_added=("line",)),
    ),
    ("an asset setting", _edit(BASE, ("tick_s = 1.0", "tick_s = 2.0")), ReloadPlan(assets_changed=("grid",))),
    (
        "backoff restarts every device",
        _edit(BASE, ('endpoint = "opc.tcp://127.0.0.1:4840/edgetwin"', 'endpoint = "opc.tcp://127.0.0.1:4840/edgetwin"\nbackoff_max_s = 10.0')),
        ReloadPlan(devices_restart=("meter", "plc")),
    ),
    (
        "an alarm limit: the northbound side only, no device or twin restart",
        _edit(BASE, ('units = "degC"', 'units = "degC"\n  alarm_high = 60.0')),
        ReloadPlan(tags_changed=("plc.temp",)),
    ),
    (
        "historize without a history database",
        _edit(BASE, ('units = "degC"', 'units = "degC"\n  historize = true')),
        ReloadPlan(tags_changed=("plc.temp",), needs_restart=("devices[0].tags[0].historize",)),
    ),
]


@pytest.mark.parametrize(("name", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan_of_each_change(name: str, new: str, expected: ReloadPlan) -> None:
    assert plan_reload(parse_config(BASE), parse_config(new)) == expected


def test_keys_a_running_server_cannot_change_are_named_and_kept() -> None:
    old = parse_config(BASE)
    new = parse_config(
        _edit(
            BASE,
            ("4840/edgetwin", '4841/edgetwin"\nnamespace_uri = "urn:other'),
            ('security_policies = ["None"]', 'security_policies = ["None", "Basic256Sha256"]'),
            ("tick_s = 1.0", "tick_s = 2.0"),
        )
    )
    plan = plan_reload(old, new)
    assert plan.needs_restart == ("gateway.endpoint", "gateway.namespace_uri", "opcua.security_policies")
    assert plan.assets_changed == ("grid",) and plan.live_changes
    running = effective_config(old, new)
    assert running.gateway.endpoint == old.gateway.endpoint and running.gateway.namespace_uri == old.gateway.namespace_uri
    assert running.opcua == old.opcua
    assert running.assets[1].tick_s == 2.0
    # the next reload of the same file names the same keys again: they still differ from what runs
    assert plan_reload(running, new).needs_restart == plan.needs_restart
    assert not plan_reload(running, new).live_changes


def test_historize_is_live_while_history_runs() -> None:
    new = parse_config(_edit(BASE, ('units = "degC"', 'units = "degC"\n  historize = true')))
    assert plan_reload(parse_config(BASE), new, history_running=True).needs_restart == ()


def test_no_change_means_nothing_to_apply() -> None:
    assert not plan_reload(parse_config(BASE), parse_config(BASE)).live_changes


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (
            "a.toml:12: devices[0].tags[1].address: register 70000 is outside 0..65535",
            ("a.toml", 12, "devices[0].tags[1].address", "register 70000 is outside 0..65535"),
        ),
        (
            "/etc/e g/a.toml:3: gateway.endpont: unknown key (did you mean 'endpoint'?)",
            ("/etc/e g/a.toml", 3, "gateway.endpont", "unknown key (did you mean 'endpoint'?)"),
        ),
        ("a.toml:?: assets[0]: detector needs at least 2 signals", ("a.toml", None, "assets[0]", "detector needs at least 2 signals")),
        ("a.toml:7: TOML syntax error: Expected '=' (at line 7, column 3)", ("a.toml", 7, None, "TOML syntax error: Expected '=' (at line 7, column 3)")),
        ("a.toml: cannot read: No such file or directory", ("a.toml", None, None, "cannot read: No such file or directory")),
    ],
)
def test_located_splits_each_config_error(problem: str, expected: tuple) -> None:
    got = located(problem)
    assert (got["file"], got["line"], got["key"], got["message"]) == expected
