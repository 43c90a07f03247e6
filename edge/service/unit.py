"""The systemd unit of the gateway, rendered for one config (pure: no I/O).

``unit_options(cfg, ...)`` reads what the unit depends on from a config: the OPC UA port (below
1024 needs ``CAP_NET_BIND_SERVICE``), the serial ports of Modbus RTU devices (``DeviceAllow`` and the
``dialout`` group instead of ``PrivateDevices``), the shutdown timeout (``TimeoutStopSec`` above the
gateway's worst case) and state paths outside ``/var/lib/<StateDirectory>`` (``ReadWritePaths``,
since ``ProtectSystem=strict`` makes everything else read-only). ``render_unit(options)`` writes the
unit text. ``config/edgetwin.service`` is ``render_unit(UnitOptions())``; a test pins it.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from edge.config import GatewayConfig

DEFAULT_EXEC = "/opt/edgetwin/bin/edgetwin"
DEFAULT_CONFIG = "/etc/edgetwin/edgetwin.toml"
DEFAULT_USER = "edgetwin"
STATE_DIRECTORY = "edgetwin"  # StateDirectory= -> /var/lib/edgetwin, $STATE_DIRECTORY
CONFIGURATION_DIRECTORY = "edgetwin"  # ConfigurationDirectory= -> /etc/edgetwin, $CONFIGURATION_DIRECTORY
OPCUA_DEFAULT_PORT = 4840
WATCHDOG_S = 30  # the gateway pings every 15 s from its event loop
START_TIMEOUT_S = 300  # building a large address space takes minutes (10,000 tags: about 130 s)


def stop_timeout_s(shutdown_timeout_s: float) -> int:
    """``TimeoutStopSec`` for a gateway whose ``shutdown_timeout_s`` is given: the producers get up to
    three rounds of it (``edge.app._stop_tasks``), then the server closes and history is flushed."""
    return math.ceil(3 * shutdown_timeout_s) + 15


@dataclass(frozen=True)
class UnitOptions:
    """Everything the unit text depends on."""

    exec_path: str = DEFAULT_EXEC
    config_path: str = DEFAULT_CONFIG
    user: str = DEFAULT_USER
    opcua_port: int = OPCUA_DEFAULT_PORT
    serial_ports: tuple[str, ...] = ()
    shutdown_timeout_s: float = 5.0
    read_write_paths: tuple[str, ...] = ()  # state outside /var/lib/edgetwin
    watchdog_s: int = WATCHDOG_S


def endpoint_port(endpoint: str) -> int:
    """The TCP port of an ``opc.tcp://host[:port]/path`` endpoint (4840 when none is given)."""
    port = urlsplit(endpoint).port
    return OPCUA_DEFAULT_PORT if port is None else port


def serial_ports(cfg: GatewayConfig) -> tuple[str, ...]:
    """The serial device of every Modbus RTU device, sorted, once each."""
    return tuple(sorted({dev.port for dev in cfg.devices if dev.driver == "modbus_rtu" and isinstance(dev.port, str)}))


def unit_options(cfg: GatewayConfig, *, exec_path: str = DEFAULT_EXEC, config_path: str = DEFAULT_CONFIG, user: str = DEFAULT_USER) -> UnitOptions:
    """The unit options for running *cfg* (read from *config_path*) as *user*; ValueError when the
    config cannot run under the unit (a serial port that is not a /dev path, state under /home or
    inside the config folder)."""
    ports = serial_ports(cfg)
    bad = [p for p in ports if not p.startswith("/dev/")]
    if bad:
        raise ValueError(f"serial ports must be device paths under /dev/ for DeviceAllow=: {', '.join(bad)}")
    for label, path in (("config", config_path), ("state_dir", str(cfg.state_path))):
        if _under(path, "/home", "/root", "/run/user"):
            raise ValueError(f"{label} {path} is under a home directory, which ProtectHome=yes hides from the service; use /etc/edgetwin and /var/lib/edgetwin")
    config_dir = str(PurePosixPath(config_path).parent)
    if _under(str(cfg.state_path), config_dir):
        raise ValueError(
            f"state_dir {cfg.state_path} is inside the config folder {config_dir}, which the service may only read; "
            f'set gateway.state_dir = "/var/lib/{STATE_DIRECTORY}"'
        )
    writable = [str(cfg.state_path)]
    if cfg.history.path is not None:
        writable.append(str(cfg.resolve_path(cfg.history.path).parent))
    state_root = f"/var/lib/{STATE_DIRECTORY}"
    extra = tuple(sorted({p for p in writable if not _under(p, state_root)}))
    return UnitOptions(
        exec_path=exec_path,
        config_path=config_path,
        user=user,
        opcua_port=endpoint_port(cfg.gateway.endpoint),
        serial_ports=ports,
        shutdown_timeout_s=cfg.gateway.shutdown_timeout_s,
        read_write_paths=extra,
    )


def _under(path: str, *roots: str) -> bool:
    p = PurePosixPath(path)
    return any(p == PurePosixPath(r) or PurePosixPath(r) in p.parents for r in roots)


def render_unit(o: UnitOptions = UnitOptions()) -> str:
    """The unit file text for *o*."""
    privileged_port = o.opcua_port < 1024
    lines = [
        "# edgetwin: OPC UA edge gateway with a digital twin (rendered by `edgetwin install-service`).",
        "# Hardening notes and the install steps: docs/service.md.",
        "[Unit]",
        "Description=edgetwin OPC UA edge gateway",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={shlex.join([o.exec_path, 'run', o.config_path])}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5s",
        f"WatchdogSec={o.watchdog_s}s",
        f"TimeoutStartSec={START_TIMEOUT_S}s",
        f"# above 3 x gateway.shutdown_timeout_s ({o.shutdown_timeout_s:g} s) plus closing the server and flushing history",
        f"TimeoutStopSec={stop_timeout_s(o.shutdown_timeout_s)}s",
        "Environment=PYTHONUNBUFFERED=1",
        "",
        f"User={o.user}",
        f"Group={o.user}",
        f"StateDirectory={STATE_DIRECTORY}",
        "StateDirectoryMode=0750",
        f"ConfigurationDirectory={CONFIGURATION_DIRECTORY}",
        "UMask=0027",
        "",
        "# Capabilities: none, except binding an OPC UA port below 1024",
    ]
    if privileged_port:
        lines += [
            f"# the endpoint's port {o.opcua_port} is below 1024",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        ]
    else:
        lines += ["CapabilityBoundingSet=", "AmbientCapabilities="]
    lines += [
        "NoNewPrivileges=yes",
        "",
        "# File system: read-only except the state directory",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateMounts=yes",
    ]
    lines += [f"ReadWritePaths={p}" for p in o.read_write_paths]
    if o.serial_ports:
        lines += [
            "# Serial ports of Modbus RTU devices: only these devices, through the dialout group",
            "DevicePolicy=closed",
            *(f"DeviceAllow={p} rw" for p in o.serial_ports),
            "SupplementaryGroups=dialout",
        ]
    else:
        lines += ["PrivateDevices=yes"]
    lines += [
        "",
        "# Kernel, processes and system calls",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "# not set: MemoryDenyWriteExecute (libffi closures of ctypes/cffi need writable code pages),",
        "# PrivateUsers (would hide the dialout group and the bind capability), IPAddressDeny (PLCs are anywhere)",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"
