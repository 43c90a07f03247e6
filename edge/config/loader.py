"""Gateway configuration: TOML -> validated, frozen models, with every error located.

``load_config(path)`` reads one TOML file, validates each section on its own (so one broken device
does not hide the errors of the next), then checks cross-references (asset signals name existing
device tags, names are unique). It raises one ``ConfigError`` listing every problem as
``file:line: key.path: message``. Unknown keys are errors, with a suggestion. Nothing is clamped or
dropped: a value out of range is an error. No socket is opened here.

Each device is validated with the settings model of its ``driver`` (``drivers.DRIVER_KINDS``).
The models are in ``models.py``, the cross-reference checks in ``checks.py``, the CSV tag import
in ``csv_tags.py``, tag files (``tags_from``) in ``includes.py``, multi-unit devices in ``units.py``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from drivers import UnknownDriverError, settings_model
from edge.config.checks import _check_assets, _check_devices, _check_exclusive, _check_opcua
from edge.config.collisions import check_collisions
from edge.config.includes import with_included_tags
from edge.config.locate import MAX_NESTING, decode_text, key_lines, line_of, nesting_line, too_deep
from edge.config.models import AssetConfig, GatewayConfig, GatewaySection, HistorySection, MetricsSection, OpcUaSection, SimulatorSection
from edge.config.units import expand_units
from edge.mqtt.checks import mqtt_problems
from edge.mqtt.settings import MqttSection


class ConfigError(Exception):
    """Every problem found in a config file, one ``file:line: key.path: message`` per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_SECTIONS: dict[str, Any] = {"gateway": GatewaySection, "simulator": SimulatorSection, "opcua": OpcUaSection, "history": HistorySection}
# sections whose absence means "off" (GatewayConfig field None)
_OPTIONAL_SECTIONS: dict[str, Any] = {"metrics": MetricsSection}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for an error in a dict key: the key itself is the path
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    if err["type"] == "extra_forbidden":
        fields = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(err["loc"][-1]), fields, n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that owns the last key of *loc* (for unknown-key suggestions)."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model


class Origin(NamedTuple):
    """Where an item read from another file is: *file*:*line*, listed with the config's *sort_line*.
    With *lines* (the key lines of a TOML file) a problem at one of its keys gets that key's line
    and is named by the key path *inner* has in that file (``tags[2].address``)."""

    file: str
    line: int
    sort_line: int
    lines: dict[str, int] | None = None
    inner: str = ""


_ITEM = re.compile(r"^(.*?\.tags\[\d+\])(?:\.(.+))?$")  # a device tag's key path: (item, key below it)


