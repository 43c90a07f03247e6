"""Settings of an upstream OPC UA server and its tags: the ``[[devices]]`` tables of ``driver = "opcua"``.

Pure (pydantic and ``drivers.opcua_client.points``; no asyncua), so loading a config does not
import the OPC UA stack. Every rule is checked here, at load: the node id syntax, exactly one of
``node`` / ``browse_path`` per tag, deadbands (numeric tags, subscription mode, percent 0..100),
keys that only one mode uses, the login pair. The driver takes these values as they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.opcua_client.points import NUMERIC_TYPES, DeadbandType, OpcUaPoint, TagType, parse_browse_path, parse_node_id
from drivers.settings import DeviceSettings, Name, Strict, TagFiles

SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
SecurityMode = Literal["Sign", "SignAndEncrypt"]
Mode = Literal["subscription", "poll"]

# keys that only mean something in one mode: giving one in the other mode is an error
SUBSCRIPTION_KEYS = ("publishing_interval_s", "sampling_interval_s", "queue_size", "deadband_type", "deadband_value")
POLL_KEYS = ("poll_interval_s",)
HISTORY_TYPES = frozenset({"bool", *NUMERIC_TYPES, "string", "bytes"})  # scalars the history database keeps


class OpcUaTag(Strict):
    name: Name
    node: str | None = None  # NodeId text: ns=<index>;... or nsu=<namespace uri>;...
    browse_path: str | None = None  # alternative to node: /Objects/2:Boiler/2:Temperature
    type: TagType  # the northbound node's data type; required (see docs/opcua_client.md)
    array: bool = False  # a one-dimensional array of type
    writable: bool = False
    low: float | None = None
    high: float | None = None
    units: str | None = None
    description: str = ""
    historize: bool = False
    deadband: float = Field(0.0, ge=0)  # MQTT report by exception: send a change larger than this (0: any change)
    # per-tag overrides of the device's subscription / poll settings
    sampling_interval_s: float | None = Field(None, ge=0, le=3600)
    queue_size: int | None = Field(None, ge=1, le=1000)
    deadband_type: DeadbandType | None = None
    deadband_value: float | None = Field(None, ge=0)
    poll_interval_s: float | None = Field(None, gt=0, le=3600)
    alarm_high: float | None = None
    alarm_low: float | None = None
    alarm_deadband: float = Field(0.0, ge=0)
    alarm_severity: int = Field(500, ge=1, le=1000)

    @field_validator("node")
    @classmethod
    def _node(cls, v: str | None) -> str | None:
        if v is not None:
            parse_node_id(v)
        return v

    @field_validator("browse_path")
    @classmethod
    def _browse_path(cls, v: str | None) -> str | None:
        if v is not None:
            parse_browse_path(v)
        return v

    @model_validator(mode="after")
    def _rules(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of node and browse_path")
        numeric = self.type in NUMERIC_TYPES and not self.array
        if not numeric and (self.alarm_high is not None or self.alarm_low is not None):
            raise ValueError(f"alarm_high/alarm_low need a numeric scalar tag, not {self._type_text()}")
        if self.alarm_high is not None and self.alarm_low is not None and self.alarm_low >= self.alarm_high:
            raise ValueError(f"alarm_low ({self.alarm_low:g}) must be below alarm_high ({self.alarm_high:g})")
        if (self.low is not None or self.high is not None) and self.type not in NUMERIC_TYPES:
            raise ValueError(f"low/high need a numeric tag, not {self._type_text()}")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.historize and (self.array or self.type not in HISTORY_TYPES):
            raise ValueError(f"historize: the history database keeps scalars of bool, number, string and bytes tags, not {self._type_text()}")
        _check_deadband(self.deadband_type, self.deadband_value, self.type if not self.array else "array")
        return self

    def _type_text(self) -> str:
        return f"an array of {self.type}" if self.array else f"type {self.type!r}"


def _check_deadband(kind: str | None, value: float | None, type_: str) -> None:
    if kind in (None, "none"):
        if value:
            raise ValueError("deadband_value needs deadband_type 'absolute' or 'percent'")
        return
    if type_ not in NUMERIC_TYPES:
        raise ValueError(f"a deadband needs a numeric scalar tag, not {type_!r}")
    if kind == "percent" and value is not None and value > 100:
        raise ValueError(f"a percent deadband is 0..100 (% of the node's EURange), got {value:g}")


class OpcUaSettings(DeviceSettings):
    """One upstream OPC UA server (one session)."""

    driver: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://[^/:\s]+(:\d{1,5})?(/\S*)?$")
    security_policy: SecurityPolicy = "None"
    security_mode: SecurityMode = "SignAndEncrypt"  # ignored with security_policy "None"
    server_certificate: str | None = None  # pin this certificate; relative to the config file's folder
    trust_on_first_use: bool = False
    username: str | None = Field(None, min_length=1)
    password_file: str | None = None  # relative to the config file's folder; read at each connect
    mode: Mode = "subscription"
    publishing_interval_s: float = Field(1.0, gt=0, le=3600)
    sampling_interval_s: float = Field(0.5, ge=0, le=3600)
    queue_size: int = Field(1, ge=1, le=1000)
    deadband_type: DeadbandType = "none"  # for the numeric scalar tags; a tag may set its own
    deadband_value: float = Field(0.0, ge=0)
    poll_interval_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float = Field(5.0, gt=0, le=120)
    watchdog_s: float = Field(1.0, gt=0, le=60)  # how often a connected session is checked
    session_timeout_s: float = Field(60.0, ge=10, le=3600)
    stale_after_s: float = Field(30.0, gt=0, le=86400)
    description: str = ""
    tags_csv: str | None = None  # more tags from a CSV file (``edgetwin browse --csv`` writes one); relative to the config file
    tags_from: TagFiles = None  # tag files: .toml ([[tags]] tables) or .csv, relative to the config file
    tags: list[OpcUaTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> OpcUaSettings:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together (leave both out for an anonymous login)")
        if self.security_policy == "None" and (self.server_certificate is not None or self.trust_on_first_use):
            raise ValueError("server_certificate and trust_on_first_use need a security_policy other than 'None'")
        if self.server_certificate is not None and self.trust_on_first_use:
            raise ValueError("give server_certificate or trust_on_first_use, not both")
        port = self.endpoint.split("//", 1)[1].split("/", 1)[0].rpartition(":")[2]
        if port.isdigit() and not 1 <= int(port) <= 65535:
            raise ValueError(f"endpoint port {port} is not 1..65535")
        other = SUBSCRIPTION_KEYS if self.mode == "poll" else POLL_KEYS
        given = [k for k in other if k in self.model_fields_set]
        given += [f"tags[{i}].{k}" for i, t in enumerate(self.tags) for k in other if k in t.model_fields_set]
        if given:
            raise ValueError(f"{', '.join(given)}: not used in mode {self.mode!r}")
        if self.mode == "subscription":
            _check_deadband(self.deadband_type, self.deadband_value, "float64")  # the device's applies to numeric tags only
        return self

    def points(self) -> list[OpcUaPoint]:
        """The validated points of this device, in tag order."""
        return [self._point(t) for t in self.tags]

    def _point(self, t: OpcUaTag) -> OpcUaPoint:
        numeric = t.type in NUMERIC_TYPES and not t.array
        deadband_type = t.deadband_type or (self.deadband_type if numeric else "none")
        deadband_value = t.deadband_value if t.deadband_value is not None else self.deadband_value
        return OpcUaPoint(
            name=t.name,
            value_type=t.type,
            node=parse_node_id(t.node) if t.node is not None else None,
            browse_path=parse_browse_path(t.browse_path) if t.browse_path is not None else None,
            array=t.array,
            writable=t.writable,
            sampling_interval_s=t.sampling_interval_s if t.sampling_interval_s is not None else self.sampling_interval_s,
            queue_size=t.queue_size or self.queue_size,
            deadband_type=deadband_type,
            deadband_value=deadband_value if deadband_type != "none" else 0.0,
        )

    def poll_intervals(self) -> list[float]:
        """Each tag's poll period (its scan group), in tag order (poll mode)."""
        return [t.poll_interval_s or self.poll_interval_s for t in self.tags]
