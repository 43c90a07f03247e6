"""Tags imported from a CSV file (a device's ``tags_csv``).

The CSV header names columns, which are the tag model's keys; each row is one tag, validated like a
``[[devices.tags]]`` table (an empty cell is left out, so the key's default applies). Problems name
the CSV file and line (``tags.csv:3: address: ...``) and are listed with the ``tags_csv`` key.
"""

from __future__ import annotations

import csv
import difflib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from drivers.modbus.settings import ModbusTag
from edge.config.checks import RESERVED_TAG_NAMES

if TYPE_CHECKING:
    from edge.config.loader import _Collector


def _with_csv_tags(c: _Collector, prefix: str, dev: Any, base: Path) -> Any:
    """*dev* with the tags of its CSV file appended (unchanged without ``tags_csv``); errors name the CSV file and line."""
    if not getattr(dev, "tags_csv", None):
        return dev
    path = base / dev.tags_csv

    def problem(line: int, where: str, message: str) -> None:
        c.add_near(f"{prefix}.tags_csv", f"{path}:{line}: {where + ': ' if where else ''}{message}")

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        c.add(f"{prefix}.tags_csv", f"cannot read {str(path)!r}: {exc.strerror}")
        return dev
    reader = csv.DictReader(io.StringIO(text))
    fields = list(ModbusTag.model_fields)
    for column in reader.fieldnames or []:
        if column not in fields:
            close = difflib.get_close_matches(column, fields, n=1)
            problem(1, f"column {column!r}", "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if reader.fieldnames is None or "name" not in reader.fieldnames or "address" not in reader.fieldnames:
        problem(1, "", "the header must name at least the columns 'name' and 'address'")
        return dev
    seen = {t.name: f"{prefix}.tags[{i}]" for i, t in enumerate(dev.tags)}
    tags = list(dev.tags)
    for row in reader:
        line = reader.line_num
        data = {k: v.strip() for k, v in row.items() if k in fields and v is not None and v.strip() != ""}
        if None in row:
            problem(line, "", f"{len(row[None])} more cells than columns")
        try:
            tag = ModbusTag.model_validate(data)
        except ValidationError as exc:
            for where, message in c.messages(exc, ModbusTag):
                problem(line, where, message)
            continue
        if tag.name in seen:
            problem(line, "name", f"duplicate tag name {tag.name!r} (first at {seen[tag.name]})")
            continue
        if tag.name in RESERVED_TAG_NAMES:
            problem(line, "name", f"{tag.name!r} is reserved for the device's diagnostics node")
            continue
        seen[tag.name] = f"{path}:{line}"
        tags.append(tag)
    return dev.model_copy(update={"tags": tags})
