"""Modbus device configuration: CSV tag import, RTU devices, scan groups, and the driver each device builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus import ModbusRtuDriver, ModbusTcpDriver
from edge.app import Gateway
from edge.config import ConfigError, load_config, parse_config

CONFIG = """
[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
poll_interval_s = 1.0
stale_after_s = 12.0
tags_csv = "maps/plc.csv"

  [[devices.tags]]
  name = "first"
  address = "hr:0"

[[devices]]
name = "bus"
driver = "modbus_rtu"
port = "/dev/ttyS3"
baud_rate = 9600
parity = "E"
retries = 2
demote_after = 5
demote_for_s = 20.0

  [[devices.tags]]
  name = "meter"
  unit_id = 7
  address = "30001"
  type = "float32"
"""

CSV = """name,address,type,scale,offset,units,writable,low,high,unit_id,poll_interval_s,description
flow,ir:10,float32,,,m3/h,,,,,0.25,"flow, filtered"
setpoint,hr:20,int16,0.1,-5,degC,true,0,90,,,
alarm,coil:3,bool,,,,yes,,,2,,
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "plc.csv").write_text(CSV)
    (tmp_path / "gateway.toml").write_text(CONFIG)
    return tmp_path


def test_csv_tags_are_appended_with_typed_values(config_dir: Path) -> None:
    """The CSV path is relative to the config file; cells are converted to the tag keys' types."""
    cfg = load_config(config_dir / "gateway.toml")
    plc = cfg.device("plc")
    assert [t.name for t in plc.tags] == ["first", "flow", "setpoint", "alarm"]
    points = {p.name: p for p in plc.points()}
    assert (points["setpoint"].scale, points["setpoint"].offset, points["setpoint"].writable) == (0.1, -5.0, True)
    assert (points["setpoint"].low, points["setpoint"].high, points["setpoint"].units) == (0.0, 90.0, "degC")
    assert (points["alarm"].unit_id, points["alarm"].writable) == (2, True)
    assert plc.tags[1].description == "flow, filtered"
    assert plc.poll_intervals() == [1.0, 0.25, 1.0, 1.0]


def test_devices_build_their_drivers_and_runners(config_dir: Path) -> None:
    gw = Gateway(load_config(config_dir / "gateway.toml"))
    plc, bus = gw.supervisor.runners
    assert isinstance(plc.driver, ModbusTcpDriver) and isinstance(bus.driver, ModbusRtuDriver)
    assert (bus.driver.port, bus.driver.baud_rate, bus.driver.parity, bus.driver.retries) == ("/dev/ttyS3", 9600, "E", 2)
    assert (bus.driver.units.demote_after, bus.driver.units.demote_for_s) == (5, 20.0)
    assert bus.driver.frame_pause_s == pytest.approx(3.5 * 11 / 9600)
    assert plc.stale_after_s == 12.0
    assert sorted(g.interval_s for g in plc.groups) == [0.25, 1.0]
    assert bus.points[0].address == 0 and bus.points[0].unit_id == 7
    assert gw.registry.info("plc.setpoint").data_type == "float64"  # scaled integers publish as float


def test_csv_header_without_name_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("address,type\nhr:0,uint16\n")
    (tmp_path / "g.toml").write_text('[[devices]]\nname = "p"\ndriver = "modbus_tcp"\nhost = "h"\ntags_csv = "t.csv"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "g.toml")
    assert info.value.problems == [f"{tmp_path / 't.csv'}:1: the header must name at least the columns 'name' and 'address'"]


def test_csv_tag_names_feed_asset_references(config_dir: Path) -> None:
    """Assets may refer to CSV tags like to any other tag."""
    text = (config_dir / "gateway.toml").read_text() + '\n[[assets]]\nname = "a"\n  [[assets.signals]]\n  name = "f"\n  tag = "plc.flow"\n'
    (config_dir / "gateway.toml").write_text(text)
    assert load_config(config_dir / "gateway.toml").assets[0].signals[0].tag == "plc.flow"


def test_rtu_device_without_tags_is_valid() -> None:
    cfg = parse_config('[[devices]]\nname = "b"\ndriver = "modbus_rtu"\nport = "COM3"\nbaud_rate = 115200\n')
    assert cfg.devices[0].frame_pause_s is None
    assert ModbusRtuDriver.from_settings(cfg.devices[0]).frame_pause_s == 0.00175  # 1.75 ms above 19200 baud


def test_string_length_is_limited_by_what_one_request_carries() -> None:
    """A string tag is read with one FC3/FC4 request (up to 125 registers) and written with one FC16
    request (up to 123): a longer writable string is a config error, at the tag."""
    head = '[[devices]]\nname = "p"\ndriver = "modbus_tcp"\nhost = "h"\n'
    tag = '[[devices.tags]]\nname = "s"\naddress = "hr:0"\ntype = "string"\nlength = {}\nwritable = {}\n'
    assert parse_config(head + tag.format(125, "false")).devices[0].points()[0].count == 125
    assert parse_config(head + tag.format(123, "true")).devices[0].points()[0].writable
    with pytest.raises(ConfigError) as info:
        parse_config(head + tag.format(124, "true") + tag.replace('"s"', '"t"').format(126, "false"), "x.toml")
    assert info.value.problems == [
        "x.toml:5: devices[0].tags[0]: a writable string has at most 123 registers (one FC16 write), got length 124",
        "x.toml:15: devices[0].tags[1].length: Input should be less than or equal to 125",
    ]
