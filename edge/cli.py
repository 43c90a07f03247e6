"""The ``edgetwin`` command: run, check, simulate, hash-password, demo, certs, replay, browse, reload, install-service, schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from edge import __version__
from edge.config import ConfigError, json_schema, load_config
from edge.core.logconfig import configure_logging
from edge.version import VersionAction

log = structlog.get_logger("edge.cli")


def _failed(event: str, exc: BaseException) -> int:
    """Log each underlying error of a failed run as one event line; exit code 1."""
    for err in exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]:
        log.error(event, error=str(err), error_type=type(err).__name__)
    return 1


def _run(args: argparse.Namespace) -> int:
    if args.config is None:  # the installed service's config (edge/shipped.py default_config_path)
        from edge.shipped import default_config_path

        args.config = default_config_path()
        if not args.config.is_file():
            print(f"edgetwin run: no config file at {args.config} (give a path: edgetwin run CONFIG; try edgetwin demo)", file=sys.stderr)
            return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.endpoint:
        cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"endpoint": args.endpoint})})
    configure_logging(args.log_level or cfg.gateway.log_level, levels=cfg.gateway.log_levels)

    from edge.app import run_gateway

    def ready(gw) -> None:
        print(f"edgetwin {__version__} is serving {len(gw.registry)} nodes. Point your OPC UA client at {cfg.gateway.endpoint}", flush=True)

    from edge.reload.cli import config_loader

    try:
        asyncio.run(run_gateway(cfg, on_ready=ready, reload_config=config_loader(args.config, endpoint=args.endpoint)))
    except (OSError, ExceptionGroup) as exc:  # a port in use, an unreachable bind address, a crashed task
        return _failed("gateway_failed", exc)
    return 0


def _check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.config:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed = True
        else:
            tags = sum(len(d.tags) for d in cfg.devices)
            print(f"{path}: ok ({len(cfg.devices)} devices, {tags} tags, {len(cfg.assets)} assets)")
    return 1 if failed else 0


def _simulate(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "info")
    from edge.app import run_simulator
    from edge.config import SimulatorSection

    try:
        sim = SimulatorSection(enabled=True, host=args.host, port=args.port, unit_id=args.unit_id, time_scale=args.time_scale, fault=args.fault, seed=args.seed)
    except ValueError as exc:
        print(f"edgetwin simulate: {exc}", file=sys.stderr)
        return 2

    def ready() -> None:
        print(f"Simulated plant (Modbus TCP) listening on {sim.host}:{sim.port}, unit {sim.unit_id}", flush=True)

    try:
        asyncio.run(run_simulator(sim, on_ready=ready))
    except (OSError, ExceptionGroup) as exc:
        return _failed("simulator_failed", exc)
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    """Print a salted hash for ``[[opcua.users]] password_hash``; the password is read without echo
    on a terminal (asked twice), or as the first line of standard input otherwise."""
    import getpass

    from edge.opcua.users import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            print("passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgetwin", description="OPC UA edge gateway with a digital twin inside")
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run the gateway",
        description="Run the gateway described by CONFIG (and the built-in plant when [simulator] enabled = true) "
        "until SIGINT or SIGTERM. Exit 0 on a clean stop, 1 when it fails, 2 for a config error.",
    )
    run.add_argument(
        "config",
        nargs="?",
        type=Path,
        help="gateway config file (TOML); default $CONFIGURATION_DIRECTORY/edgetwin.toml under systemd, else /etc/edgetwin/edgetwin.toml",
    )
    run.add_argument("--endpoint", help="override gateway.endpoint, e.g. opc.tcp://0.0.0.0:4840/edgetwin")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override gateway.log_level")
    run.set_defaults(func=_run)

    check = sub.add_parser(
        "check",
        help="validate config files without opening any socket",
        description="Validate config files without opening any socket; every problem is printed as file:line: key.path: message. Exit 1 on errors.",
    )
    check.add_argument("config", nargs="+", help="config files (TOML) to check")
    check.set_defaults(func=_check)

    sim = sub.add_parser(
        "simulate",
        help="run the simulated plant (a Modbus TCP server)",
        description="Run only the simulated plant (a heated tank with a pump) as a Modbus TCP server; register map in docs/plant.md.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=5020, help="TCP port (default 5020)")
    sim.add_argument("--unit-id", type=int, default=1, help="Modbus unit id the plant answers (default 1)")
    sim.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per wall-clock second")
    sim.add_argument(
        "--fault",
        default="none",
        choices=["none", "bearing_wear", "sensor_drift", "stuck_sensor", "flow_sensor", "spike"],
        help="fault active from the start (default none)",
    )
    sim.add_argument("--seed", type=int, default=0, help="seed of the measurement noise (default 0)")
    sim.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    sim.set_defaults(func=_simulate)

    hp = sub.add_parser(
        "hash-password",
        help="print a salted password hash for [[opcua.users]] password_hash",
        description="Print a salted scrypt hash for [[opcua.users]] password_hash. The password is read without echo "
        "(asked twice) on a terminal, or as the first line of standard input otherwise.",
    )
    hp.set_defaults(func=_hash_password)

    from edge.demo import add_parser as add_demo_parser

    add_demo_parser(sub)

    from edge.certs import add_parser as add_certs_parser

    add_certs_parser(sub)

    from edge.replay.cli import add_parser as add_replay_parser

    add_replay_parser(sub)

    from edge.browse import add_parser as add_browse_parser

    add_browse_parser(sub)

    from edge.service.install import add_parser as add_install_service_parser

    add_install_service_parser(sub)

    from edge.reload.cli import add_parser as add_reload_parser

    add_reload_parser(sub)

    from edge.twin.diagnosis.cli import add_parser as add_patterns_parser

    add_patterns_parser(sub)

    schema = sub.add_parser(
        "schema", help="print the config JSON Schema", description="Print the JSON Schema of the config file (config/schema.json is generated from it)."
    )
    schema.set_defaults(func=_schema)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
