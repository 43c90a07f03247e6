"""The driver table: every kind's settings model and driver class agree, and settings load light."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from drivers import DRIVER_KINDS, load_driver, settings_model
from drivers.base import UnknownDriverError
from drivers.settings import DeviceSettings
from edge.config.csv_tags import csv_columns, tag_model

ROOT = Path(__file__).resolve().parents[2]
KINDS = sorted(DRIVER_KINDS)

# what the gateway reads from every device's settings and from each of its tags
DEVICE_KEYS = ("name", "driver", "description", "poll_interval_s", "stale_after_s", "tags")
TAG_KEYS = ("name", "type", "units", "low", "high", "description", "writable", "historize", "alarm_high", "alarm_low", "alarm_deadband", "alarm_severity")


@pytest.mark.parametrize("kind", KINDS)
def test_table_classes_and_models_agree(kind: str) -> None:
    """DRIVER_KINDS[kind] names a settings model whose ``driver`` is exactly *kind*, and a driver class
    whose ``kind`` is *kind* and whose ``Settings`` is that model."""
    model, cls = settings_model(kind), load_driver(kind)
    assert issubclass(model, DeviceSettings)
    assert cls.kind == kind
    assert cls.Settings is model
    assert typing.get_args(model.model_fields["driver"].annotation) == (kind,)
    assert callable(cls.from_settings)
    assert model.model_config.get("frozen") and model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("kind", KINDS)
def test_settings_have_what_the_gateway_reads(kind: str) -> None:
    model = settings_model(kind)
    assert [k for k in DEVICE_KEYS if k not in model.model_fields and not isinstance(getattr(model, k, None), property)] == []
    tags = tag_model(model)
    assert [k for k in TAG_KEYS if k not in tags.model_fields] == []
    assert tags.model_config.get("frozen") and tags.model_config.get("extra") == "forbid"
    if "tags_csv" in model.model_fields:  # the CSV import needs one scalar per column
        assert csv_columns(tags)[0] == "name"


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownDriverError) as info:
        load_driver("modbus")
    assert str(info.value) == "unknown driver 'modbus'; known drivers: modbus_rtu, modbus_tcp, opcua, synthetic"
    with pytest.raises(UnknownDriverError, match="unknown driver 'x'; known drivers: modbus_rtu, modbus_tcp, opcua, synthetic"):
        settings_model("x")
    with pytest.raises(LookupError):  # UnknownDriverError is a LookupError, also for a kind that is not a string
        settings_model(["modbus_tcp"])  # type: ignore[arg-type]


def test_csv_columns_refuse_a_nested_tag_model() -> None:
    class Nested(BaseModel):
        name: str
        scaling: tuple[float, float] = (1.0, 0.0)

    with pytest.raises(TypeError, match=r"Nested\.scaling is not a scalar"):
        csv_columns(Nested)


def test_loading_a_config_imports_no_protocol_library() -> None:
    """The settings models are pure: a Modbus config loads (and the schema builds) without pymodbus."""
    code = (
        "import sys\n"
        "from edge.config import json_schema, load_config\n"
        "cfg = load_config('drivers/modbus/sample.toml')\n"
        "json_schema()\n"
        "assert cfg.devices, 'no devices'\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pymodbus', 'serial', 'asyncua'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
