"""Gateway configuration: TOML -> validated, frozen models, with every error located.

``load_config(path)`` reads one TOML file, validates each section on its own (so one broken device
does not hide the errors of the next), then checks cross-references (asset signals name existing
device tags, names are unique). It raises one ``ConfigError`` listing every problem as
``file:line: key.path: message``. Unknown keys are errors, with a suggestion. Nothing is clamped or
dropped: a value out of range is an error. No socket is opened here.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from drivers import DRIVER_KINDS
from drivers.modbus.address import RegisterPoint, make_point, parse_address
from edge.config_locate import key_lines, line_of

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
NUMERIC_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Strict):
    name: Name = "edgetwin"
    endpoint: str = "opc.tcp://127.0.0.1:4840/edgetwin"
    namespace_uri: str = "urn:edgetwin:gateway"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_s: float = Field(5.0, gt=0, le=60)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith("opc.tcp://"):
            raise ValueError("must start with opc.tcp://")
        return v

    @model_validator(mode="after")
    def _backoff(self) -> GatewaySection:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class SimulatorSection(_Strict):
    """The built-in simulated plant (a Modbus TCP server), started beside the gateway when enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(5020, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    tick_s: float = Field(0.1, gt=0, le=10)
    time_scale: float = Field(1.0, gt=0, le=1000)
    fault: Literal["none", "bearing_wear", "sensor_drift", "stuck_sensor"] = "none"
    seed: int = 0


class ModbusTag(_Strict):
    name: Name
    address: str
    type: str = "uint16"
    order: Literal["ABCD", "CDAB", "BADC", "DCBA"] | None = None
    scale: float = 1.0
    offset: float = 0.0
    length: int | None = Field(None, ge=1, le=123)
    writable: bool = False
    low: float | None = None
    high: float | None = None
    units: str | None = None
    description: str = ""
    unit_id: int | None = Field(None, ge=0, le=255)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        parse_address(v)  # raises ValueError with the reason
        return v

    @model_validator(mode="after")
    def _point(self) -> ModbusTag:
        # type/area/limits consistency; the device's defaults do not change what is allowed
        self.to_point(unit_id=1, order="ABCD")
        return self

    def to_point(self, *, unit_id: int, order: str) -> RegisterPoint:
        return make_point(
            name=self.name,
            unit_id=unit_id if self.unit_id is None else self.unit_id,
            address=self.address,
            type=self.type,
            order=self.order or order,
            scale=self.scale,
            offset=self.offset,
            length=self.length,
            writable=self.writable,
            low=self.low,
            high=self.high,
            units=self.units,
        )


class ModbusTcpDevice(_Strict):
    name: Name
    driver: Literal["modbus_tcp"]
    host: str
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    timeout_s: float = Field(1.0, gt=0, le=60)
    poll_interval_s: float = Field(1.0, gt=0, le=3600)
    order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = "ABCD"
    max_registers: int = Field(125, ge=1, le=125)
    max_bits: int = Field(2000, ge=1, le=2000)
    max_gap: int = Field(10, ge=0, le=124)
    description: str = ""
    tags: list[ModbusTag] = Field(default_factory=list)

    def points(self) -> list[RegisterPoint]:
        """The validated register points of this device, in tag order."""
        return [t.to_point(unit_id=self.unit_id, order=self.order) for t in self.tags]


DeviceConfig = ModbusTcpDevice  # a discriminated union once more driver kinds exist
DEVICE_MODELS: Mapping[str, type[BaseModel]] = {"modbus_tcp": ModbusTcpDevice}


class SignalConfig(_Strict):
    name: Name
    tag: str  # "device.tag"
    model: Literal["random_walk", "constant_velocity", "constant_acceleration"] = "random_walk"
    process_noise: float = Field(1e-3, ge=0)
    measurement_noise: float = Field(0.1, gt=0)  # standard deviation, in the tag's units
    forecast_horizon_s: float = Field(30.0, ge=0)
    units: str | None = None  # defaults to the tag's units


class AssetConfig(_Strict):
    name: Name
    description: str = ""
    tick_s: float = Field(1.0, gt=0, le=3600)
    score_alpha: float = Field(0.05, gt=0, le=1)
    alarm_threshold: float = Field(9.0, gt=0)
    warmup_ticks: int = Field(20, ge=1)
    signals: list[SignalConfig] = Field(min_length=1)


class GatewayConfig(_Strict):
    gateway: GatewaySection = GatewaySection()
    simulator: SimulatorSection = SimulatorSection()
    devices: list[DeviceConfig] = Field(default_factory=list)
    assets: list[AssetConfig] = Field(default_factory=list)
    source: str = "<memory>"

    def device(self, name: str) -> DeviceConfig:
        return next(d for d in self.devices if d.name == name)


class ConfigError(Exception):
    """Every problem found in a config file, one ``file:line: key.path: message`` per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_SECTIONS: dict[str, Any] = {"gateway": GatewaySection, "simulator": SimulatorSection}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
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
            msg = msg[len(prefix):]
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
    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = key_lines(text)
        self.problems: list[tuple[int, str]] = []

    def add(self, path: str, message: str) -> None:
        line = line_of(self.lines, path)
        self.problems.append((line or 0, f"{self.source}:{line or '?'}: {path}: {message}"))

    def validate(self, model: type[BaseModel], data: Any, prefix: str) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                path = _path((prefix, *loc)) if prefix else _path(loc)
                self.add(path, _message(err, _model_at(model, loc)))
            return None


def parse_config(text: str, source: str = "<memory>") -> GatewayConfig:
    """Validate TOML *text*; raise ConfigError listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = found.group(1) if found else "?"
        raise ConfigError([f"{source}:{line}: TOML syntax error: {exc}"]) from None

    c = _Collector(source, text)
    top = {k: v for k, v in raw.items() if k not in {"gateway", "simulator", "devices", "assets"}}
    for key in top:
        close = difflib.get_close_matches(key, ["gateway", "simulator", "devices", "assets"], n=1)
        c.add(key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))

    sections = {name: c.validate(model, raw.get(name, {}), name) for name, model in _SECTIONS.items()}
    devices = _validate_list(c, raw, "devices", _device_model)
    assets = _validate_list(c, raw, "assets", lambda c, d, p: AssetConfig)

    _check_devices(c, devices)
    _check_assets(c, devices, assets)

    if c.problems:
        raise ConfigError([msg for _, msg in sorted(c.problems, key=lambda p: p[0])])
    return GatewayConfig(
        gateway=sections["gateway"],
        simulator=sections["simulator"],
        devices=[d for _, d in devices],
        assets=[a for _, a in assets],
        source=source,
    )


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_config(text, str(path))


