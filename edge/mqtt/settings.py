"""The ``[mqtt]`` config section: the broker(s), credentials, the Sparkplug identity, commands,
store-and-forward bounds and the plain JSON mode. Pure (pydantic); no I/O.

Paths (``password_file``, ``ca_file``, ``cert_file``, ``key_file``) are relative to the config
file's folder; they are read when the sink starts.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from drivers.settings import Strict

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def parse_broker(url: str) -> tuple[str, str, int]:
    """``mqtt[s]://host[:port]`` -> (scheme, host, port). ValueError with the reason otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"broker {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"broker {url!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"broker {url!r}: only mqtt[s]://host[:port] is accepted (credentials go in username/password_file)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(f"broker {url!r}: {exc}") from None
    return parts.scheme, parts.hostname, port


class MqttSection(Strict):
    """Publish the registry to an MQTT broker as a Sparkplug B edge node (or as plain JSON)."""

    broker: list[str] = Field(min_length=1)  # mqtt:// or mqtts://; several for failover, tried in order
    client_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    username: str | None = None
    password_file: str | None = None  # first line is the password
    ca_file: str | None = None  # mqtts: the CA that signed the broker's certificate (default: the system's)
    cert_file: str | None = None  # client certificate (PEM), with key_file
    key_file: str | None = None
    mode: Literal["sparkplug", "json"] = "sparkplug"
    sparkplug_group: str = Field("edgetwin", min_length=1, max_length=64)
    sparkplug_node: str = Field(min_length=1, max_length=64)
    primary_host: str | None = Field(None, min_length=1, max_length=64)  # publish only while this host application is ONLINE
    allow_commands: bool = False  # NCMD/DCMD writes to devices
    qos: Literal[0, 1] = 1  # of data messages (births, deaths and STATE use 1 as the specification asks)
    keepalive_s: int = Field(30, ge=5, le=3600)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)  # also the limit of each publish
    reconnect_max_s: float = Field(10.0, ge=0.5, le=300)  # reconnect attempts back off from 0.5 s to this
    publish_interval_s: float = Field(0.2, gt=0, le=60)  # changes are gathered this long into one DATA message
    max_metrics_per_message: int = Field(5000, ge=1, le=100_000)
    # store and forward (in <state_dir>/mqtt/): the oldest is dropped first past either bound
    buffer_max_mb: float = Field(256.0, gt=0, le=1_000_000)
    buffer_max_age_s: float = Field(7 * 86400.0, gt=0)
    # mode = "json": one message per tag ({metric} in the template) or per device (without it);
    # placeholders {node} (sparkplug_node), {device} (device or asset; _gateway for the gateway's own), {metric}
    json_topic: str = "edgetwin/{node}/{device}/{metric}"
    json_retain: bool = False

    @field_validator("broker", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("broker")
    @classmethod
    def _brokers(cls, v: list[str]) -> list[str]:
        for url in v:
            parse_broker(url)
        return v

    @field_validator("sparkplug_group", "sparkplug_node", "primary_host")
    @classmethod
    def _sparkplug_id(cls, v: str | None) -> str | None:
        if v is not None and any(c in v for c in "/+#"):
            raise ValueError(f"{v!r}: a Sparkplug id must not contain '/', '+' or '#'")
        return v

    @field_validator("json_topic")
    @classmethod
    def _json_topic(cls, v: str) -> str:
        if "{device}" not in v:
            raise ValueError("json_topic must contain {device}")
        if "+" in v or "#" in v:
            raise ValueError("json_topic must not contain the wildcards + or #")
        try:
            v.format(node="n", device="d", metric="m")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"json_topic has an unknown placeholder ({exc}); use {{node}}, {{device}}, {{metric}}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MqttSection:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        tls = {parse_broker(u)[0] == "mqtts" for u in self.broker}
        if (self.ca_file or self.cert_file) and tls == {False}:
            raise ValueError("ca_file/cert_file need an mqtts:// broker")
        if self.mode == "json" and self.primary_host is not None:
            raise ValueError("primary_host is a Sparkplug feature; it needs mode = 'sparkplug'")
        return self
