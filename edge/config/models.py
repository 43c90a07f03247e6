"""The gateway config's models: the gateway, simulator, OPC UA, history and asset sections, and
``GatewayConfig``, which holds them with the devices.

Device settings are the drivers' own models (``drivers.settings.DeviceSettings``), one per kind
registered in ``drivers.DRIVER_KINDS``; ``DeviceConfig`` is their union, told apart by ``driver``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from drivers import DRIVER_KINDS, settings_model
from drivers.settings import DeviceSettings, Name, Strict
from edge.core.loglevels import check_component
from edge.core.statedir import StateDir
from edge.metrics.listen import parse_listen
from edge.mqtt.settings import MqttSection
from edge.opcua.users import parse_password_hash

if TYPE_CHECKING:
    DeviceConfig = DeviceSettings
else:  # every registered device settings model, in table order (settings modules import no protocol library)
    DeviceConfig = Annotated[Union[tuple(settings_model(kind) for kind in DRIVER_KINDS)], Field(discriminator="driver")]  # noqa: UP007


def _component(name: str) -> str:
    problem = check_component(name)
    if problem is not None:
        raise ValueError(problem)
    return name


Component = Annotated[str, AfterValidator(_component)]  # a logger name or prefix (edge.core.loglevels)


class GatewaySection(Strict):
    name: Name = "edgetwin"
    endpoint: str = "opc.tcp://127.0.0.1:4840/edgetwin"
    namespace_uri: str = "urn:edgetwin:gateway"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout_s: float = Field(5.0, gt=0, le=60)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    # certificates, PKI, history, twin state (docs/state.md); a relative path is relative to the config
    # file's folder; default: $STATE_DIRECTORY (systemd), $XDG_STATE_HOME/edgetwin, /var/lib/edgetwin
    # (root) or ~/.local/state/edgetwin
    state_dir: str | None = None
    # a level per component, overriding log_level: {"drivers.modbus" = "debug", "asyncua" = "info"}
    log_levels: dict[Component, Literal["debug", "info", "warning", "error"]] = Field(default_factory=dict)
    # the twin's learnt state (filters, identified models, fitted detectors) is saved to
    # <state_dir>/twin/<asset>.json this often, at shutdown and after ResetModel (docs/twin.md)
    twin_save_interval_s: float = Field(60.0, ge=1, le=86400)

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


class SimulatorSection(Strict):
    """The built-in simulated plant (a Modbus TCP server), started beside the gateway when enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(5020, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    tick_s: float = Field(0.1, gt=0, le=10)
    time_scale: float = Field(1.0, gt=0, le=1000)
    fault: Literal["none", "bearing_wear", "sensor_drift", "stuck_sensor", "flow_sensor", "spike"] = "none"
    seed: int = 0


SecurityPolicyName = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
RoleName = Literal["viewer", "operator", "admin"]


class UserConfig(Strict):
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


class OpcUaLimitsSection(Strict):
    """``[opcua.limits]``: what one client may take from the OPC UA server (docs/opcua.md, Security)."""

    max_connections: int = Field(100, ge=1, le=10_000)  # in all; idle unauthenticated ones are closed first when full
    max_connections_per_address: int = Field(20, ge=1, le=10_000)
    handshake_timeout_s: float = Field(10.0, gt=0, le=300)  # HEL to ActivateSession
    max_chunk_bytes: int = Field(65535, ge=8192, le=2**24)  # receive buffer; a larger chunk is refused on its header
    max_message_bytes: int = Field(16 * 2**20, ge=8192, le=2**30)
    max_session_timeout_s: float = Field(600.0, ge=10, le=86_400)  # an abandoned session is closed after this at most
    max_nodes_per_read: int = Field(10_000, ge=1, le=1_000_000)  # more: BadTooManyOperations
    max_nodes_per_write: int = Field(1_000, ge=1, le=1_000_000)
    max_nodes_per_browse: int = Field(1_000, ge=1, le=1_000_000)
    max_nodes_per_history_read: int = Field(1_000, ge=1, le=1_000_000)
    max_rejected_certificates: int = Field(100, ge=1, le=100_000)  # files kept in pki/rejected/certs
    login_backoff_s: float = Field(0.25, gt=0, le=60)  # after a failed login; doubles per failure
    login_backoff_max_user_s: float = Field(5.0, gt=0, le=600)
    login_backoff_max_address_s: float = Field(30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _sizes(self) -> OpcUaLimitsSection:
        if self.max_message_bytes < self.max_chunk_bytes:
            raise ValueError("max_message_bytes must be >= max_chunk_bytes")
        return self


class OpcUaSection(Strict):
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
    limits: OpcUaLimitsSection = OpcUaLimitsSection()

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSection:
        if len(set(self.security_policies)) != len(self.security_policies):
            raise ValueError("security_policies lists a policy twice")
        if self.users and self.security_policies == ["None"]:
            raise ValueError("users need a secure policy: with only 'None' their passwords would cross the network in clear text")
        return self


class HistorySection(Strict):
    """The history database. History runs when any tag, signal or asset sets ``historize = true``."""

    path: str | None = None  # default <state_dir>/history.sqlite; relative to the config file's folder
    retention_days: float = Field(30.0, gt=0, le=36500)  # rows older than this (by arrival) are removed
    max_db_mb: float = Field(1024.0, gt=0)  # the oldest rows are removed when the database grows past this
    flush_interval_s: float = Field(1.0, gt=0, le=60)  # samples are written in batches at least this often
    max_values_per_read: int = Field(1000, ge=1, le=100_000)  # per node per HistoryRead; more -> continuation point


class MetricsSection(Strict):
    """The Prometheus endpoint (docs/metrics.md); without a ``[metrics]`` section there is none."""

    listen: str  # "host:port" of GET /metrics, e.g. "127.0.0.1:9108"; "0.0.0.0:9108" for every interface

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


# -- sensor validation (edge.twin.validation; docs/detection.md "Sensor validation") ------------
class ValidationConfig(Strict):
    """``[assets.validation]``: per-signal sensor validation (stuck, spike, drift, contradiction).

    On for an asset with this section or with a signal that has ``related`` tags; the defaults
    work on the demo plant without tuning.
    """

    learn_s: float = Field(300.0, gt=0)  # normal operation each signal learns before it can be flagged
    stuck_probability: float = Field(1e-9, gt=0, lt=1)  # chance of a run of repeats on a healthy sensor that flags it
    stuck_min_s: float = Field(10.0, ge=0)  # a flat line is flagged only once it lasted this long
    spike_sigma: float = Field(8.0, gt=0)  # an isolated reading this many noise deviations away is a spike
    drift_k: float = Field(1.5, ge=0)  # CUSUM slack of the model-residual drift test (residual sigmas)
    drift_h: float = Field(10.0, gt=0)  # CUSUM decision level of the drift test (residual sigmas)
    drift_horizon_s: float = Field(120.0, gt=0)  # the drift test runs the identified model open loop over this look-back
    drift_window_s: float = Field(180.0, ge=40)  # ramp test: window whose two half slopes are compared (a drift flags after one window)
    drift_tau_s: float = Field(300.0, gt=0)  # ramp test: the process's longest settling time constant under held inputs
    drift_min_rate: float = Field(0.3, ge=0)  # ramp test: the smallest drift flagged, in the signal's units per minute
    follow_sigma: float = Field(6.0, gt=0)  # stuck: a predicted move of this many noise deviations the reading must follow
    contradiction_sigma: float = Field(6.0, gt=0)  # smoothed redundancy residual that flags a contradiction
    balance_sigma: float = Field(5.0, gt=0)  # drift against a balance (signals with explained_by): the level, in deviations of the windowed residual
    hold_s: float = Field(30.0, ge=0)  # a flag stays raised at least this long
    alarm: bool = True  # a flagged signal raises the asset's anomaly alarm (its message names signal and kind)


# -- end of sensor validation ----------------------------------------------------------------------


class SignalConfig(Strict):
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
    related: list[str] = Field(default_factory=list)  # device tags this signal must agree with (sensor validation: contradiction)
    # Sensor validation, drift against a balance: the device tags whose readings explain this
    # signal's rate of change ("a / b": a flow through a volume; "a * b": a setpoint times an enable), docs/detection.md.
    explained_by: list[str] = Field(default_factory=list)

    @field_validator("explained_by")
    @classmethod
    def _explained_by(cls, v: list[str]) -> list[str]:
        for entry in v:
            parts = re.split(r"[/*]", entry)
            if len(parts) > 2 or not all(p.strip() for p in parts):
                raise ValueError(f"{entry!r} must be a tag, a ratio 'a / b' (a flow through a volume) or a product 'a * b' of two tags")
        return v

    @property
    def balance_terms(self) -> list[tuple[str, str | None, str]]:
        """``explained_by`` as ``(tag, None, "")``, ``(a, b, "/")`` or ``(a, b, "*")`` terms."""
        out: list[tuple[str, str | None, str]] = []
        for entry in self.explained_by:
            m = re.fullmatch(r"\s*(.+?)\s*(?:([/*])\s*(.+?)\s*)?", entry)
            assert m is not None  # checked by _explained_by
            out.append((m[1], m[3], m[2] or ""))
        return out

    @field_validator("arx_orders")
    @classmethod
    def _arx_orders(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        na, nb, nk = v
        if not (0 <= na <= 8 and 1 <= nb <= 8 and 1 <= nk <= 64):
            raise ValueError(f"[na, nb, nk] needs 0 <= na <= 8, 1 <= nb <= 8, 1 <= nk <= 64; got {list(v)}")
        return v


class DetectorConfig(Strict):
    """Anomaly detector of an asset (docs/detection.md): ``pca`` (T^2 + Q over its signals, adapting
    to slow normal change) or ``ewma`` / ``cusum`` (per signal, on the twin's innovations).

    Fitted on the first ``train_ticks`` ticks in which every input is Good (a window of normal
    operation), then scored every tick; alarm on above ``on`` (pca: x the control limit; ewma /
    cusum: sigma units), off below ``release`` x ``on``, after ``k`` exceedances within ``window`` ticks.
    """

    kind: Literal["pca", "ewma", "cusum"] = "pca"
    train_ticks: int = Field(400, ge=10, le=100_000)
    on: float | None = Field(None, gt=0)  # default by kind: DETECTOR_ON
    release: float = Field(0.8, gt=0, le=1)
    k: int = Field(1, ge=1, le=64)
    window: int = Field(1, ge=1, le=64)
    smoothing: float = Field(0.2, gt=0, le=1)  # pca: EWMA factor of the score (1 = none); ewma: lambda
    explained: float = Field(0.95, gt=0, le=1)  # variance share of the kept principal components
    alpha: float = Field(0.99, gt=0.5, lt=1)  # confidence of the T^2 and Q control limits
    differences: bool = True  # also monitor each signal's change since the previous tick
    rate_only: list[str] = Field(default_factory=list)  # signals monitored by their change only (slow drifting states)
    # pca: adaptation to slow normal change and the variance floor (kernels.detect_adapt)
    memory: int = Field(1800, ge=0, le=10_000_000)  # ticks: forgetting factor 1 - 1/memory; 0 = the model stays as fitted
    delay: int = Field(60, ge=0, le=100_000)  # ticks between scoring a tick and learning it; an exceedance or alarm empties the buffer
    refit_every: int = Field(10, ge=1, le=100_000)  # learned ticks between refits of the model and its control limits
    floor_fraction: float = Field(0.01, ge=0, le=1)  # variance floor of a level (sd): this fraction of the tag range (else of its mean level)
    peak_release: float = Field(0.1, ge=0, lt=1)  # pca: an alarm ends once its score falls below this fraction of its peak; 0 = off
    cusum_k: float = Field(0.5, ge=0)  # cusum: allowance, sigma units

    @model_validator(mode="after")
    def _k_of_window(self) -> DetectorConfig:
        if self.k > self.window:
            raise ValueError(f"k ({self.k}) must not exceed window ({self.window})")
        return self

    @property
    def threshold(self) -> float:
        """``on``, or the default of this kind."""
        return self.on if self.on is not None else DETECTOR_ON[self.kind]


DETECTOR_ON = {"pca": 1.25, "ewma": 4.0, "cusum": 8.0}  # default alarm thresholds by detector kind


class DiagnosisConfig(Strict):
    """Fault diagnosis from a pattern library (docs/diagnosis.md): ``Assets/<asset>/Diagnosis``."""

    library: Name  # the asset type: patterns live in <state_dir>/patterns/<library>.json
    seed: str | None = None  # pattern file (relative to the config file) the library starts from when it does not exist
    min_similarity: float = Field(0.7, gt=0, lt=1)  # below this the answer is "unknown"
    baseline_s: float = Field(300.0, gt=0, le=86_400)  # normal operation kept as the reference
    lookback_s: float = Field(60.0, ge=0, le=3600)  # an episode starts this long before its alarm


class AssetConfig(Strict):
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
    diagnosis: DiagnosisConfig | None = None  # fault-pattern diagnosis (Assets/<asset>/Diagnosis)
    validation: ValidationConfig | None = None  # [assets.validation]: per-signal sensor validation

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


class GatewayConfig(Strict):
    gateway: GatewaySection = GatewaySection()
    simulator: SimulatorSection = SimulatorSection()
    opcua: OpcUaSection = OpcUaSection()
    history: HistorySection = HistorySection()
    mqtt: MqttSection | None = None  # Sparkplug B / JSON publisher (edge.mqtt)
    devices: list[DeviceConfig] = Field(default_factory=list)
    assets: list[AssetConfig] = Field(default_factory=list)
    metrics: MetricsSection | None = None  # [metrics]: the Prometheus endpoint
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
    def state(self) -> StateDir:
        """The state folder's layout (``gateway.state_dir`` resolved; edge/core/statedir.py)."""
        if self.gateway.state_dir is None:
            return StateDir.default()
        return StateDir(self.resolve_path(Path(self.gateway.state_dir).expanduser()))

    @property
    def state_path(self) -> Path:
        """``gateway.state_dir`` resolved (certificates, PKI, history): ``state.root``."""
        return self.state.root

    def device(self, name: str) -> DeviceConfig:
        return next(d for d in self.devices if d.name == name)
