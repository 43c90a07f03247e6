"""The systemd unit rendered for a config, checked line by line, pinned for the shipped file, and
verified by systemd itself (``systemd-analyze verify``); ``edgetwin install-service --dry-run``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.service.install import default_exec_path, install_script
from edge.service.unit import UnitOptions, render_unit, stop_timeout_s, unit_options

ROOT = Path(__file__).resolve().parents[3]

BASE = '[gateway]\nendpoint = "{endpoint}"\nstate_dir = "{state}"\nshutdown_timeout_s = {shutdown}\n'
RTU = """
[[devices]]
name = "{name}"
driver = "modbus_rtu"
port = "{port}"
baud_rate = 19200

  [[devices.tags]]
  name = "t"
  address = "hr:0"
  type = "uint16"
"""


def _cfg(*, endpoint: str = "opc.tcp://0.0.0.0:4840/edgetwin", state: str = "/var/lib/edgetwin", shutdown: float = 5.0, ports: tuple[str, ...] = ()):
    text = BASE.format(endpoint=endpoint, state=state, shutdown=shutdown)
    text += "".join(RTU.format(name=f"bus{i}", port=p) for i, p in enumerate(ports))
    return parse_config(text, "/etc/edgetwin/edgetwin.toml")


def _keys(unit: str) -> list[str]:
    return [line for line in unit.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize(
    ("cfg", "present", "absent"),
    [
        pytest.param(
            {},
            [
                "CapabilityBoundingSet=",
                "AmbientCapabilities=",
                "PrivateDevices=yes",
                "TimeoutStopSec=30s",
                "ExecStart=/opt/edgetwin/bin/edgetwin run /etc/edgetwin/edgetwin.toml",
            ],
            ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "DevicePolicy=closed", "SupplementaryGroups=dialout"],
            id="defaults",
        ),
        pytest.param(
            {"endpoint": "opc.tcp://0.0.0.0:484/edgetwin"},
            ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"],
            ["CapabilityBoundingSet=", "AmbientCapabilities="],
            id="port-below-1024",
        ),
        pytest.param(
            {"endpoint": "opc.tcp://plant-gw/edgetwin"},  # no port: 4840
            ["CapabilityBoundingSet="],
            ["AmbientCapabilities=CAP_NET_BIND_SERVICE"],
            id="default-port",
        ),
        pytest.param(
            {"endpoint": "opc.tcp://0.0.0.0:1024/edgetwin"},
            ["CapabilityBoundingSet="],
            ["AmbientCapabilities=CAP_NET_BIND_SERVICE"],
            id="port-1024",
        ),
        pytest.param(
            {"ports": ("/dev/ttyUSB0", "/dev/serial/by-id/usb-FTDI-if00", "/dev/ttyS1")},
            [
                "DevicePolicy=closed",
                "DeviceAllow=/dev/serial/by-id/usb-FTDI-if00 rw",
                "DeviceAllow=/dev/ttyS1 rw",
                "DeviceAllow=/dev/ttyUSB0 rw",
                "SupplementaryGroups=dialout",
            ],
            ["PrivateDevices=yes"],
            id="serial-ports",
        ),
        pytest.param({"state": "/srv/edgetwin/state"}, ["ReadWritePaths=/srv/edgetwin/state"], [], id="state-outside-var-lib"),
        pytest.param({"state": "/var/lib/edgetwin/site1"}, [], ["ReadWritePaths=/var/lib/edgetwin/site1"], id="state-inside-var-lib"),
        pytest.param({"shutdown": 20.0}, ["TimeoutStopSec=75s"], ["TimeoutStopSec=30s"], id="long-shutdown"),
    ],
)
def test_unit_for_config(cfg: dict, present: list[str], absent: list[str]) -> None:
    unit = _keys(render_unit(unit_options(_cfg(**cfg))))
    for line in present:
        assert line in unit, line
    for line in absent:
        assert line not in unit, line
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", "User=edgetwin"):
        assert line in unit
    for line in ("StateDirectory=edgetwin", "ConfigurationDirectory=edgetwin", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes"):
        assert line in unit
    assert "PrivateTmp=yes" in unit and not any(k.startswith("LogsDirectory=") for k in unit)


@pytest.mark.parametrize("shutdown", [0.1, 5.0, 60.0])
def test_stop_timeout_exceeds_the_gateways_worst_case(shutdown: float) -> None:
    assert stop_timeout_s(shutdown) > 3 * shutdown + 10


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"ports": ("COM3",)}, "serial ports must be device paths under /dev/"),
        ({"state": "/home/otto/edgetwin"}, "ProtectHome=yes"),
        ({"state": "/etc/edgetwin/state"}, "inside the config folder /etc/edgetwin"),
        ({"state": "state"}, "inside the config folder /etc/edgetwin"),  # relative to the config's folder
    ],
)
def test_configs_the_unit_cannot_run_are_refused(cfg: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        unit_options(_cfg(**cfg))


def test_shipped_unit_is_the_default_rendering() -> None:
    """config/edgetwin.service is generated: regenerate with
    ``python -c "from edge.service.unit import render_unit; print(render_unit(), end='')" > config/edgetwin.service``."""
    assert (ROOT / "config" / "edgetwin.service").read_text() == render_unit(UnitOptions())


@pytest.mark.parametrize(
    "cfg",
    [{}, {"endpoint": "opc.tcp://0.0.0.0:484/edgetwin"}, {"ports": ("/dev/ttyUSB0", "/dev/ttyS0")}, {"state": "/srv/edgetwin"}],
    ids=["defaults", "port-484", "serial", "state-elsewhere"],
)
def test_systemd_accepts_the_rendered_unit(cfg: dict, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd'; .ci/run installs it)")
    exec_path = default_exec_path()
    assert Path(exec_path).is_file(), f"no edgetwin script at {exec_path}: install the package into the venv (pip install -e .)"
    unit = tmp_path / "edgetwin.service"
    unit.write_text(render_unit(unit_options(_cfg(**cfg), exec_path=exec_path)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_systemd_rejects_a_broken_unit(tmp_path: Path) -> None:
    """The verify check above can fail: a missing ExecStart binary is reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd'; .ci/run installs it)")
    unit = tmp_path / "edgetwin.service"
    unit.write_text(render_unit(UnitOptions(exec_path=str(tmp_path / "no-such-edgetwin"))))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "no-such-edgetwin" in done.stdout + done.stderr


