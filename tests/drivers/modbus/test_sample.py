"""drivers/modbus/sample.toml parses, its tags build valid points, and its documented defaults are the code's."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest

import drivers.modbus
from drivers import load_driver
from drivers.modbus import ModbusRtuDriver, ModbusTcpDriver, make_point, plan_reads
from drivers.modbus.bus import ModbusDriver
from drivers.modbus.settings import ModbusRtuSettings, ModbusTag, ModbusTcpSettings
from edge.config import load_config

SAMPLE = Path(drivers.modbus.__file__).with_name("sample.toml")
MODELS = {"modbus_tcp": ModbusTcpSettings, "modbus_rtu": ModbusRtuSettings}


def _commented_defaults() -> list[tuple[str, dict[str, object]]]:
    """The ``# key = value`` lines of the sample, per section: ("modbus_tcp" | "modbus_rtu" | "tag", values)."""
    sections: list[tuple[str, dict[str, object]]] = []
    for raw in SAMPLE.read_text().splitlines():
        line = raw.strip()
        if line == "[[devices]]":
            sections.append(("device", {}))
        elif line == "[[devices.tags]]":
            sections.append(("tag", {}))
        elif line.startswith("driver = "):
            sections[-1] = (tomllib.loads(line)["driver"], sections[-1][1])
        elif line.startswith("# ") and "=" in line and not line.startswith("# name,"):
            sections[-1][1].update(tomllib.loads(line[2:]))
    return sections


def test_sample_loads_and_builds_drivers() -> None:
    """The sample is a valid config; each device builds its driver and plans its reads."""
    cfg = load_config(SAMPLE)
    assert [d.driver for d in cfg.devices] == ["modbus_tcp", "modbus_rtu"]
    for dev in cfg.devices:
        driver = load_driver(dev.driver).from_settings(dev)
        assert isinstance(driver, (ModbusTcpDriver, ModbusRtuDriver))
        assert plan_reads(dev.points(), max_registers=dev.max_registers, max_gap=dev.max_gap)
    tcp = cfg.devices[0]
    assert dict(zip([t.name for t in tcp.tags], tcp.poll_intervals()))["pump_running"] == 0.1
    valve = {p.name: p for p in tcp.points()}["valve_position"]
    assert (valve.address, valve.scale) == (20, pytest.approx(100 / 27648))


def test_commented_keys_are_known_and_match_code_defaults() -> None:
    """Every ``# key = default`` line names a real key and shows the default the config model uses."""
    for kind, values in _commented_defaults():
        model = ModbusTag if kind == "tag" else MODELS[kind]
        for key, value in values.items():
            assert key in model.model_fields, f"{kind}: unknown key {key!r}"
            default = model.model_fields[key].default
            if default is not None:  # keys without a default show an example value instead
                assert value == default, f"{kind}.{key}: sample says {value!r}, model default is {default!r}"


def test_driver_and_model_defaults_agree() -> None:
    """A driver built without a setting behaves as the config default says."""
    params = {**inspect.signature(ModbusDriver).parameters, **inspect.signature(ModbusTcpDriver).parameters}
    for key in ("timeout_s", "retries", "max_registers", "max_bits", "max_gap", "demote_after", "demote_for_s", "write_multiple", "port"):
        assert params[key].default == ModbusTcpSettings.model_fields[key].default, key
    rtu = inspect.signature(ModbusRtuDriver).parameters
    for key in ("parity", "data_bits", "stop_bits", "frame_pause_s"):
        assert rtu[key].default == ModbusRtuSettings.model_fields[key].default, key
    point = inspect.signature(make_point).parameters
    for key in ("type", "scale", "offset", "writable", "length", "low", "high", "units", "raw_low", "eng_high"):
        assert point[key].default == ModbusTag.model_fields[key].default, key


@pytest.mark.parametrize("address", ["hr:100", "40101", "400101", "ir:0", "30001", "coil:0", "co:0", "00001", "di:3", "10004", "hr:100.3"])
def test_addresses_shown_in_sample_are_valid(address: str) -> None:
    assert address in SAMPLE.read_text()
    make_point(name="t", address=address, type="bool" if "." in address or address[:2] in ("co", "di", "00", "10") else "uint16")