class _Collector:
    """The problems found so far, each with the line it is sorted by."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = key_lines(text)
        self.problems: list[tuple[int, str]] = []
        self.origins: dict[str, Origin] = {}  # key path of an item read from another file -> where it is
        # key path of a unit's copy of a tag -> key path of its template (edge.config.units)
        self.aliases: dict[str, str] = {}

    def resolve(self, path: str) -> tuple[str, str | None]:
        """(*path* with a unit's copy of a tag replaced by its template, the key below the tag or None)."""
        found = _ITEM.match(path)
        if found is None:
            return path, None
        item, key = found.group(1), found.group(2)
        item = self.aliases.get(item, item)
        return (f"{item}.{key}" if key else item), key

    def add(self, path: str, message: str) -> None:
        """A problem at the key *path* of this config file (or of the file a tag was included from)."""
        path, key = self.resolve(path)
        origin = self.origins.get(path if key is None else path[: -len(key) - 1])
        if origin is not None and origin.lines is not None:  # a tag from a TOML file: its key's line there
            where = f"{origin.inner}.{key}" if key else origin.inner
            self.problems.append((origin.sort_line, f"{origin.file}:{line_of(origin.lines, where) or origin.line}: {where}: {message}"))
            return
        if origin is not None:  # e.g. a tag from a CSV file: located in that file
            self.problems.append((origin.sort_line, f"{origin.file}:{origin.line}: {key + ': ' if key else ''}{message}"))
            return
        line = line_of(self.lines, path)
        self.problems.append((line or 0, f"{self.source}:{line or '?'}: {path}: {message}"))

    def add_origin(self, item: str, file: str, line: int, *, near: str, lines: dict[str, int] | None = None, inner: str = "") -> None:
        """Problems found later at *item* (read from another file) are located at *file*:*line*
        (at the line of their key, for a TOML file's *lines*) and listed with the key *near* of
        this config file."""
        self.origins[item] = Origin(file, line, line_of(self.lines, near) or 0, lines, inner)

    def origin_text(self, item: str) -> str:
        """``file:line`` of an item read from another file, else its key path (for messages)."""
        origin = self.origins.get(item)
        return f"{origin.file}:{origin.line}" if origin is not None else item

    def add_near(self, path: str, text: str) -> None:
        """A problem worded in full by the caller (it names another file), listed with the key *path*."""
        self.problems.append((line_of(self.lines, path) or 0, text))

    def messages(self, exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
        """(key path, message) of each error of a validation of *model* at *prefix*."""
        out = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            path = _path((prefix, *loc)) if prefix else _path(loc)
            out.append((path, _message(err, _model_at(model, loc))))
        return out

    def validate(self, model: type[BaseModel], data: Any, prefix: str) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for path, message in self.messages(exc, model, prefix):
                self.add(path, message)
            return None


def parse_config(text: str, source: str = "<memory>") -> GatewayConfig:
    """Validate TOML *text*; raise ConfigError listing every problem."""
    deep_line = nesting_line(text)
    if deep_line is not None:  # refused before parsing: the parser and the validators recurse
        raise ConfigError([f"{source}:{deep_line}: arrays or inline tables nested more than {MAX_NESTING} deep"])
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = found.group(1) if found else "?"
        raise ConfigError([f"{source}:{line}: TOML syntax error: {exc}"]) from None
    except RecursionError:  # nesting the scanner above did not see (it is approximate)
        raise ConfigError([f"{source}:?: arrays or inline tables nested more than {MAX_NESTING} deep"]) from None
    deep = too_deep(raw)
    if deep is not None:
        raise ConfigError([f"{source}:{line_of(key_lines(text), deep) or '?'}: {deep}: nested more than {MAX_NESTING} deep"])

    c = _Collector(source, text)
    top = {k: v for k, v in raw.items() if k not in {"gateway", "simulator", "opcua", "history", "devices", "assets", "mqtt", *_OPTIONAL_SECTIONS}}
    for key in top:
        close = difflib.get_close_matches(key, ["gateway", "simulator", "opcua", "history", "devices", "assets", "mqtt", *_OPTIONAL_SECTIONS], n=1)
        c.add(key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))

    sections = {name: c.validate(model, raw.get(name, {}), name) for name, model in _SECTIONS.items()}
    optional = {name: c.validate(model, raw[name], name) if name in raw else None for name, model in _OPTIONAL_SECTIONS.items()}
    devices = _validate_list(c, raw, "devices", _device_model)
    assets = _validate_list(c, raw, "assets", lambda c, d, p: AssetConfig)

    _check_devices(c, devices)
    _check_exclusive(c, devices)
    # tags from other files (tags_csv, tags_from), then each unit's copy of the tags (units = [...])
    devices = [(prefix, expand_units(c, prefix, with_included_tags(c, prefix, dev, Path(source).parent))) for prefix, dev in devices]
    _check_assets(c, devices, assets, _broken_devices(raw, devices))
    check_collisions(c, devices, assets)
    _check_opcua(c, sections["opcua"])
    # [mqtt] is optional: without it no MQTT sink runs (edge.mqtt)
    mqtt = c.validate(MqttSection, raw["mqtt"], "mqtt") if "mqtt" in raw else None
    if mqtt is not None:
        for path, message in mqtt_problems(mqtt, Path(source).parent):
            c.add(path, message)

    if c.problems:
        # a template tag's problem is found once per unit, at one place: listed once
        raise ConfigError(list(dict.fromkeys(msg for _, msg in sorted(c.problems, key=lambda p: p[0]))))
    return GatewayConfig(
        gateway=sections["gateway"],
        simulator=sections["simulator"],
        opcua=sections["opcua"],
        history=sections["history"],
        mqtt=mqtt,
        devices=[d for _, d in devices],
        assets=[a for _, a in assets],
        source=source,
        **optional,
    )


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    text, problem = decode_text(data, str(path))
    if problem is not None:
        raise ConfigError([problem])
    return parse_config(text, str(path))


def _broken_devices(raw: dict, devices: list[tuple[str, Any]]) -> frozenset[str]:
    """Names of the devices in *raw* that failed validation (their errors are listed already)."""
    items = raw.get("devices")
    named = {d.get("name") for d in items if isinstance(d, dict) and isinstance(d.get("name"), str)} if isinstance(items, list) else set()
    return frozenset(named) - {d.name for _, d in devices}


def _device_model(c: _Collector, data: Any, prefix: str) -> type[BaseModel] | None:
    kind = data.get("driver") if isinstance(data, dict) else None
    if kind is None:
        c.add(f"{prefix}.driver", "required key is missing")
        return None
    try:
        return settings_model(kind)
    except UnknownDriverError as exc:
        c.add(f"{prefix}.driver", str(exc))
        return None


def _validate_list(c: _Collector, raw: dict, key: str, pick) -> list[tuple[str, Any]]:
    items = raw.get(key, [])
    if not isinstance(items, list):
        c.add(key, f"must be an array of tables ([[{key}]])")
        return []
    out = []
    for i, data in enumerate(items):
        prefix = f"{key}[{i}]"
        model = pick(c, data, prefix)
        if model is None:
            continue
        value = c.validate(model, data, prefix)
        if value is not None:
            out.append((prefix, value))
    return out
