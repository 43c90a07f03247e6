"""``edgetwin demo``: the built-in plant, the gateway and its OPC UA server from the shipped demo config.

Needs no file of its own: the demo config ships inside the package (``edge/shipped.py``); state
(history) goes to the default state folder or ``--state-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import structlog

from edge import __version__

log = structlog.get_logger("edge.demo")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the built-in demo: simulated plant, gateway and OPC UA server (no files needed)",
        description="Start the simulated plant (a heated tank served over Modbus TCP), the gateway polling it, "
        "the twin and the OPC UA server, from the demo config shipped with edgetwin (security None, anonymous "
        "operator, loopback only). Stop with Ctrl-C or SIGTERM (exit 0).",
    )
    p.add_argument("--endpoint", help="OPC UA endpoint to serve (default opc.tcp://127.0.0.1:4840/edgetwin)")
    p.add_argument("--modbus-port", type=int, help="TCP port of the simulated plant's Modbus server on 127.0.0.1 (default 5020)")
    p.add_argument("--state-dir", type=Path, help="state folder for history and certificates (default: the default state folder, docs/state.md)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default: the demo config's, info)")
    p.add_argument("--print-config", action="store_true", help="print the shipped demo config (TOML) and exit, e.g. to start your own from it")
    p.set_defaults(func=run)


def demo_config(cfg, *, endpoint: str | None = None, modbus_port: int | None = None, state_dir: Path | None = None):
    """The demo config with the command-line overrides: the endpoint, the plant's port (and the
    devices that poll it) and the state folder. Pure; the result is validated like a loaded config."""
    from edge.config import GatewayConfig

    data = cfg.model_dump()
    if endpoint is not None:
        data["gateway"]["endpoint"] = endpoint
    if state_dir is not None:
        data["gateway"]["state_dir"] = str(Path(state_dir).resolve())
    if modbus_port is not None:
        sim = cfg.simulator
        for dev in data["devices"]:
            if dev.get("host") == sim.host and dev.get("port") == sim.port:
                dev["port"] = modbus_port
        data["simulator"]["port"] = modbus_port
    return GatewayConfig.model_validate(data)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from edge.config import ConfigError, parse_config
    from edge.core.logconfig import configure_logging
    from edge.shipped import shipped_file

    path = shipped_file("demo.toml")
    text = path.read_text(encoding="utf-8")
    if args.print_config:
        sys.stdout.write(text)
        return 0
    try:
        cfg = demo_config(parse_config(text, source=str(path)), endpoint=args.endpoint, modbus_port=args.modbus_port, state_dir=args.state_dir)
    except ConfigError as exc:  # a broken installation
        print(exc, file=sys.stderr)
        return 2
    except ValidationError as exc:
        for err in exc.errors():
            print(f"edgetwin demo: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or cfg.gateway.log_level)
    from edge.app import run_gateway

    def ready(gw) -> None:
        print(f"edgetwin {__version__} demo is serving {len(gw.registry)} nodes (state in {cfg.state_path}).", flush=True)
        print(f"Point your OPC UA client at {cfg.gateway.endpoint}", flush=True)

    try:
        asyncio.run(run_gateway(cfg, on_ready=ready))
    except (OSError, ExceptionGroup) as exc:  # a port in use, an unreachable bind address, a crashed task
        for err in exc.exceptions if isinstance(exc, ExceptionGroup) else [exc]:
            log.error("demo_failed", error=str(err), error_type=type(err).__name__)
        return 1
    return 0
