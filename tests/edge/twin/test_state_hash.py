"""The config hash a saved twin state is valid for: what changes it and what does not."""

from __future__ import annotations

import pytest

from edge.config import AssetConfig, DetectorConfig, SignalConfig, parse_config
from edge.config.models import GatewayConfig
from edge.twin.state_hash import IGNORED_KEYS, asset_config_hash, asset_hashes, canonical_json, tags_read

CONFIG = """
[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
order = "ABCD"

  [[devices.tags]]
  name = "temperature"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  units = "degC"
  description = "tank temperature"

  [[devices.tags]]
  name = "heater"
  address = "hr:0"
  type = "float32"
  writable = true
  low = 0.0
  high = 100.0

  [[devices.tags]]
  name = "level"
  address = "ir:2"
  type = "int16"

  [[devices.tags]]
  name = "unrelated"
  address = "ir:9"

[[assets]]
name = "tank"
description = "heated tank"

  [[assets.signals]]
  name = "temperature"
  tag = "plc.temperature"
  input = "plc.heater"

  [[assets.signals]]
  name = "level"
  tag = "plc.level"

  [assets.detector]
  train_ticks = 50
"""


def _hash(text: str = CONFIG) -> str:
    return asset_hashes(parse_config(text))["tank"]


BASE = _hash()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param('name = "temperature"\n  tag', 'name = "temp"\n  tag', id="signal-renamed"),
        pytest.param('input = "plc.heater"', 'input = "plc.heater"\n  model = "constant_velocity"', id="filter-model"),
        pytest.param('input = "plc.heater"', 'input = "plc.heater"\n  measurement_noise = 0.2', id="noise"),
        pytest.param('input = "plc.heater"', 'input = "plc.heater"\n  model_period_s = 2.0', id="model-period"),
        pytest.param('input = "plc.heater"', 'input = "plc.heater"\n  forgetting = 0.99', id="forgetting"),
        pytest.param('input = "plc.heater"\n', "", id="no-input"),
        pytest.param("train_ticks = 50", "train_ticks = 60", id="detector-window"),
        pytest.param("train_ticks = 50", "train_ticks = 50\n  rate_only = ['level']", id="detector-features"),
        pytest.param('description = "heated tank"', 'description = "heated tank"\ntick_s = 2.0', id="tick"),
        pytest.param('address = "ir:0"', 'address = "ir:1"', id="tag-address"),
        pytest.param("scale = 0.1", "scale = 0.01", id="tag-scale"),
        pytest.param('type = "float32"', 'type = "float32"\n  order = "CDAB"', id="input-word-order"),
        pytest.param('order = "ABCD"', 'order = "CDAB"', id="device-default-word-order"),
        pytest.param("high = 100.0", "high = 50.0", id="input-limit"),
        pytest.param('units = "degC"', 'units = "K"', id="tag-units"),
    ],
)
def test_a_change_that_alters_the_meaning_changes_the_hash(old: str, new: str) -> None:
    assert old in CONFIG
    assert _hash(CONFIG.replace(old, new, 1)) != BASE


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param('description = "heated tank"', 'description = "the big tank"', id="asset-description"),
        pytest.param('description = "heated tank"', 'description = "x"\nalarm_threshold = 12.0\nalarm_severity = 900\nhistorize = true', id="alarming"),
        pytest.param('tag = "plc.level"', 'tag = "plc.level"\n  historize = true\n  units = "percent"', id="signal-presentation"),
        pytest.param("train_ticks = 50", "train_ticks = 50\n  on = 2.0\n  release = 0.5\n  k = 2\n  window = 3", id="detector-policy"),
        pytest.param('description = "tank temperature"', 'description = "T1"\n  historize = true\n  alarm_high = 60.0', id="tag-presentation"),
        pytest.param('address = "ir:9"', 'address = "ir:8"', id="unrelated-tag"),
        pytest.param('host = "127.0.0.1"', 'host = "127.0.0.2"\npoll_interval_s = 0.2', id="device-address-and-rate"),
    ],
)
def test_a_change_of_presentation_keeps_the_hash(old: str, new: str) -> None:
    assert old in CONFIG
    assert _hash(CONFIG.replace(old, new, 1)) == BASE


def test_the_hash_does_not_depend_on_key_order() -> None:
    lines = CONFIG.replace('  address = "ir:0"\n  type = "int16"\n', '  type = "int16"\n  address = "ir:0"\n', 1)
    assert lines != CONFIG and _hash(lines) == BASE
    assert canonical_json({"b": 1, "a": [1, (2, 3)]}) == '{"a":[1,[2,3]],"b":1}'


def test_every_ignored_key_exists() -> None:
    """A renamed key must not silently fall out of the ignore list (or into the hash)."""
    models = {"asset": AssetConfig, "signal": SignalConfig, "detector": DetectorConfig}
    for section, model in models.items():
        assert IGNORED_KEYS[section] <= set(model.model_fields), section


def test_tags_read_and_the_format_of_the_hash() -> None:
    cfg: GatewayConfig = parse_config(CONFIG)
    assert tags_read(cfg.assets[0]) == ["plc.heater", "plc.level", "plc.temperature"]
    assert BASE.startswith("sha256:") and len(BASE) == len("sha256:") + 64
    assert asset_config_hash(cfg.assets[0], {}) != BASE  # the tags' meaning is part of it
