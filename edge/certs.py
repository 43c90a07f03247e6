"""``edgetwin certs list | trust | remove``: the OPC UA trust lists under the state folder.

By default the server's PKI (``<state_dir>/pki``: the server certificate and the client
certificates that may connect); with ``--upstream`` the gateway's client PKI (``<state_dir>/pki/client``:
the upstream servers the ``opcua`` driver accepts). The state folder is ``--state-dir``, else that
of ``--config``, else that of the installed config (``/etc/edgetwin/edgetwin.toml``) when it
exists, else the default one (docs/state.md). A running gateway picks up every change at the
next connection attempt: no restart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "certs",
        help="list, trust and remove OPC UA certificates in the state folder",
        description="Show and change the OPC UA trust lists in the gateway's state folder: the server certificate, "
        "the client certificates that may connect (trusted) and those refused (rejected). Thumbprints are SHA-1 hex as "
        "OPC UA clients show them (colons allowed, or a unique prefix of 8+ digits). No restart is needed.",
    )
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help="use the state folder of this gateway config (default: /etc/edgetwin/edgetwin.toml if present)")
    where.add_argument("--state-dir", type=Path, help="use this state folder")
    common.add_argument("--upstream", action="store_true", help="the gateway's client PKI (pki/client/: upstream servers it trusts) instead of the server's")
    cmds = p.add_subparsers(dest="certs_command", required=True, metavar="{list,trust,remove}")

    ls = cmds.add_parser(
        "list",
        parents=[common],
        help="show the own certificate and the trusted and rejected ones",
        description="Show the own certificate (subject, SAN URIs, DNS names, IPs, expiry, thumbprint) and every trusted "
        "and rejected certificate (thumbprint, expiry, application URI, subject).",
    )
    ls.add_argument("--json", action="store_true", help="print JSON instead of text (for scripts)")
    ls.set_defaults(func=_list)

    tr = cmds.add_parser(
        "trust",
        parents=[common],
        help="trust a rejected certificate (by thumbprint) or a certificate file",
        description="Move a rejected certificate into the trusted folder, or copy a certificate file (DER or PEM) there as DER.",
    )
    tr.add_argument("certificate", help="SHA-1 thumbprint of a rejected certificate, or the path of a certificate file")
    tr.set_defaults(func=_trust)

    rm = cmds.add_parser(
        "remove",
        parents=[common],
        help="delete a trusted certificate",
        description="Delete a trusted certificate; its holder is refused from its next connection attempt.",
    )
    rm.add_argument("thumbprint", help="SHA-1 thumbprint of a trusted certificate")
    rm.set_defaults(func=_remove)


def state_root(args: argparse.Namespace) -> Path:
    """The state folder the command works on (see the module docstring); ConfigError from a bad config."""
    from edge.config import load_config
    from edge.core.statedir import StateDir
    from edge.shipped import default_config_path

    if args.state_dir is not None:
        return Path(args.state_dir)
    config = args.config
    if config is None and default_config_path().is_file():
        config = default_config_path()
    return load_config(config).state_path if config is not None else StateDir.default().root


def _folders(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """(StateDir, TrustFolders) the command works on, or None after printing why not (a bad config)."""
    from drivers.opcua_client.pki import ClientPki
    from edge.config import ConfigError
    from edge.core.statedir import StateDir
    from edge.opcua.certstore import TrustFolders
    from edge.opcua.security import Pki

    try:
        state = StateDir(state_root(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    if args.upstream:
        return state, TrustFolders.client(ClientPki(state.client_pki_dir))
    return state, TrustFolders.server(Pki(state.pki_dir))


def _as_dict(info: Any) -> dict[str, Any]:
    return {
        "path": str(info.path),
        "subject": info.subject,
        "application_uri": info.application_uri,
        "uris": list(info.uris),
        "dns": list(info.dns),
        "ips": list(info.ips),
        "not_before": info.not_before.isoformat(),
        "not_after": info.not_after.isoformat(),
        "expired": info.expired(),
        "thumbprint": info.thumbprint,
    }


def _expiry(info: Any) -> str:
    days = info.days_left()
    state = "EXPIRED" if info.expired() else f"{days} days left"
    return f"{info.not_after:%Y-%m-%d} ({state})"


def _list(args: argparse.Namespace) -> int:
    from edge.opcua.certstore import read_folder, read_own

    where = _folders(args)
    if where is None:
        return 2
    state, folders = where
    try:
        own = read_own(folders.own)
    except (OSError, ValueError) as exc:
        print(f"edgetwin certs: {folders.own}: not a certificate ({exc})", file=sys.stderr)
        return 1
    trusted, bad_trusted = read_folder(folders.trusted)
    rejected, bad_rejected = read_folder(folders.rejected)
    who = "gateway client (upstream)" if args.upstream else "server"
    if args.json:
        out = {
            "state_dir": str(state.root),
            "own": _as_dict(own) if own else None,
            "trusted": [_as_dict(i) for i in trusted],
            "rejected": [_as_dict(i) for i in rejected],
            "unreadable": bad_trusted + bad_rejected,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"state folder  {state.root}")
    if own is None:
        print(f"{who} certificate: none yet at {folders.own} (made on the first start with a secure policy)")
    else:
        print(f"{who} certificate  {own.path}")
        print(f"  subject      {own.subject}")
        print(f"  uri          {', '.join(own.uris) or '-'}")
        print(f"  dns          {', '.join(own.dns) or '-'}")
        print(f"  ip           {', '.join(own.ips) or '-'}")
        print(f"  not after    {_expiry(own)}")
        print(f"  thumbprint   {own.thumbprint}")
    peers = "upstream server" if args.upstream else "client"
    for title, infos, folder in (("trusted", trusted, folders.trusted), ("rejected", rejected, folders.rejected)):
        print(f"{title} {peers} certificates ({len(infos)})  {folder}")
        for i in infos:
            print(f"  {i.thumbprint}  {_expiry(i)}  {i.application_uri or '-'}  {i.subject}")
    for line in bad_trusted + bad_rejected:
        print(f"  unreadable: {line}")
    return 0


def _trust(args: argparse.Namespace) -> int:
    from edge.opcua.certstore import CertStoreError, trust

    where = _folders(args)
    if where is None:
        return 2
    try:
        info, how = trust(where[1], args.certificate)
    except (CertStoreError, OSError) as exc:
        print(f"edgetwin certs trust: {exc}", file=sys.stderr)
        return 1
    print(f"trusted {info.thumbprint} {info.subject} ({info.application_uri or '-'}): {how} -> {info.path}")
    if info.expired():
        print(f"warning: this certificate expired on {info.not_after:%Y-%m-%d}; connections with it are still refused", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from edge.opcua.certstore import CertStoreError, remove

    where = _folders(args)
    if where is None:
        return 2
    try:
        info = remove(where[1], args.thumbprint)
    except (CertStoreError, OSError) as exc:
        print(f"edgetwin certs remove: {exc}", file=sys.stderr)
        return 1
    print(f"removed {info.thumbprint} {info.subject} ({info.application_uri or '-'}) from {info.path.parent}")
    return 0
