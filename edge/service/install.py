"""``edgetwin install-service``: install the gateway as a systemd service for one config.

The steps are one shell script (``install_script``, pure): create the system user, give it read
access to the config, create the state directory, write the unit rendered for the config
(``edge.service.unit``), ``systemctl daemon-reload`` and ``systemctl enable --now``. ``--dry-run``
prints the script and touches nothing; otherwise the same script runs through ``/bin/sh -e``, so
what is printed is exactly what is done.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

from edge.config import ConfigError, load_config
from edge.service.unit import DEFAULT_CONFIG, DEFAULT_EXEC, DEFAULT_USER, render_unit, unit_options

UNIT_NAME = "edgetwin.service"
DEFAULT_UNIT_DIR = "/etc/systemd/system"


def default_exec_path() -> str:
    """The ``edgetwin`` script of the running installation (the venv's ``bin/edgetwin``)."""
    beside = Path(sys.executable).parent / "edgetwin"
    if beside.is_file():
        return str(beside)
    return shutil.which("edgetwin") or DEFAULT_EXEC


def install_script(unit_text: str, *, user: str, config_path: str, state_dir: str, unit_dir: str = DEFAULT_UNIT_DIR, start: bool = True) -> str:
    """The shell lines that install *unit_text* as ``<unit_dir>/edgetwin.service`` for *user*."""
    q = shlex.quote
    config = PurePosixPath(config_path)
    unit_path = PurePosixPath(unit_dir) / UNIT_NAME
    lines = [
        "set -e",
        "# the system user the gateway runs as (no login, no home of its own)",
        f"id -u {q(user)} >/dev/null 2>&1 || useradd --system --user-group --home-dir {q(state_dir)} --no-create-home --shell /usr/sbin/nologin {q(user)}",
    ]
    if config.parent == PurePosixPath("/etc/edgetwin"):
        lines += [
            "# the config folder (config, CSV tag lists, password files): root-owned, readable by the service's group",
            f"chown -R root:{q(user)} {q(str(config.parent))}",
            f"chmod -R u=rwX,g=rX,o= {q(str(config.parent))}",
        ]
    else:
        lines += [
            "# the config file: root-owned, readable by the service's group",
            f"chown root:{q(user)} {q(str(config))}",
            f"chmod 0640 {q(str(config))}",
        ]
    lines += [
        "# the state directory (certificates, PKI, history): owned by the service",
        f"install -d -m 0750 -o {q(user)} -g {q(user)} {q(state_dir)}",
        "# the unit",
        f"install -d -m 0755 {q(unit_dir)}",
        f"cat > {q(str(unit_path))} <<'EDGETWIN_UNIT'",
        unit_text.rstrip("\n"),
        "EDGETWIN_UNIT",
        f"chmod 0644 {q(str(unit_path))}",
        "systemctl daemon-reload",
    ]
    if start:
        lines.append(f"systemctl enable --now {UNIT_NAME}")
    else:
        lines.append(f"systemctl enable {UNIT_NAME}")
    return "\n".join(lines) + "\n"


def _install_service(args: argparse.Namespace) -> int:
    config_path = str(Path(args.config).absolute())
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        options = unit_options(cfg, exec_path=args.exec_path or default_exec_path(), config_path=config_path, user=args.user)
    except ValueError as exc:
        print(f"edgetwin install-service: {exc}", file=sys.stderr)
        return 2
    script = install_script(
        render_unit(options), user=args.user, config_path=config_path, state_dir=str(cfg.state_path), unit_dir=args.unit_dir, start=not args.no_start
    )
    if args.dry_run:
        sys.stdout.write(script)
        return 0
    if os.geteuid() != 0:
        print("edgetwin install-service: must run as root (or print the steps with --dry-run)", file=sys.stderr)
        return 1
    done = subprocess.run(["/bin/sh", "-e", "-c", script], check=False)
    if done.returncode != 0:
        print(f"edgetwin install-service: a step failed (exit {done.returncode}); see the lines above", file=sys.stderr)
        return 1
    print(f"installed {Path(args.unit_dir) / UNIT_NAME}; follow the log with: journalctl -u edgetwin -f")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-service",
        help="install the gateway as a systemd service (user, directories, unit, enable --now)",
        description="Render the systemd unit for a config and install it: a system user, read access to the config, the "
        "state directory, the unit file, systemctl daemon-reload and enable --now. --dry-run prints the exact shell "
        "lines instead. See docs/service.md.",
    )
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"the config the service runs (default {DEFAULT_CONFIG}); it must exist and be valid")
    p.add_argument("--user", default=DEFAULT_USER, help=f"system user and group the service runs as (default {DEFAULT_USER})")
    p.add_argument("--unit-dir", default=DEFAULT_UNIT_DIR, help=f"where the unit file goes (default {DEFAULT_UNIT_DIR})")
    p.add_argument("--exec", dest="exec_path", help="the edgetwin executable in ExecStart (default: the one of this installation)")
    p.add_argument("--no-start", action="store_true", help="enable the service but do not start it now")
    p.add_argument("--dry-run", action="store_true", help="print the shell lines and change nothing")
    p.set_defaults(func=_install_service)
