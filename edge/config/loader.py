"""Gateway configuration: TOML -> validated, frozen models, with every error located.

``load_config(path)`` reads one TOML file, validates each section on its own (so one broken device
does not hide the errors of the next), then checks cross-references (asset signals name existing
device tags, names are unique). It raises one ``ConfigError`` listing every problem as
``file:line: key.path: message``. Unknown keys are errors, with a suggestion. Nothing is clamped or
dropped: a value out of range is an error. No socket is opened here.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from drivers import DRIVER_KINDS, UnknownDriverError, settings_model
from drivers.modbus.settings import ModbusTag
from drivers.settings import Name
from drivers.settings import Strict as _Strict
from edge.config.locate import key_lines, line_of
from edge.opcua.users import parse_password_hash

# every registered device settings model, in table order (settings modules import no protocol library)
DeviceConfig = Annotated[Union[tuple(settings_model(kind) for kind in DRIVER_KINDS)], Field(discriminator="driver")]  # noqa: UP007

NUMERIC_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"})


class GatewaySection(_Strict):
    name: Name = "edgetwin"
    endpoint: str = "opc.tcp://127.0.0.1:4840/edgetwin"
    namespace_uri: str = "urn:edgetwin:gateway"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_s: float = Field(5.0, gt=0, le=60)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    # certificates, PKI and history; a relative path is relative to the config file's folder
    state_dir: str = "state"

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


SecurityPolicyName = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
RoleName = Literal["viewer", "operator", "admin"]


class UserConfig(_Strict):
    """One OPC UA login. Only a salted hash is stored (``edgetwin hash-password`` makes one)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    password_hash: str
    role: RoleName = "viewer"
    password: SkipJsonSchema[str | None] = None  # refused with a clear message, never stored

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        parse_password_hash(v)
        return v

    @field_validator("password")
    @classmethod
    def _plain(cls, v: str | None) -> None:
        if v is not None:
            raise ValueError("plain-text passwords are not accepted; store password_hash (make one with `edgetwin hash-password`)")
        return None


