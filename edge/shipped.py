"""The files that ship with the gateway, and where it looks for its config.

The shipped configs (``config/demo.toml``, ``production.toml``, ``schema.json`` and the systemd
unit ``config/*.service``) are copied into the package as ``edge/data/`` when the wheel is built
(setup.py ``build_py``), so an installed gateway finds them with ``importlib.resources``; in a
source checkout (or an editable install) they are read from the repository's ``config/`` folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

DATA_PACKAGE_DIR = "data"  # edge/data/ in the installed package
SOURCE_CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"  # the repository's config/
CONFIG_NAME = "edgetwin.toml"
ETC_DIR = Path("/etc/edgetwin")


class ShippedFileMissing(FileNotFoundError):
    """A shipped file is neither in the package nor in a source checkout (a broken install)."""


def shipped_file(name: str) -> Path:
    """The path of a shipped file (``demo.toml``, ``production.toml``, ``schema.json``, ...)."""
    packaged = resources.files("edge").joinpath(DATA_PACKAGE_DIR, name)
    if packaged.is_file():
        return Path(str(packaged))  # a wheel installs into a real folder (not zip-safe by design)
    source = SOURCE_CONFIG_DIR / name
    if source.is_file():
        return source
    raise ShippedFileMissing(f"{name} is not in this installation (looked in edge/{DATA_PACKAGE_DIR}/ and {SOURCE_CONFIG_DIR})")


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config ``edgetwin run`` reads without a path: ``$CONFIGURATION_DIRECTORY/edgetwin.toml``
    under systemd (``ConfigurationDirectory=edgetwin``; the first entry of several), else
    ``/etc/edgetwin/edgetwin.toml``."""
    env = os.environ if env is None else env
    dirs = [p for p in env.get("CONFIGURATION_DIRECTORY", "").split(":") if p]
    return (Path(dirs[0]) if dirs else ETC_DIR) / CONFIG_NAME
