"""``edgetwin patterns``: list, show, record from a history database, remove; errors on stderr."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import structlog

from drivers.sample import Status, TagSample
from edge.cli import main
from edge.history.store import HistoryStore
from edge.twin.diagnosis.library import load

CONFIG = """
[gateway]
state_dir = "state"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = 5020
  [[devices.tags]]
  name = "flow"
  address = "ir:0"
  type = "float32"
  [[devices.tags]]
  name = "current"
  address = "ir:2"
  type = "float32"

[[assets]]
name = "pump"
historize = true
  [[assets.signals]]
  name = "flow"
  tag = "plc.flow"
  measurement_noise = 0.2
  [[assets.signals]]
  name = "current"
  tag = "plc.current"
  measurement_noise = 0.05
  [assets.diagnosis]
  library = "pumps"
"""
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_logging():
    """The command configures logging onto the captured stderr; put the defaults back after."""
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(CONFIG)
    rng = np.random.default_rng(3)
    store = HistoryStore(tmp_path / "state" / "history.sqlite", retention_days=3650, max_db_mb=64)
    store.open()
    rows = []
    for k in range(900):  # 600 s normal, then the flowmeter reads zero
        t = T0 + timedelta(seconds=k)
        flow = 20.0 + 0.2 * rng.standard_normal() if k < 600 else 0.0
        current = 5.0 + 0.05 * rng.standard_normal()
        rows += [TagSample("pump.flow.measured", flow, Status.Good, t, t), TagSample("pump.current.measured", current, Status.Good, t, t)]
    store.append(rows)
    store.close()
    return path


def test_record_list_show_remove(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start, end = (T0 + timedelta(seconds=s) for s in (600, 899))
    window = ["--start", start.isoformat(), "--end", end.isoformat()]
    args = ["patterns", "record", "meter_dead", *window, "--action-text", "check the meter", "--config", str(config)]
    assert main(args) == 0
    assert "'meter_dead' now has 1 episode(s); contributors flow" in capsys.readouterr().out
    lib = load(config.parent / "state" / "patterns" / "pumps.json")
    assert [p.name for p in lib.patterns] == ["meter_dead"] and lib.patterns[0].action == "check the meter"
    assert main(["patterns", "list", "--config", str(config)]) == 0
    assert "meter_dead" in capsys.readouterr().out
    assert main(["patterns", "show", "meter_dead", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "flow" in out and "deviation" in out
    assert main(["patterns", "remove", "meter_dead", "--config", str(config)]) == 0
    assert load(config.parent / "state" / "patterns" / "pumps.json").patterns == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["record", "x", "--start", "yesterday", "--end", "2026-03-01T00:10:00Z"], "not an ISO 8601 time"),
        (["record", "x", "--start", "2026-03-01T00:05:00Z", "--end", "2026-03-01T00:09:00Z"], "nothing in that window differs"),
        (["record", "x", "--start", "2026-03-01T00:12:00Z", "--end", "2026-03-01T00:10:00Z"], "must end after it starts"),
        (["record", "x", "--start", "2020-01-01T00:00:00Z", "--end", "2020-01-01T00:10:00Z"], "0 Good samples before the episode"),
        (["remove", "nope"], "no pattern 'nope'"),
        (["show", "nope"], "no pattern 'nope'"),
        (["record", "unknown", "--start", "2026-03-01T00:10:00Z", "--end", "2026-03-01T00:14:00Z"], "cannot name a pattern"),
        (["list", "--asset", "tank"], "no asset 'tank'"),
    ],
)
def test_errors_name_the_problem(config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["patterns", *args, "--config", str(config)]) == 1
    assert message in capsys.readouterr().err
