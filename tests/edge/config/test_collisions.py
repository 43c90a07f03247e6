"""The collision check: one path, one creator (golden cases in cases/*collid* and cases/reserved_model_names)."""

from __future__ import annotations

import pytest

from edge.config.collisions import find_collisions
from edge.config.loader import ConfigError, parse_config
from edge.config.nodes import PlannedNode

DEVICE = """
[[devices]]
name = "{name}"
driver = "modbus_tcp"
host = "127.0.0.1"
{tags}"""
TAG = """
  [[devices.tags]]
  name = "{name}"
  address = "ir:{address}"
{extra}"""
ASSET = """
[[assets]]
name = "tank"
{extra}
  [[assets.signals]]
  name = "level"
  tag = "plc.level"

  [[assets.signals]]
  name = "{signal}"
  tag = "plc.temp"
{signal_extra}"""


def _device(name: str, *tags: tuple[str, str]) -> str:
    return DEVICE.format(name=name, tags="".join(TAG.format(name=t, address=i, extra=extra) for i, (t, extra) in enumerate(tags)))


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "g.toml")
    return info.value.problems


PLC = _device("plc", ("level", ""), ("temp", ""), ("heater", "  low = 0.0\n  high = 100.0\n"))


def test_duplicate_names_are_reported_once_as_duplicates() -> None:
    """Two devices (or tags) with one name create the same nodes; the duplicate-name error says so, alone."""
    text = _device("plc", ("temp", "  alarm_high = 1.0\n")) + _device("plc", ("temp", "  alarm_high = 1.0\n"), ("temp", ""))
    assert [p.split(": ", 2)[2] for p in _problems(text)] == [
        "duplicate device name 'plc' (first at devices[0])",
        "duplicate tag name 'temp' (first at devices[1].tags[0])",
    ]


@pytest.mark.parametrize("signal", ["Simulate", "ResetModel", "Detector", "Model"])
def test_member_names_are_free_where_the_member_does_not_exist(signal: str) -> None:
    """Without an identified model there are no methods; without [assets.detector] no Detector."""
    parse_config(PLC + ASSET.format(extra="", signal=signal, signal_extra=""))


def test_method_name_collides_once_the_asset_identifies_a_model() -> None:
    text = PLC + ASSET.format(extra="", signal="Simulate", signal_extra='  input = "plc.heater"\n')
    assert _problems(text) == ["g.toml:29: assets[0].signals[1].name: 'Simulate' collides with the asset's Simulate method (assets[0].signals[1].input)"]


def test_detector_signal_collides_only_with_a_detector() -> None:
    text = PLC + ASSET.format(extra="  [assets.detector]\n  train_ticks = 10\n", signal="Detector", signal_extra="")
    assert _problems(text) == ["g.toml:31: assets[0].signals[1].name: 'Detector' collides with the asset's Detector (assets[0].detector)"]


def test_a_tag_named_like_a_condition_of_another_device_is_fine() -> None:
    parse_config(_device("a", ("temp", "  alarm_high = 1.0\n")) + _device("b", ("tempHighLimit", "")))


def _node(path: str, source: str, what: str, name: str | None = None, kind: str = "variable") -> PlannedNode:
    return PlannedNode(tuple(path.split("/")), kind, source, what, name)  # type: ignore[arg-type]


def test_the_named_creator_is_reported_whatever_the_order() -> None:
    """The error goes to the config name that can be changed, not to the member it collides with."""
    tag = _node("Devices/d/x", "devices[0].tags[1].name", "tag 'x'", "x")
    diag = _node("Devices/d/x", "devices[0]", "the device's diagnostics variable x")
    expected = [("devices[0].tags[1].name", "'x' collides with the device's diagnostics variable x (devices[0])")]
    assert find_collisions([tag, diag]) == expected
    assert find_collisions([diag, tag]) == expected


def test_unnamed_creators_report_the_later_one_and_never_the_gateway() -> None:
    gateway = _node("Diagnostics/Gateway/v", "", "the gateway's diagnostics")
    first = _node("Assets/a/m", "assets[0].detector", "the asset's m")
    second = _node("Assets/a/m", "assets[0].signals[0].input", "the m method", kind="method")
    assert find_collisions([gateway, _node("Diagnostics/Gateway/v", "devices[0]", "a diagnostic")]) == [
        ("devices[0]", "a diagnostic at Diagnostics/Gateway/v collides with the gateway's diagnostics (Diagnostics/Gateway/v)")
    ]
    assert find_collisions([first, second]) == [("assets[0].signals[0].input", "the m method at Assets/a/m collides with the asset's m (assets[0].detector)")]


def test_items_from_other_files_are_named_by_file_and_line() -> None:
    csv_tag = _node("Devices/d/xHighLimit", "devices[0].tags[3].alarm_high", "the HighLimit condition of 'x'", kind="condition")
    tag = _node("Devices/d/xHighLimit", "devices[0].tags[0].name", "tag 'xHighLimit'", "xHighLimit")
    assert find_collisions([tag, csv_tag], {"devices[0].tags[3]": ("tags.csv", 7, 5)}) == [
        ("devices[0].tags[0].name", "'xHighLimit' collides with the HighLimit condition of 'x' (tags.csv:7)")
    ]
