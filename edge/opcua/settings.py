"""From the gateway config to the OPC UA server's security, users and model options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.core.statedir import StateDir
from edge.opcua.logins import LoginSettings
from edge.opcua.model import ModelInfo
from edge.opcua.operation_limits import OperationLimits
from edge.opcua.security import SecuritySettings
from edge.opcua.standard_nodes import shelf_for
from edge.opcua.transport import TransportSettings
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
        max_rejected=o.limits.max_rejected_certificates,
    )
    users = UserDirectory.from_config(o.users, allow_anonymous=o.allow_anonymous, anonymous_role=o.anonymous_role)
    return {
        "security": security,
        "users": users,
        "model": ModelInfo.from_config(cfg),
        "standard_nodes": shelf_for(StateDir(state_dir(cfg)).generated_dir),  # asyncua's standard nodes, loaded lazily
        **limit_options(o.limits),
    }


def limit_options(lim: Any) -> dict[str, Any]:
    """``OpcUaServer`` keyword arguments from ``[opcua.limits]`` (``OpcUaLimitsSection``)."""
    return {
        "transport": TransportSettings(
            max_connections=lim.max_connections,
            max_connections_per_address=lim.max_connections_per_address,
            handshake_timeout_s=lim.handshake_timeout_s,
            max_chunk_bytes=lim.max_chunk_bytes,
            max_message_bytes=lim.max_message_bytes,
            max_session_timeout_s=lim.max_session_timeout_s,
        ),
        "operation_limits": OperationLimits(
            max_nodes_per_read=lim.max_nodes_per_read,
            max_nodes_per_write=lim.max_nodes_per_write,
            max_nodes_per_browse=lim.max_nodes_per_browse,
            max_nodes_per_history_read=lim.max_nodes_per_history_read,
        ),
        "logins": LoginSettings(initial_s=lim.login_backoff_s, max_user_s=lim.login_backoff_max_user_s, max_address_s=lim.login_backoff_max_address_s),
    }
