"""The CSV tag import is generic over the device's tag model (any driver with a flat tag model)."""

from __future__ import annotations

import csv as csv_module
import io
import re
from pathlib import Path
from typing import Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from drivers.settings import DeviceSettings, Name, Strict
from edge.config import ConfigError, parse_config
from edge.config.csv_tags import _with_csv_tags, csv_columns, tag_model
from edge.config.loader import _Collector


class ValveTag(Strict):
    name: Name
    channel: int = Field(ge=0, le=7)
    mode: Literal["open", "closed"] = "closed"
    units: str | None = None


class ValveSettings(DeviceSettings):
    driver: Literal["valves"]
    tags_csv: str | None = None
    tags: list[ValveTag] = Field(default_factory=list)


def test_columns_come_from_the_tag_model() -> None:
    assert tag_model(ValveSettings) is ValveTag
    assert csv_columns(ValveTag) == ["name", "channel", "mode", "units"]


def test_rows_are_validated_with_the_tag_model(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text("name,channel,mode,unit\nv1,3,open,\nv2,9,,\nv1,4,,\n")
    c = _Collector("g.toml", "")
    dev = _with_csv_tags(c, "devices[0]", ValveSettings(name="d", driver="valves", tags_csv="v.csv"), tmp_path)
    assert [(t.name, t.channel, t.mode) for t in dev.tags] == [("v1", 3, "open")]
    csv = tmp_path / "v.csv"
    assert [msg for _, msg in c.problems] == [
        f"{csv}:1: column 'unit': unknown key (did you mean 'units'?)",
        f"{csv}:3: channel: Input should be less than or equal to 7",
        f"{csv}:4: name: duplicate tag name 'v1' (first at {csv}:2)",
    ]


def test_header_must_name_the_required_keys(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text("name,mode\nv1,open\n")
    c = _Collector("g.toml", "")
    _with_csv_tags(c, "devices[0]", ValveSettings(name="d", driver="valves", tags_csv="v.csv"), tmp_path)
    assert [msg for _, msg in c.problems] == [f"{tmp_path / 'v.csv'}:1: the header must name at least the columns 'name' and 'channel'"]


CELLS = ["ir:0", "hr:1.3", "40001", "float32", "nan", "-inf", "1e400", "CDAB", "true"]
MODBUS_COLUMNS = ["name", "address", "type", "scale", "offset", "units", "low", "high", "writable", "unit_id", "order", "length", "poll_interval_s", "bogus"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.lists(st.sampled_from(MODBUS_COLUMNS), min_size=0, max_size=6),
    rows=st.lists(st.lists(st.one_of(st.text(max_size=12), st.sampled_from(CELLS)), max_size=7), max_size=6),
    raw=st.binary(max_size=40),
)
def test_random_csv_files_give_tags_or_located_errors(tmp_path: Path, header: list[str], rows: list[list[str]], raw: bytes) -> None:
    """Any CSV file (random columns and cells, stray bytes that may not be UTF-8) gives tags or
    errors located in the CSV file, never an exception."""
    out = io.StringIO()
    writer = csv_module.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    (tmp_path / "tags.csv").write_bytes(out.getvalue().encode() + raw)
    text = '[[devices]]\nname = "plc"\ndriver = "modbus_tcp"\nhost = "127.0.0.1"\ntags_csv = "tags.csv"\n'
    try:
        cfg = parse_config(text, str(tmp_path / "gateway.toml"))
    except ConfigError as exc:
        for line in exc.problems:
            assert re.match(rf"^{re.escape(str(tmp_path))}/(tags\.csv|gateway\.toml):\d+: \S", line), line
    else:
        assert all(t.name for t in cfg.devices[0].tags)
