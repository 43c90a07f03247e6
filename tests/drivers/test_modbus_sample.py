"""drivers/modbus/sample.toml parses, its tags build valid points, and its documented defaults are the code's."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest

import drivers.modbus
from drivers.modbus import ModbusTcpDriver, make_point, plan_reads

SAMPLE = Path(drivers.modbus.__file__).with_name("sample.toml")
DEVICE_KEYS = {
    "name", "driver", "host", "port", "unit_id", "timeout_s", "poll_interval_s", "order",
    "max_registers", "max_bits", "max_gap", "description", "tags",
}  # fmt: skip
TAG_KEYS = {
    "name", "address", "type", "order", "scale", "offset", "length", "writable", "low", "high",
    "units", "unit_id", "description",
}  # fmt: skip


def _commented_defaults() -> dict[str, dict[str, object]]:
    """The ``# key = value`` lines of the sample, per section ("device" or "tag")."""
    found: dict[str, dict[str, object]] = {"device": {}, "tag": {}}
    section = "device"
    for raw in SAMPLE.read_text().splitlines():
        line = raw.strip()
        if line == "[[devices.tags]]":
            section = "tag"
        elif line.startswith("# ") and "=" in line:
            found[section].update(tomllib.loads(line[2:]))
    return found


def test_sample_builds_points_and_plans() -> None:
    doc = tomllib.loads(SAMPLE.read_text())
    (device,) = doc["devices"]
    assert set(device) <= DEVICE_KEYS
    assert device["driver"] == ModbusTcpDriver.kind
    points = []
    for tag in device["tags"]:
        assert set(tag) <= TAG_KEYS
        fields = {k: v for k, v in tag.items() if k != "description"}
        fields.setdefault("unit_id", device.get("unit_id", 1))
        fields.setdefault("order", device.get("order", "ABCD"))
        points.append(make_point(**fields))
    assert plan_reads(points)
    ModbusTcpDriver(name=device["name"], host=device["host"], port=device["port"])


def test_commented_keys_are_known_and_match_code_defaults() -> None:
    """Every ``# key = default`` line names a real key and shows the default the code uses."""
    commented = _commented_defaults()
    assert set(commented["device"]) <= DEVICE_KEYS
    assert set(commented["tag"]) <= TAG_KEYS
    driver_defaults = {
        k: p.default for k, p in inspect.signature(ModbusTcpDriver).parameters.items() if p.default is not p.empty
    }
    for key in ("port", "timeout_s", "max_registers", "max_bits", "max_gap"):
        assert commented["device"][key] == driver_defaults[key], key
    point_defaults = {k: p.default for k, p in inspect.signature(make_point).parameters.items() if p.default is not p.empty}
    for key in ("type", "scale", "offset", "writable", "order"):
        assert commented["tag"][key] == point_defaults[key], key


@pytest.mark.parametrize(
    "address", ["hr:100", "40101", "400101", "ir:0", "30001", "coil:0", "co:0", "00001", "di:3", "10004", "hr:100.3"]
)
def test_addresses_shown_in_sample_are_valid(address: str) -> None:
    assert address in SAMPLE.read_text()
    make_point(name="t", address=address, type="bool" if "." in address or address[:2] in ("co", "di", "00", "10") else "uint16")
