"""Gateway configuration: TOML -> validated, frozen models, with every error located.

``load_config(path)`` reads one TOML file, validates each section on its own (so one broken device
does not hide the errors of the next), then checks cross-references (asset signals name existing
device tags, names are unique). It raises one ``ConfigError`` listing every problem as
``file:line: key.path: message``. Unknown keys are errors, with a suggestion. Nothing is clamped or
dropped: a value out of range is an error. No socket is opened here.

Each device is validated with the settings model of its ``driver`` (``drivers.DRIVER_KINDS``).
The models are in ``models.py``, the cross-reference checks in ``checks.py``, the CSV tag import
in ``csv_tags.py``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from drivers import UnknownDriverError, settings_model
from edge.config.checks import _check_assets, _check_devices, _check_exclusive, _check_opcua
from edge.config.collisions import check_collisions
from edge.config.csv_tags import _with_csv_tags
from edge.config.locate import MAX_NESTING, decode_text, key_lines, line_of, nesting_line, too_deep
from edge.config.models import AssetConfig, GatewayConfig, GatewaySection, HistorySection, MetricsSection, OpcUaSection, SimulatorSection
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


class _Collector:
    """The problems found so far, each with the line it is sorted by."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = key_lines(text)
        self.problems: list[tuple[int, str]] = []
        self.origins: dict[str, tuple[str, int, int]] = {}  # key path of an item read from another file -> (file, line, sort line)

    def add(self, path: str, message: str) -> None:
        """A problem at the key *path* of this config file."""
        item, _, key = path.rpartition(".")
        if item in self.origins:  # e.g. a tag from a CSV file: located in that file
            file, line, sort_line = self.origins[item]
            self.problems.append((sort_line, f"{file}:{line}: {key}: {message}"))
            return
        line = line_of(self.lines, path)
        self.problems.append((line or 0, f"{self.source}:{line or '?'}: {path}: {message}"))

    def add_origin(self, item: str, file: str, line: int, *, near: str) -> None:
        """Problems found later at *item* (read from another file) are located at *file*:*line*
        and listed with the key *near* of this config file."""
        self.origins[item] = (file, line, line_of(self.lines, near) or 0)

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
    devices = [(prefix, _with_csv_tags(c, prefix, dev, Path(source).parent)) for prefix, dev in devices]
    _check_assets(c, devices, assets, _broken_devices(raw, devices))
    check_collisions(c, devices, assets)
    _check_opcua(c, sections["opcua"])
    # [mqtt] is optional: without it no MQTT sink runs (edge.mqtt)
    mqtt = c.validate(MqttSection, raw["mqtt"], "mqtt") if "mqtt" in raw else None
    if mqtt is not None:
        for path, message in mqtt_problems(mqtt, Path(source).parent):
            c.add(path, message)

    if c.problems:
        raise ConfigError([msg for _, msg in sorted(c.problems, key=lambda p: p[0])])
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
