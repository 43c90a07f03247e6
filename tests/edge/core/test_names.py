"""edge.core.names builds every key and path; edge.config.nodes plans exactly the nodes the server builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config.loader import load_config, parse_config
from edge.config.nodes import PlannedNode, planned_nodes
from edge.core import names
from edge.core.health import DEVICE_FIELDS
from edge.history.recorder import DIAGNOSTICS as HISTORY_FIELDS
from tests.edge.built_nodes import built_nodes

ROOT = Path(__file__).resolve().parents[3]

KEYS = [
    (names.tag_key("plc", "temp"), "plc.temp"),
    (names.device_diag_key("plc", "LinkState"), "_diag.plc.LinkState"),
    (names.gateway_diag_key("Sessions"), "_diag.gateway.Sessions"),
    (names.asset_output_key("tank", "anomaly_score"), "tank.anomaly_score"),
    (names.asset_output_key("tank", "alarm"), "tank.alarm"),
    (names.signal_output_key("tank", "temp", "measured"), "tank.temp.measured"),
    (names.signal_output_key("tank", "temp", "anomaly_score"), "tank.temp.anomaly_score"),
    (names.model_output_key("tank", "temp", "model_gain"), "tank.temp.model_gain"),
    (names.model_output_key("tank", "temp", "model_forecast_high"), "tank.temp.model_forecast_high"),
    (names.detector_key("tank", "score"), "tank.detector.score"),
    (names.detector_key("tank", "alarm"), "tank.detector.alarm"),
    (names.asset_key_prefix("tank"), "tank."),
    (names.signal_key_prefix("tank", "temp"), "tank.temp."),
]

PATHS = [
    (names.device_path("plc"), "Devices/plc"),
    (names.tag_path("plc", "temp"), "Devices/plc/temp"),
    (names.device_diagnostics_path("plc"), "Diagnostics/plc"),
    (names.device_diag_path("plc", "ReadsOk"), "Diagnostics/plc/ReadsOk"),
    (names.device_diag_mirror_path("plc", "ReadsOk"), "Devices/plc/ReadsOk"),
    (names.GATEWAY_DIAGNOSTICS_PATH, "Diagnostics/Gateway"),
    (names.gateway_diag_path("Version"), "Diagnostics/Gateway/Version"),
    (names.asset_path("tank"), "Assets/tank"),
    (names.asset_output_path("tank", "anomaly_score"), "Assets/tank/AnomalyScore"),
    (names.asset_output_path("tank", "alarm"), "Assets/tank/Alarm"),
    (names.signal_path("tank", "temp"), "Assets/tank/temp"),
    (names.signal_output_path("tank", "temp", "residual"), "Assets/tank/temp/Residual"),
    (names.model_path("tank", "temp"), "Assets/tank/temp/Model"),
    (names.model_output_path("tank", "temp", "model_time_constant"), "Assets/tank/temp/Model/TimeConstant"),
    (names.detector_path("tank"), "Assets/tank/Detector"),
    (names.detector_output_path("tank", "t2"), "Assets/tank/Detector/T2"),
    (names.method_path("tank", names.SIMULATE), "Assets/tank/Simulate"),
    (names.method_path("tank", names.RESET_MODEL), "Assets/tank/ResetModel"),
    (names.anomaly_condition_path("tank"), "Assets/tank/AnomalyAlarm"),
    (names.limit_condition_path("plc", "temp", "high"), "Devices/plc/tempHighLimit"),
    (names.limit_condition_path("plc", "temp", "low"), "Devices/plc/tempLowLimit"),
    (names.condition_path(("Devices", "plc"), "x"), "Devices/plc/x"),
]


@pytest.mark.parametrize(("got", "expected"), KEYS, ids=[k for _, k in KEYS])
def test_registry_keys(got: str, expected: str) -> None:
    """Registry keys keep their dotted form (history databases and clients depend on them)."""
    assert got == expected


@pytest.mark.parametrize(("got", "expected"), PATHS, ids=[p for _, p in PATHS])
def test_browse_paths(got: tuple[str, ...], expected: str) -> None:
    """Browse paths, and so NodeIds, keep their shape."""
    assert got == tuple(expected.split("/"))


def test_node_ids_are_the_gateway_name_and_the_path() -> None:
    assert names.node_id_text("gw", ("Devices", "plc", "temp")) == "gw/Devices/plc/temp"
    assert names.node_id_text("gw", ()) == "gw"


def test_condition_names() -> None:
    assert names.limit_condition_name("temp", "high") == "tempHighLimit"
    assert names.limit_condition_name("temp", "low") == "tempLowLimit"
    assert names.ANOMALY_ALARM == "AnomalyAlarm"


def test_model_outputs_of_first_order_and_arx_models() -> None:
    """First-order models add TimeConstant and DeadTime; the order is the order the twin computes them in."""
    assert names.model_outputs(True) == tuple(names.MODEL_OUTPUTS)
    assert names.model_outputs(False) == ("model_gain", "model_gain_std", "model_residual_std", "model_forecast", "model_forecast_low", "model_forecast_high")


@pytest.mark.parametrize(
    "call",
    [
        lambda: names.signal_output_key("a", "s", "Measured"),
        lambda: names.signal_output_path("a", "s", "bogus"),
        lambda: names.asset_output_key("a", "measured"),
        lambda: names.model_output_key("a", "s", "gain"),
        lambda: names.detector_key("a", "Score"),
        lambda: names.method_path("a", "Reset"),
        lambda: names.asset_diag_key("a", "Tick"),
        lambda: names.asset_diag_path("a", "tick_time"),
    ],
)
def test_unknown_outputs_and_methods_raise(call) -> None:
    """A misspelt output or method is a KeyError, never a new key."""
    with pytest.raises(KeyError):
        call()


def test_asset_diagnostics_live_below_the_gateway_diagnostics() -> None:
    """An asset's twin diagnostics never take a device's Diagnostics/<name> folder (assets and
    devices may share a name) and are not mirrored onto any object."""
    assert names.asset_diag_path("tank", "TickTime") == ("Diagnostics", "Gateway", "Assets", "tank", "TickTime")
    assert names.asset_diag_key("tank", "TickTime") == "_diag.gateway.assets.tank.TickTime"
    assert names.mirror_of(names.asset_diag_path("tank", "TickTime")) is None


def test_diagnostics_mirror() -> None:
    """Only a diagnostics variable three levels deep is mirrored, as a member of the device object."""
    assert names.mirror_of(("Diagnostics", "plc", "LinkState")) == ("Devices", "plc", "LinkState")
    assert names.mirror_of(("Devices", "plc", "temp")) is None
    assert names.mirror_of(("Diagnostics", "plc")) is None


def test_leaf_vocabularies_match_their_owners() -> None:
    """The planner's leaves are the ones the health and history modules publish."""
    assert tuple(f[0] for f in DEVICE_FIELDS) == names.DEVICE_DIAGNOSTICS
    assert tuple(f[0] for f in HISTORY_FIELDS) == names.HISTORY_DIAGNOSTICS