def _device_model(c: _Collector, data: Any, prefix: str) -> type[BaseModel] | None:
    kind = data.get("driver") if isinstance(data, dict) else None
    if kind is None:
        c.add(f"{prefix}.driver", "required key is missing")
        return None
    if kind not in DEVICE_MODELS:
        known = ", ".join(sorted(DRIVER_KINDS))
        c.add(f"{prefix}.driver", f"unknown driver {kind!r}; known drivers: {known}")
        return None
    return DEVICE_MODELS[kind]


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


def _duplicates(c: _Collector, named: list[tuple[str, Any]], what: str) -> None:
    seen: dict[str, str] = {}
    for prefix, item in named:
        if item.name in seen:
            c.add(f"{prefix}.name", f"duplicate {what} name {item.name!r} (first at {seen[item.name]})")
        else:
            seen[item.name] = prefix


def _check_devices(c: _Collector, devices: list[tuple[str, Any]]) -> None:
    _duplicates(c, devices, "device")
    for prefix, dev in devices:
        _duplicates(c, [(f"{prefix}.tags[{i}]", t) for i, t in enumerate(dev.tags)], "tag")


def _check_assets(c: _Collector, devices: list[tuple[str, Any]], assets: list[tuple[str, Any]]) -> None:
    _duplicates(c, assets, "asset")
    device_names = {d.name for _, d in devices}
    tags = {f"{d.name}.{t.name}": t for _, d in devices for t in d.tags}
    for prefix, asset in assets:
        if asset.name in device_names:
            c.add(f"{prefix}.name", f"asset name {asset.name!r} is also a device name")
        _duplicates(c, [(f"{prefix}.signals[{i}]", s) for i, s in enumerate(asset.signals)], "signal")
        for i, sig in enumerate(asset.signals):
            path = f"{prefix}.signals[{i}].tag"
            tag = tags.get(sig.tag)
            if tag is None:
                close = difflib.get_close_matches(sig.tag, list(tags), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                c.add(path, f"unknown tag {sig.tag!r}{hint}")
            elif tag.type not in NUMERIC_TYPES:
                c.add(path, f"tag {sig.tag!r} has type {tag.type!r}; a twin signal needs a numeric tag")


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file (generated; see config/schema.json)."""
    schema = TypeAdapter(GatewayConfig).json_schema()
    schema["properties"].pop("source", None)
    schema["title"] = "edgetwin gateway configuration"
    return schema
