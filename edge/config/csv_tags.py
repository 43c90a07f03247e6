"""Tags imported from a CSV file (a device's ``tags_csv``), for any driver whose tag model is flat.

The device settings model names its tag model through its ``tags`` list (``list[ModbusTag]``). The
CSV header names columns, which are that model's keys; each row is one tag, validated like a
``[[devices.tags]]`` table (an empty cell is left out, so the key's default applies). Problems name
the CSV file and line (``tags.csv:3: address: ...``) and are listed with the ``tags_csv`` key.
"""

from __future__ import annotations

import csv
import difflib
import io
import types
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from edge.config.locate import decode_text

if TYPE_CHECKING:
    from edge.config.loader import _Collector

_SCALARS = (str, int, float, bool, type(None))


def tag_model(device_model: type[BaseModel]) -> type[Any]:
    """The tag model of a device settings model: the item type of its ``tags`` list."""
    (item,) = get_args(device_model.model_fields["tags"].annotation)
    return item


def csv_columns(model: type[BaseModel]) -> list[str]:
    """The keys of a flat tag model (the columns a CSV file may have); TypeError if a key is not a
    scalar, unless its field says it parses a cell's text (``json_schema_extra={"csv_text": ...}``,
    e.g. a Modbus tag's ``states`` written ``0=stopped;1=running``)."""
    for key, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not _is_scalar(field.annotation) and "csv_text" not in extra:
            raise TypeError(f"{model.__name__}.{key} is not a scalar ({field.annotation}); a CSV cell cannot hold it")
    return list(model.model_fields)


def _is_scalar(annotation: Any) -> bool:
    if annotation in _SCALARS:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return True
    if origin is Annotated:
        return _is_scalar(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return all(_is_scalar(a) for a in get_args(annotation))
    return False


def _with_csv_tags(c: _Collector, prefix: str, dev: Any, base: Path) -> Any:
    """*dev* with the tags of its CSV file appended (unchanged without ``tags_csv``); errors name the CSV file and line."""
    if not getattr(dev, "tags_csv", None):
        return dev
    tags = list(dev.tags)
    seen = {t.name: f"{prefix}.tags[{i}]" for i, t in enumerate(tags)}
    read_csv_tags(c, prefix, f"{prefix}.tags_csv", base / dev.tags_csv, tag_model(type(dev)), tags, seen)
    return dev.model_copy(update={"tags": tags})


def read_csv_tags(c: _Collector, prefix: str, key: str, path: Path, model: type[BaseModel], tags: list[Any], seen: dict[str, str]) -> None:
    """Append the tags of the CSV file *path* to *tags* (the device at *prefix*), each validated with
    *model*; *seen* maps the tag names so far to where they are (duplicates are problems). Problems
    name the CSV file and line and are listed with the config key *key*."""
    fields = csv_columns(model)
    required = [k for k, field in model.model_fields.items() if field.is_required()]

    def problem(line: int, where: str, message: str) -> None:
        c.add_near(key, f"{path}:{line}: {where + ': ' if where else ''}{message}")

    try:
        data = path.read_bytes()
    except OSError as exc:
        c.add(key, f"cannot read {str(path)!r}: {exc.strerror}")
        return
    text, undecodable = decode_text(data, str(path), bom=True)
    if undecodable is not None:
        c.add_near(key, undecodable)
        return
    reader = csv.DictReader(io.StringIO(text))
    for column in reader.fieldnames or []:
        if column not in fields:
            close = difflib.get_close_matches(column, fields, n=1)
            problem(1, f"column {column!r}", "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if reader.fieldnames is None or any(k not in reader.fieldnames for k in required):
        problem(1, "", f"the header must name at least the columns {_and(required)}")
        return
    for row in reader:
        line = reader.line_num
        cells = {k: v.strip() for k, v in row.items() if k in fields and v is not None and v.strip() != ""}
        if None in row:
            problem(line, "", f"{len(row[None])} more cells than columns")
        try:
            tag = model.model_validate(cells)
        except ValidationError as exc:
            for where, message in c.messages(exc, model):
                problem(line, where, message)
            continue
        if tag.name in seen:
            problem(line, "name", f"duplicate tag name {tag.name!r} (first at {seen[tag.name]})")
            continue
        seen[tag.name] = f"{path}:{line}"
        c.add_origin(f"{prefix}.tags[{len(tags)}]", str(path), line, near=key)
        tags.append(tag)


def _and(keys: list[str]) -> str:
    """'a', 'b' and 'c'."""
    quoted = [repr(k) for k in keys]
    return "".join(quoted) if len(quoted) <= 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