def test_install_script_lines() -> None:
    script = install_script("[Unit]\nDescription=x\n", user="edgetwin", config_path="/etc/edgetwin/edgetwin.toml", state_dir="/var/lib/edgetwin")
    lines = [line for line in script.splitlines() if not line.startswith("#")]
    assert lines == [
        "set -e",
        "id -u edgetwin >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/edgetwin --no-create-home --shell /usr/sbin/nologin edgetwin",
        "chown -R root:edgetwin /etc/edgetwin",
        "chmod -R u=rwX,g=rX,o= /etc/edgetwin",
        "install -d -m 0750 -o edgetwin -g edgetwin /var/lib/edgetwin",
        "install -d -m 0755 /etc/systemd/system",
        "cat > /etc/systemd/system/edgetwin.service <<'EDGETWIN_UNIT'",
        "[Unit]",
        "Description=x",
        "EDGETWIN_UNIT",
        "chmod 0644 /etc/systemd/system/edgetwin.service",
        "systemctl daemon-reload",
        "systemctl enable --now edgetwin.service",
    ]


def test_install_service_dry_run_prints_the_steps_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    cfg_path = tmp_path / "etc" / "site.toml"
    cfg_path.write_text(
        BASE.format(endpoint="opc.tcp://0.0.0.0:484/edgetwin", state=tmp_path / "state", shutdown=5.0) + RTU.format(name="bus", port="/dev/ttyUSB0")
    )
    unit_dir = tmp_path / "units"
    done = subprocess.run(
        [sys.executable, "-m", "edge", "install-service", "--config", str(cfg_path), "--user", "gw", "--unit-dir", str(unit_dir), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "useradd --system --user-group" in out and out.count(" gw") >= 3
    assert f"install -d -m 0750 -o gw -g gw {tmp_path / 'state'}" in out
    assert out.rstrip().splitlines()[-2:] == ["systemctl daemon-reload", "systemctl enable --now edgetwin.service"]
    unit = out.split("<<'EDGETWIN_UNIT'\n", 1)[1].split("\nEDGETWIN_UNIT\n", 1)[0] + "\n"
    expected = unit_options(parse_config(cfg_path.read_text(), str(cfg_path)), exec_path=default_exec_path(), config_path=str(cfg_path), user="gw")
    assert unit == render_unit(expected)
    assert "User=gw" in unit and "DeviceAllow=/dev/ttyUSB0 rw" in unit and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit
    assert not unit_dir.exists() and not (tmp_path / "state").exists()


def test_install_service_with_a_broken_config_lists_the_errors(tmp_path: Path) -> None:
    cfg_path = tmp_path / "bad.toml"
    cfg_path.write_text('[gateway]\nendpont = "x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "edge", "install-service", "--config", str(cfg_path), "--dry-run"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"{cfg_path}:2: gateway.endpont: unknown key (did you mean 'endpoint'?)"]
