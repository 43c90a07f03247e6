"""A device's registry entries built in bulk: the same entries the per-tag code made, for every driver kind."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import parse_config
from edge.core.device_tags import device_tag_infos, optional, renamed, renamed_points
from edge.core.names import tag_key, tag_path
from edge.core.registry import TagInfo, TagRegistry

HEAD = """
[gateway]
endpoint = "opc.tcp://127.0.0.1:4840/edgetwin"
state_dir = "{state}"
"""

DEVICES = {
    "modbus": """
[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = 5020
poll_interval_s = 0.5

  [[devices.tags]]
  name = "temperature"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  units = "degC"
  low = -20.0
  high = 150.0
  description = "tank temperature"

  [[devices.tags]]
  name = "mode"
  address = "hr:3"
  type = "uint16"
  states = {0 = "stopped", 1 = "running"}
  writable = true
""",
    "opcua_subscription": """
[[devices]]
name = "up"
driver = "opcua"
endpoint = "opc.tcp://127.0.0.1:4841"
mode = "subscription"

  [[devices.tags]]
  name = "speed"
  node = "ns=2;s=Speed"
  type = "float64"
  sampling_interval_s = 0.25

  [[devices.tags]]
  name = "flags"
  node = "ns=2;s=Flags"
  type = "bool"
  array = true
""",
    "opcua_poll": """
[[devices]]
name = "up"
driver = "opcua"
endpoint = "opc.tcp://127.0.0.1:4841"
mode = "poll"
poll_interval_s = 2.0

  [[devices.tags]]
  name = "speed"
  node = "ns=2;s=Speed"
  type = "float64"
""",
    "synthetic": """
[[devices]]
name = "load"
driver = "synthetic"
tags = 5
interval_s = 0.1
""",
}


def _before(dev: Any) -> list[TagInfo]:
    """What the gateway built per tag before (edge/app.py up to this change): the specification."""
    points = [dataclasses.replace(p, name=tag_key(dev.name, tag.name)) for tag, p in zip(dev.tags, dev.points(), strict=True)]
    out = []
    for tag, point, interval in zip(dev.tags, points, dev.poll_intervals(), strict=True):
        subscribed = getattr(dev, "mode", None) == "subscription" and hasattr(point, "sampling_interval_s")
        out.append(
            TagInfo(
                point.name, tag_path(dev.name, tag.name), point.value_type, tag.units, tag.low, tag.high, tag.description, tag.writable,
                device=dev.name, array=getattr(point, "array", False),
                sampling_interval_s=point.sampling_interval_s if subscribed else interval,
                states=tuple(sorted(tag.states.items())) if getattr(tag, "states", None) else None,
            )
        )  # fmt: skip
    return out


@pytest.mark.parametrize("kind", sorted(DEVICES))
def test_the_entries_are_the_ones_built_per_tag(kind: str, tmp_path) -> None:
    cfg = parse_config(HEAD.format(state=tmp_path) + DEVICES[kind], str(tmp_path / "g.toml"))
    dev = cfg.devices[0]
    points = renamed_points(dev.name, dev.tags, dev.points())
    assert points == [dataclasses.replace(p, name=tag_key(dev.name, t.name)) for t, p in zip(dev.tags, dev.points(), strict=True)]
    got = device_tag_infos(dev, points, dev.poll_intervals())
    assert got == _before(dev)
    reg = TagRegistry()
    reg.add_all(got)
    assert reg.infos() == got


def test_what_the_entries_carry(tmp_path) -> None:
    cfg = parse_config(HEAD.format(state=tmp_path) + DEVICES["modbus"] + DEVICES["opcua_subscription"], str(tmp_path / "g.toml"))
    plc, up = cfg.devices
    temp, mode = device_tag_infos(plc, renamed_points(plc.name, plc.tags, plc.points()), plc.poll_intervals())
    assert temp.key == "plc.temperature" and temp.path == ("Devices", "plc", "temperature") and temp.units == "degC"
    assert temp.sampling_interval_s == 0.5 and temp.states is None
    assert mode.states == ((0, "stopped"), (1, "running")) and mode.writable
    speed, flags = device_tag_infos(up, renamed_points(up.name, up.tags, up.points()), up.poll_intervals())
    assert speed.sampling_interval_s == 0.25  # the upstream server's sampling interval in subscription mode
    assert flags.array and flags.data_type == "bool"


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    name: str
    value: float = 0.0
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Checked:
    name: str
    length: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", len(self.name))  # depends on the name: only replace() is right


@dataclasses.dataclass
class _Derived:
    name: str
    upper: str = dataclasses.field(init=False, default="")


@given(st.text(), st.text(), st.floats(allow_nan=False), st.lists(st.text(), max_size=3))
def test_renamed_is_replace(old: str, new: str, value: float, tags: list[str]) -> None:
    p = _Plain(old, value, tuple(tags))
    assert renamed(p, new) == dataclasses.replace(p, name=new)
    assert renamed(p, new) is not p and p.name == old


def test_renamed_falls_back_to_replace_where_a_copy_would_differ() -> None:
    assert renamed(_Checked("ab"), "abcd") == _Checked("abcd")
    assert renamed(_Checked("ab"), "abcd").length == 4
    d = _Derived("x")
    d.upper = "X"
    assert renamed(d, "y").upper == ""  # as replace() makes it: an init=False field gets its default


def test_optional_reads_what_the_class_has_and_defaults_otherwise() -> None:
    assert optional(_Plain("a", 2.0), "value") == 2.0
    assert optional(_Plain("a"), "missing", 7) == 7
    assert optional(_Checked("abc"), "length") == 3
