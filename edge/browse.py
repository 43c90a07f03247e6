"""``edgetwin browse``: list an upstream OPC UA server's variables as ready-to-paste tag entries.

The walk and the formatting are in ``drivers.opcua_client.browse``; this is the command line: the
connection options match the ``[[devices]]`` keys of ``driver = "opcua"``, and the client
certificate lives where the gateway keeps it (``<state-dir>/pki/client``), so a server that
trusts the gateway trusts the browse command too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import structlog

log = structlog.get_logger("edge.browse")

POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "browse",
        help="print an upstream OPC UA server's variables as [[devices.tags]] entries (or CSV)",
        description="Walk the server's address space below the Objects folder (or --root) and print each "
        'variable as a [[devices.tags]] table for a device with driver = "opcua" (NodeIds with their '
        "namespace URI, the type from the node's DataType), or as CSV rows for tags_csv.",
    )
    p.add_argument("endpoint", help="opc.tcp://host:port/path of the upstream server")
    p.add_argument("--security-policy", default="None", choices=POLICIES, help="security policy of the connection (default None)")
    p.add_argument("--security-mode", default="SignAndEncrypt", choices=["Sign", "SignAndEncrypt"], help="with a secure policy (default SignAndEncrypt)")
    p.add_argument("--user", help="user name (anonymous when absent)")
    p.add_argument("--password-file", type=Path, help="file holding the password (first line)")
    p.add_argument("--server-certificate", type=Path, help="pin this server certificate (DER or PEM)")
    p.add_argument("--trust-on-first-use", action="store_true", help="accept the server's certificate the first time")
    p.add_argument(
        "--state-dir", type=Path, help="state folder whose pki/client/ holds the client certificate (default: the default state folder, docs/state.md)"
    )
    p.add_argument("--root", help='start node instead of the Objects folder, e.g. "nsu=urn:vendor:plant;s=Boiler" or "ns=2;s=Boiler"')
    p.add_argument("--depth", type=int, default=10, help="how deep to walk (default 10)")
    p.add_argument("--csv", action="store_true", help="CSV rows for the tag import instead of TOML")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asyncua import ua

    from drivers.opcua_client.browse import browse_variables, render_csv, render_toml
    from drivers.opcua_client.client import OpcUaClientError, build_client
    from drivers.opcua_client.pki import ClientPki
    from edge.core.statedir import StateDir

    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            print(f"edgetwin browse: cannot read the password from {args.password_file}: {getattr(exc, 'strerror', None) or 'empty file'}", file=sys.stderr)
            return 2
    try:
        client = build_client(
            args.endpoint,
            security_policy=args.security_policy,
            security_mode=args.security_mode,
            username=args.user,
            password=password,
            pki_dir=ClientPki(StateDir(args.state_dir).client_pki_dir if args.state_dir else StateDir.default().client_pki_dir).root,
            server_certificate=args.server_certificate,
            trust_on_first_use=args.trust_on_first_use,
            timeout_s=args.timeout,
            log=log,
        )
    except ValueError as exc:
        print(f"edgetwin browse: {exc}", file=sys.stderr)
        return 2

    async def walk() -> list:
        await client.connect()
        try:
            return await browse_variables(client, root=args.root, max_depth=args.depth)
        finally:
            await client.disconnect()

    try:
        variables = asyncio.run(walk())
    except (OSError, TimeoutError, ValueError, OpcUaClientError, ua.UaError) as exc:
        print(f"edgetwin browse: {args.endpoint}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    sys.stdout.write(render_csv(variables) if args.csv else render_toml(variables))
    print(f"# {len(variables)} variables", file=sys.stderr)
    return 0
