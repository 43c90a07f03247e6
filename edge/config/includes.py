"""Tags included from other files: a device's ``tags_csv`` and ``tags_from``.

``tags_from = "pump.toml"`` (or a list of files, read in order) appends tags from files next to
the config, so one tag list serves several devices, or the units of one device
(``edge.config.units``). A ``.toml`` file holds ``[[tags]]`` tables, each written like a
``[[devices.tags]]`` table of the device; a ``.csv`` file is read like ``tags_csv``
(``edge.config.csv_tags``). A relative path is relative to the including config file's folder.

Each included tag is validated with the device's tag model, and every problem is located in the
file it is in: ``pump.toml:12: tags[2].address: register 70000 is outside 0..65535`` (a CSV file:
``pump.csv:4: address: ...``). Problems found later (a collision, a template tag's ``unit_id``)
are located there too, through the collector's origins. All problems are listed together with
those of the config file, sorted by the line of the ``tags_from`` key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from edge.config.csv_tags import _with_csv_tags, read_csv_tags, tag_model
from edge.config.locate import MAX_NESTING, decode_text, key_lines, line_of, nesting_line, too_deep

if TYPE_CHECKING:
    from edge.config.loader import _Collector

TAG_FILE_KEYS = ("tags",)  # the only key of a TOML tag file


def tag_files(dev: Any) -> list[str]:
    """The files of the device's ``tags_from``, in order ([] without one)."""
    files = getattr(dev, "tags_from", None)
    if files is None:
        return []
    return [files] if isinstance(files, str) else list(files)


def with_included_tags(c: _Collector, prefix: str, dev: Any, base: Path) -> Any:
    """*dev* with the tags of its ``tags_csv`` and ``tags_from`` files appended (unchanged without
    either); *base* is the folder relative paths start from."""
    dev = _with_csv_tags(c, prefix, dev, base)
    files = tag_files(dev)
    if not files:
        return dev
    model = tag_model(type(dev))
    tags = list(dev.tags)
    seen = {t.name: c.origin_text(f"{prefix}.tags[{i}]") for i, t in enumerate(tags)}
    for i, name in enumerate(files):
        key = f"{prefix}.tags_from" if isinstance(dev.tags_from, str) else f"{prefix}.tags_from[{i}]"
        path = base / name
        suffix = path.suffix.lower()
        if suffix == ".toml":
            read_toml_tags(c, prefix, key, path, model, tags, seen)
        elif suffix == ".csv":
            read_csv_tags(c, prefix, key, path, model, tags, seen)
        else:
            c.add(key, f"{name!r} is neither a .toml file of [[tags]] tables nor a .csv file")
    return dev.model_copy(update={"tags": tags})


def read_toml_tags(c: _Collector, prefix: str, key: str, path: Path, model: type[BaseModel], tags: list[Any], seen: dict[str, str]) -> None:
    """Append the ``[[tags]]`` of the TOML file *path* to *tags* (the device at *prefix*), each
    validated with *model*; *seen* maps the tag names so far to where they are. Problems are
    located in *path* (line and key) and listed with the config key *key*."""
    raw, lines = _read_toml(c, key, path)
    if raw is None:
        return

    def problem(where: str, message: str) -> None:
        c.add_near(key, f"{path}:{line_of(lines, where) or '?'}: {where}: {message}")

    items = raw.get("tags", [])
    if not isinstance(items, list):
        problem("tags", "must be an array of tables ([[tags]])")
        items = []
    for i, data in enumerate(items):
        where = f"tags[{i}]"
        try:
            tag = model.model_validate(data)
        except ValidationError as exc:
            for at, message in c.messages(exc, model, where):
                problem(at, message)
            continue
        if tag.name in seen:
            problem(f"{where}.name", f"duplicate tag name {tag.name!r} (first at {seen[tag.name]})")
            continue
        line = line_of(lines, where) or 0
        seen[tag.name] = f"{path}:{line}"
        c.add_origin(f"{prefix}.tags[{len(tags)}]", str(path), line, near=key, lines=lines, inner=where)
        tags.append(tag)
    for name in raw:
        if name not in TAG_FILE_KEYS:
            close = difflib.get_close_matches(name, TAG_FILE_KEYS, n=1)
            problem(name, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else " (a tag file holds [[tags]] tables only)"))


def _read_toml(c: _Collector, key: str, path: Path) -> tuple[dict[str, Any] | None, dict[str, int]]:
    """(parsed TOML, key lines) of *path*, or (None, {}) after adding the problem that stops it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        c.add(key, f"cannot read {str(path)!r}: {exc.strerror}")
        return None, {}
    text, undecodable = decode_text(data, str(path))
    if undecodable is not None:
        c.add_near(key, undecodable)
        return None, {}
    deep_line = nesting_line(text)
    if deep_line is not None:
        c.add_near(key, f"{path}:{deep_line}: arrays or inline tables nested more than {MAX_NESTING} deep")
        return None, {}
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        c.add_near(key, f"{path}:{found.group(1) if found else '?'}: TOML syntax error: {exc}")
        return None, {}
    except RecursionError:
        c.add_near(key, f"{path}:?: arrays or inline tables nested more than {MAX_NESTING} deep")
        return None, {}
    lines = key_lines(text)
    deep = too_deep(raw)
    if deep is not None:
        c.add_near(key, f"{path}:{line_of(lines, deep) or '?'}: {deep}: nested more than {MAX_NESTING} deep")
        return None, {}
    return raw, lines
