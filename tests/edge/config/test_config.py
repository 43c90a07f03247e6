"""Config loading: golden broken configs, shipped configs, generated schema, `edgetwin check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main as cli_main
from edge.config import ConfigError, json_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parents[3]
CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())
SHIPPED = sorted((ROOT / "config").glob("**/*.toml")) + sorted((ROOT / "drivers").glob("**/sample.toml"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_config_lists_every_error_with_file_line_and_key(case: Path) -> None:
    """Each broken config yields exactly the expected `file:line: key.path: message` lines, all at once."""
    expected = (case / "expected.err").read_text().splitlines()
    with pytest.raises(ConfigError) as info:
        load_config(case / "gateway.toml")
    got = [line.replace(f"{case}/", "") for line in info.value.problems]
    assert got == expected


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_shipped_configs_are_valid(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.source == str(path)


@pytest.mark.parametrize("name", ["demo.toml", "production.toml"])
def test_check_accepts_the_shipped_gateway_configs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`edgetwin check` says ok for the demo and production configs: none of their names collides."""
    assert cli_main(["check", str(ROOT / "config" / name)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{ROOT / 'config' / name}: ok (") and out.err == ""


def test_demo_config_points_carry_types_and_orders() -> None:
    cfg = load_config(ROOT / "config" / "demo.toml")
    dev = cfg.device("tank1_plc")
    points = {p.name: p for p in dev.points()}
    assert points["motor_current"].order.value == "CDAB"
    assert points["flow"].order.value == "ABCD"
    assert points["pumped_volume"].data_type.value == "uint32"
    assert points["heater_setpoint"].writable
    assert points["pump_running"].bit == 0


def test_empty_config_gets_defaults() -> None:
    cfg = parse_config("")
    assert cfg.gateway.endpoint == "opc.tcp://127.0.0.1:4840/edgetwin"
    assert cfg.devices == [] and cfg.simulator.enabled is False


def test_values_are_not_clamped() -> None:
    """An out-of-range value is an error, never silently adjusted to the nearest allowed one."""
    with pytest.raises(ConfigError) as info:
        parse_config('[[devices]]\nname = "p"\ndriver = "modbus_tcp"\nhost = "h"\nmax_registers = 126\n', "x.toml")
    assert info.value.problems == ["x.toml:5: devices[0].max_registers: Input should be less than or equal to 125"]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert "cannot read" in str(info.value)


def test_committed_schema_matches_the_models() -> None:
    """config/schema.json is generated (`edgetwin schema > config/schema.json`), never hand-edited."""
    committed = json.loads((ROOT / "config" / "schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema()))


def test_check_command_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check", str(ROOT / "config" / "demo.toml")]) == 0
    assert "ok (1 devices" in capsys.readouterr().out
    case = CASES[0]
    assert cli_main(["check", str(case / "gateway.toml")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len((case / "expected.err").read_text().splitlines())