# -- the planner against the real server ---------------------------------------------------------
EXTRA = """
[gateway]
name = "gw"
namespace_uri = "urn:edgetwin:names-test"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"

  [[devices.tags]]
  name = "temp"
  address = "ir:0"
  type = "int16"
  alarm_low = 5.0

  [[devices.tags]]
  name = "level"
  address = "ir:1"
  historize = true

  [[devices.tags]]
  name = "heater"
  address = "hr:0"
  low = 0.0
  high = 100.0

[[devices]]
name = "spare"
driver = "modbus_tcp"
host = "127.0.0.1"

[[assets]]
name = "tank"

  [assets.detector]
  train_ticks = 10

  [[assets.signals]]
  name = "temp"
  tag = "plc.temp"
  input = "plc.heater"
  input_model = "arx"

  [[assets.signals]]
  name = "level"
  tag = "plc.level"
"""


def _with_history_in(cfg, tmp_path: Path):
    return cfg.model_copy(update={"history": cfg.history.model_copy(update={"path": str(tmp_path / "history.sqlite")})})


@pytest.mark.parametrize("config", ["demo.toml", "extra"])
async def test_planned_nodes_are_the_nodes_the_server_builds(config: str, tmp_path: Path, free_port: int) -> None:
    """planned_nodes() predicts exactly the objects, variables, methods and conditions of the running
    daemon's address space (no more, no fewer), so config checks cannot drift from the model."""
    cfg = parse_config(EXTRA, str(tmp_path / "gateway.toml")) if config == "extra" else load_config(ROOT / "config" / config)
    cfg = _with_history_in(cfg, tmp_path)
    planned = planned_nodes(cfg)
    assert len({n.path for n in planned}) == len(planned), "a valid config plans each path once"
    assert {(n.path, n.kind) for n in planned} == await built_nodes(cfg, free_port)


def test_every_planned_node_hangs_below_a_planned_object() -> None:
    """A variable on another creator's parent path therefore always meets that creator's object."""
    cfg = parse_config(EXTRA)
    planned = planned_nodes(cfg)
    objects = {n.path for n in planned if n.kind == "object"}
    assert all(n.path[:-1] in objects for n in planned if n.path)


def test_planned_nodes_name_their_creators() -> None:
    """Each node carries the config key path of what creates it, and the config name it is named after."""
    by_path = {n.path: n for n in planned_nodes(parse_config(EXTRA))}
    assert by_path[("Devices", "plc", "temp")] == PlannedNode(("Devices", "plc", "temp"), "variable", "devices[0].tags[0].name", "tag 'temp'", "temp")
    assert by_path[("Devices", "plc", "tempLowLimit")].source == "devices[0].tags[0].alarm_low"
    assert by_path[("Assets", "tank", "Detector")].source == "assets[0].detector"
    assert by_path[("Assets", "tank", "Simulate")].source == "assets[0].signals[0].input"
    assert by_path[("Assets", "tank", "temp", "Model", "Gain")].source == "assets[0].signals[0].input"
    assert ("Assets", "tank", "temp", "Model", "TimeConstant") not in by_path  # an ARX model has no time constant
    assert ("Devices", "spare") not in by_path and ("Diagnostics", "spare", "LinkState") in by_path  # no tags: no device object
    assert by_path[("Diagnostics", "Gateway", "HistoryDatabaseSize")].source == ""  # history runs: level is historized
