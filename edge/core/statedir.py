"""The gateway's state directory: where it is and what lives in it (docs/state.md).

Every file the gateway writes at run time lives under one folder, ``gateway.state_dir``::

    <state_dir>/pki/own/               server certificate and private key (key mode 0600)
    <state_dir>/pki/trusted/           client certificates (and CAs, CRLs) allowed to connect
    <state_dir>/pki/rejected/          client certificates refused, kept for review
    <state_dir>/pki/issuers/           CA certificates that issue client certificates
    <state_dir>/pki/client/            the gateway's own client certificate for upstream OPC UA servers
                                       and their trust list (drivers/opcua_client/pki.py ClientPki)
    <state_dir>/history.sqlite         the history database (and its -wal / -shm files)
    <state_dir>/twin/                  saved twin state, one file per asset
    <state_dir>/patterns/              fault-pattern libraries, one JSON file per asset type
    <state_dir>/mqtt/                  the MQTT store-and-forward buffer
    <state_dir>/generated/             files the gateway generates for the operator, and asyncua's
                                       standard nodes (edge/opcua/standard_nodes.py)
    <state_dir>/edgetwin.pid           the running gateway's process id

Where the folder is when the config does not say (``default_root``):

1. under systemd, ``$STATE_DIRECTORY`` (set by ``StateDirectory=edgetwin``; the first entry
   when it lists several, colon-separated);
2. ``$XDG_STATE_HOME/edgetwin`` when ``XDG_STATE_HOME`` is set;
3. ``/var/lib/edgetwin`` for root;
4. ``~/.local/state/edgetwin`` otherwise.

An explicit ``state_dir`` wins; a relative one is relative to the config file's folder. Nothing
here touches the disk: the writers create their own subfolders when they first write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP = "edgetwin"
ROOT_STATE_DIR = Path("/var/lib") / APP


def default_root(env: Mapping[str, str] | None = None, *, uid: int | None = None, home: Path | None = None) -> Path:
    """The state folder when the config names none (see the module docstring for the order)."""
    env = os.environ if env is None else env
    systemd = [p for p in env.get("STATE_DIRECTORY", "").split(":") if p]
    if systemd:
        return Path(systemd[0])
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec ignores a relative value
        return Path(xdg) / APP
    if (os.geteuid() if uid is None else uid) == 0:
        return ROOT_STATE_DIR
    return (Path.home() if home is None else home) / ".local" / "state" / APP


@dataclass(frozen=True, slots=True)
class StateDir:
    """The layout of one state folder; a property per location (paths only, nothing is created)."""

    root: Path

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None) -> StateDir:
        return cls(default_root(env))

    @property
    def pki_dir(self) -> Path:
        """The OPC UA server's PKI (``edge.opcua.security.Pki``): own/, trusted/, rejected/, issuers/."""
        return self.root / "pki"

    @property
    def client_pki_dir(self) -> Path:
        """The gateway's OPC UA client PKI for upstream servers (``drivers.opcua_client.pki.ClientPki``)."""
        return self.root / "pki" / "client"

    @property
    def history(self) -> Path:
        """The history database (``[history] path`` overrides it)."""
        return self.root / "history.sqlite"

    @property
    def patterns_dir(self) -> Path:
        """Fault-pattern libraries (``edge.twin.diagnosis.library``), ``<library>.json`` each."""
        return self.root / "patterns"

    @property
    def twin_dir(self) -> Path:
        """Saved twin state, one file per asset."""
        return self.root / "twin"

    @property
    def mqtt_dir(self) -> Path:
        """The MQTT store-and-forward buffer."""
        return self.root / "mqtt"

    @property
    def generated_dir(self) -> Path:
        """Files generated for the operator (rendered units, exports) and the shelf of asyncua's
        standard nodes (``edge.opcua.standard_nodes``)."""
        return self.root / "generated"

    @property
    def pid_file(self) -> Path:
        """The running gateway's process id (for ``edgetwin reload``)."""
        return self.root / f"{APP}.pid"
