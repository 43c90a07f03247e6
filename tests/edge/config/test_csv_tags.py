"""The CSV tag import is generic over the device's tag model (any driver with a flat tag model)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from drivers.settings import DeviceSettings, Name, Strict
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
