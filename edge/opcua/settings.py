"""From the gateway config to the OPC UA server's security, users and model options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.opcua.model import ModelInfo
from edge.opcua.security import SecuritySettings
from edge.opcua.users import UserDirectory


def state_dir(cfg: Any) -> Path:
    """``gateway.state_dir``; a relative path is relative to the config file's folder."""
    return cfg.state_path


def server_options(cfg: Any) -> dict[str, Any]:
    """Keyword arguments for ``OpcUaServer`` from a validated ``GatewayConfig``."""
    o = cfg.opcua
    security = SecuritySettings(
        policies=tuple(o.security_policies),
        modes=tuple(o.security_modes),
        state_dir=state_dir(cfg),
        application_uri=o.application_uri,
        hostnames=tuple(o.hostnames),
        certificate_days=o.certificate_days,
    )
    users = UserDirectory.from_config(o.users, allow_anonymous=o.allow_anonymous, anonymous_role=o.anonymous_role)
    return {"security": security, "users": users, "model": ModelInfo.from_config(cfg)}