class OpcUaSection(_Strict):
    """Endpoints, certificates and logins of the northbound OPC UA server."""

    # "None" offers an unsecured endpoint: only for loopback demos and tests
    security_policies: list[SecurityPolicyName] = Field(
        default_factory=lambda: ["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"], min_length=1
    )
    security_modes: list[Literal["Sign", "SignAndEncrypt"]] = Field(default_factory=lambda: ["Sign", "SignAndEncrypt"], min_length=1)
    allow_anonymous: bool = False
    anonymous_role: RoleName = "viewer"
    application_uri: str | None = None  # default urn:<hostname>:edgetwin:<gateway name>
    hostnames: list[str] = Field(default_factory=list)  # default: the endpoint host and this machine's names
    certificate_days: int = Field(3650, ge=1, le=36500)
    users: list[UserConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSection:
        if len(set(self.security_policies)) != len(self.security_policies):
            raise ValueError("security_policies lists a policy twice")
        if self.users and self.security_policies == ["None"]:
            raise ValueError("users need a secure policy: with only 'None' their passwords would cross the network in clear text")
        return self


class HistorySection(_Strict):
    """The history database. History runs when any tag, signal or asset sets ``historize = true``."""

    path: str | None = None  # default <state_dir>/history.sqlite; relative to the config file's folder
    retention_days: float = Field(30.0, gt=0, le=36500)  # rows older than this (by arrival) are removed
    max_db_mb: float = Field(1024.0, gt=0)  # the oldest rows are removed when the database grows past this
    flush_interval_s: float = Field(1.0, gt=0, le=60)  # samples are written in batches at least this often
    max_values_per_read: int = Field(1000, ge=1, le=100_000)  # per node per HistoryRead; more -> continuation point




class SignalConfig(_Strict):
    name: Name
    tag: str  # "device.tag"
    model: Literal["random_walk", "constant_velocity", "constant_acceleration"] = "random_walk"
    process_noise: float = Field(1e-3, ge=0)
    measurement_noise: float = Field(0.1, gt=0)  # standard deviation, in the tag's units
    forecast_horizon_s: float = Field(30.0, ge=0)
    units: str | None = None  # defaults to the tag's units
    historize: bool = False  # keep Measured, Estimate, Forecast, Residual and AnomalyScore in history
    # Online identification of a model from `input` (a device tag, e.g. a heater setpoint) to this
    # signal; see docs/twin.md. At most one identified signal per asset (Simulate/ResetModel).
    input: str | None = None
    input_model: Literal["fopdt", "arx"] = "fopdt"
    arx_orders: tuple[int, int, int] = (2, 2, 1)  # na, nb, nk (input_model = "arx")
    dead_time_s: float = Field(0.0, ge=0)  # fopdt; a multiple of model_period_s
    max_dead_time_s: float | None = Field(None, ge=0)  # fopdt: identify the dead time in dead_time_s..this
    model_period_s: float | None = Field(None, gt=0)  # identification sample period; default the asset's tick_s
    forgetting: float = Field(0.998, ge=0.9, le=1)
    covariance_bound: float = Field(1e4, gt=0)  # anti-windup: forgetting pauses above this trace(P)
    model_warmup: int = Field(30, ge=3)  # model samples before identified outputs are published
    max_gain_rel_std: float = Field(0.25, gt=0)  # warm only once the gain is known this well

    @field_validator("arx_orders")
    @classmethod
    def _arx_orders(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        na, nb, nk = v
        if not (0 <= na <= 8 and 1 <= nb <= 8 and 1 <= nk <= 64):
            raise ValueError(f"[na, nb, nk] needs 0 <= na <= 8, 1 <= nb <= 8, 1 <= nk <= 64; got {list(v)}")
        return v


class DetectorConfig(_Strict):
    """Multivariate anomaly detector of an asset (PCA T^2 + Q over its signals; docs/detection.md).

    Fitted on the first ``train_ticks`` ticks in which every signal is Good (a window of normal
    operation), then scored every tick; alarm on above ``on`` x the control limit, off below
    ``release`` x ``on``, after ``k`` exceedances within ``window`` ticks.
    """

    kind: Literal["pca"] = "pca"
    train_ticks: int = Field(400, ge=10, le=100_000)
    on: float = Field(1.25, gt=0)
    release: float = Field(0.8, gt=0, le=1)
    k: int = Field(1, ge=1, le=64)
    window: int = Field(1, ge=1, le=64)
    smoothing: float = Field(0.2, gt=0, le=1)  # EWMA factor of the score (1 = none)
    explained: float = Field(0.95, gt=0, le=1)  # variance share of the kept principal components
    alpha: float = Field(0.99, gt=0.5, lt=1)  # confidence of the T^2 and Q control limits
    differences: bool = True  # also monitor each signal's change since the previous tick
    rate_only: list[str] = Field(default_factory=list)  # signals monitored by their change only (slow drifting states)

    @model_validator(mode="after")
    def _k_of_window(self) -> DetectorConfig:
        if self.k > self.window:
            raise ValueError(f"k ({self.k}) must not exceed window ({self.window})")
        return self


class AssetConfig(_Strict):
    name: Name
    description: str = ""
    tick_s: float = Field(1.0, gt=0, le=3600)
    score_alpha: float = Field(0.05, gt=0, le=1)
    alarm_threshold: float = Field(9.0, gt=0)
    warmup_ticks: int = Field(20, ge=1)
    alarm_severity: int = Field(700, ge=1, le=1000)  # of the anomaly alarm event
    historize: bool = False  # keep the asset's AnomalyScore and Alarm (and every signal) in history
    signals: list[SignalConfig] = Field(min_length=1)
    detector: DetectorConfig | None = None  # multivariate detector over the signals (Assets/<asset>/Detector)

    @model_validator(mode="after")
    def _detector_signals(self) -> AssetConfig:
        if self.detector is not None:
            names = [s.name for s in self.signals]
            unknown = [r for r in self.detector.rate_only if r not in names]
            if unknown:
                raise ValueError(f"detector.rate_only names no signal of this asset: {unknown}; signals are {names}")
            if len(names) < 2:
                raise ValueError("detector needs at least 2 signals")
        return self


class GatewayConfig(_Strict):
    gateway: GatewaySection = GatewaySection()
    simulator: SimulatorSection = SimulatorSection()
    opcua: OpcUaSection = OpcUaSection()
    history: HistorySection = HistorySection()
    devices: list[DeviceConfig] = Field(default_factory=list)
    assets: list[AssetConfig] = Field(default_factory=list)
    source: str = "<memory>"

    def resolve_path(self, path: str | Path) -> Path:
        """A path from this config: absolute as given, relative to the config file's folder
        (to the working directory for a config that did not come from a file)."""
        path = Path(path)
        if path.is_absolute():
            return path
        source = Path(self.source)
        base = source.parent if self.source != "<memory>" and source.suffix else Path.cwd()
        return (base / path).resolve()

    @property
    def state_path(self) -> Path:
        """``gateway.state_dir`` resolved (certificates, PKI, history)."""
        return self.resolve_path(self.gateway.state_dir)

    def device(self, name: str) -> DeviceConfig:
        return next(d for d in self.devices if d.name == name)


class ConfigError(Exception):
    """Every problem found in a config file, one ``file:line: key.path: message`` per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


_SECTIONS: dict[str, Any] = {"gateway": GatewaySection, "simulator": SimulatorSection, "opcua": OpcUaSection, "history": HistorySection}


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
    top = {k: v for k, v in raw.items() if k not in {"gateway", "simulator", "opcua", "history", "devices", "assets"}}
    for key in top:
        close = difflib.get_close_matches(key, ["gateway", "simulator", "opcua", "history", "devices", "assets"], n=1)
        c.add(key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))

    sections = {name: c.validate(model, raw.get(name, {}), name) for name, model in _SECTIONS.items()}
    devices = _validate_list(c, raw, "devices", _device_model)
    assets = _validate_list(c, raw, "assets", lambda c, d, p: AssetConfig)

    _check_devices(c, devices)
    _check_exclusive(c, devices)
    devices = [(prefix, _with_csv_tags(c, prefix, dev, Path(source).parent)) for prefix, dev in devices]
    _check_assets(c, devices, assets)
    _check_opcua(c, sections["opcua"])

    if c.problems:
        raise ConfigError([msg for _, msg in sorted(c.problems, key=lambda p: p[0])])
    return GatewayConfig(
        gateway=sections["gateway"],
        simulator=sections["simulator"],
        opcua=sections["opcua"],
        history=sections["history"],
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


def _duplicates(c: _Collector, named: list[tuple[str, Any]], what: str) -> None:
    seen: dict[str, str] = {}
    for prefix, item in named:
        if item.name in seen:
            c.add(f"{prefix}.name", f"duplicate {what} name {item.name!r} (first at {seen[item.name]})")
        else:
            seen[item.name] = prefix


# Browse names the OPC UA model gives to members of device and asset objects (edge/opcua/model.py)
RESERVED_DEVICE_NAMES = frozenset({"Gateway"})  # Diagnostics/Gateway holds the gateway's own diagnostics
RESERVED_TAG_NAMES = frozenset({"LinkState", "LastError", "ReadsOk", "ReadsFailed", "Reconnects", "PollCycleTime"})
RESERVED_SIGNAL_NAMES = frozenset({"AnomalyScore", "Alarm", "Simulate", "ResetModel"})


def _check_devices(c: _Collector, devices: list[tuple[str, Any]]) -> None:
    _duplicates(c, devices, "device")
    for prefix, dev in devices:
        _duplicates(c, [(f"{prefix}.tags[{i}]", t) for i, t in enumerate(dev.tags)], "tag")
        if dev.name in RESERVED_DEVICE_NAMES:
            c.add(f"{prefix}.name", f"{dev.name!r} is reserved (Diagnostics/{dev.name} holds the gateway's diagnostics)")
        for i, tag in enumerate(dev.tags):
            if tag.name in RESERVED_TAG_NAMES:
                c.add(f"{prefix}.tags[{i}].name", f"{tag.name!r} is reserved for the device's diagnostics node")


def _check_exclusive(c: _Collector, devices: list[tuple[str, Any]]) -> None:
    """Two devices may not claim the same exclusive resource (for Modbus RTU: one device per serial bus)."""
    claimed: dict[str, str] = {}
    for prefix, dev in devices:
        res = dev.exclusive_resource()
        if res is None:
            continue
        if res.what in claimed:
            hint = f" ({res.hint})" if res.hint else ""
            c.add(f"{prefix}.{res.key}", f"{res.what} is already used by {claimed[res.what]}{hint}")
        claimed.setdefault(res.what, f"{prefix} ({dev.name})")


def _with_csv_tags(c: _Collector, prefix: str, dev: Any, base: Path) -> Any:
    """*dev* with the tags of its CSV file appended (unchanged without ``tags_csv``); errors name the CSV file and line."""
    if not getattr(dev, "tags_csv", None):
        return dev
    path = base / dev.tags_csv
    sort_line = line_of(c.lines, f"{prefix}.tags_csv") or 0

    def problem(line: int, where: str, message: str) -> None:
        c.problems.append((sort_line, f"{path}:{line}: {where + ': ' if where else ''}{message}"))

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
            for err in exc.errors():
                problem(line, _path(tuple(err["loc"])), _message(err, ModbusTag))
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


def _check_assets(c: _Collector, devices: list[tuple[str, Any]], assets: list[tuple[str, Any]]) -> None:
    _duplicates(c, assets, "asset")
    device_names = {d.name for _, d in devices}
    tags = {f"{d.name}.{t.name}": t for _, d in devices for t in d.tags}
    for prefix, asset in assets:
        if asset.name in device_names:
            c.add(f"{prefix}.name", f"asset name {asset.name!r} is also a device name")
        _duplicates(c, [(f"{prefix}.signals[{i}]", s) for i, s in enumerate(asset.signals)], "signal")
        for i, sig in enumerate(asset.signals):
            if sig.name in RESERVED_SIGNAL_NAMES:
                c.add(f"{prefix}.signals[{i}].name", f"{sig.name!r} is reserved for a member of the asset object")
        for i, sig in enumerate(asset.signals):
            path = f"{prefix}.signals[{i}].tag"
            tag = tags.get(sig.tag)
            if tag is None:
                close = difflib.get_close_matches(sig.tag, list(tags), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                c.add(path, f"unknown tag {sig.tag!r}{hint}")
            elif tag.type not in NUMERIC_TYPES:
                c.add(path, f"tag {sig.tag!r} has type {tag.type!r}; a twin signal needs a numeric tag")
        _check_identified(c, prefix, asset, tags)


def _check_identified(c: _Collector, prefix: str, asset: Any, tags: Mapping[str, Any]) -> None:
    """Identified signals: a known numeric input tag, periods that fit the tick, one per asset."""
    identified = [(i, s) for i, s in enumerate(asset.signals) if s.input is not None]
    for i, sig in identified[1:]:
        c.add(f"{prefix}.signals[{i}].input", f"asset {asset.name!r} already identifies signal {identified[0][1].name!r}; one identified signal per asset")
    for i, sig in identified:
        path = f"{prefix}.signals[{i}]"
        tag = tags.get(sig.input)
        if tag is None:
            close = difflib.get_close_matches(sig.input, list(tags), n=3)
            c.add(f"{path}.input", f"unknown tag {sig.input!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        elif tag.type not in NUMERIC_TYPES:
            c.add(f"{path}.input", f"tag {sig.input!r} has type {tag.type!r}; a model input needs a numeric tag")
        period = sig.model_period_s if sig.model_period_s is not None else asset.tick_s
        ratio = period / asset.tick_s
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio) or round(ratio) < 1:
            c.add(f"{path}.model_period_s", f"must be a whole multiple of the asset's tick_s ({asset.tick_s:g} s), got {period:g}")
        steps = sig.dead_time_s / period
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            c.add(f"{path}.dead_time_s", f"must be a whole multiple of model_period_s ({period:g} s), got {sig.dead_time_s:g}")
        elif sig.input_model == "fopdt" and round(steps) > 255:
            c.add(f"{path}.dead_time_s", f"at most 255 model periods of dead time, got {round(steps)}")
        if sig.max_dead_time_s is not None:
            top = sig.max_dead_time_s / period
            if sig.input_model != "fopdt":
                c.add(f"{path}.max_dead_time_s", "only for input_model = \"fopdt\"")
            elif abs(top - round(top)) > 1e-9 * max(1.0, top):
                c.add(f"{path}.max_dead_time_s", f"must be a whole multiple of model_period_s ({period:g} s), got {sig.max_dead_time_s:g}")
            elif sig.max_dead_time_s < sig.dead_time_s:
                c.add(f"{path}.max_dead_time_s", f"must be >= dead_time_s ({sig.dead_time_s:g} s)")
            elif round(top) > 255 or round(top) - round(steps) + 1 > 32:
                c.add(f"{path}.max_dead_time_s", f"at most 255 model periods and 32 candidate dead times, got {round(top) - round(steps) + 1} candidates up to {round(top)} periods")


def _check_opcua(c: _Collector, opcua: OpcUaSection | None) -> None:
    if opcua is not None:
        _duplicates(c, [(f"opcua.users[{i}]", u) for i, u in enumerate(opcua.users)], "user")


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file (generated; see config/schema.json)."""
    schema = TypeAdapter(GatewayConfig).json_schema()
    schema["properties"].pop("source", None)
    schema["title"] = "edgetwin gateway configuration"
    return schema
