"""An in-process upstream OPC UA server (asyncua) for the client driver's tests.

It serves ``Boiler`` variables in the namespace ``urn:vendor:plant`` (string NodeIds
``Boiler.<Name>``), can be restarted on the same port with another namespace array, refuses
writes above a limit with BadOutOfRange, and can offer secured endpoints with a login.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from edge.opcua.security import POLICY_TYPES, generate_certificate

PLANT = "urn:vendor:plant"
SERVER_URI = "urn:test:upstream"
VT = ua.VariantType
# name -> (initial value, variant type)
VARIABLES: dict[str, tuple[Any, ua.VariantType]] = {
    "Temperature": (21.5, VT.Double),
    "Setpoint": (50.0, VT.Double),
    "Flag": (True, VT.Boolean),
    "Small": (-5, VT.SByte),
    "Octet": (200, VT.Byte),
    "Int16": (-300, VT.Int16),
    "UInt16": (60000, VT.UInt16),
    "Int32": (-70000, VT.Int32),
    "UInt32": (4000000000, VT.UInt32),
    "Int64": (-(2**40), VT.Int64),
    "UInt64": (2**63 + 5, VT.UInt64),
    "Float": (1.5, VT.Float),
    "Name": ("boiler one", VT.String),
    "When": (datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), VT.DateTime),
    "Blob": (b"\x00\x01\xfe", VT.ByteString),
    "Vector": ([1.0, 2.0, 3.0], VT.Double),
    "Counts": ([1, 2, 3], VT.Int32),
}


@dataclass(frozen=True)
class ServerCert:
    key: Path
    cert: Path


def make_server_cert(folder: Path, name: str = "upstream") -> ServerCert:
    key, cert = folder / f"{name}_key.pem", folder / f"{name}_cert.der"
    generate_certificate(key, cert, common_name=name, application_uri=SERVER_URI, hostnames=["localhost", "127.0.0.1"], days=30)
    return ServerCert(key, cert)


class _Users(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None) -> User | None:
        if username is None:
            return None  # no anonymous login on a server with users
        return User(role=UserRole.User, name=username) if self.users.get(username) == password else None


class Upstream:
    """One upstream server on 127.0.0.1:*port*; ``start`` again after ``stop`` is a server restart."""

    def __init__(
        self,
        port: int,
        *,
        namespaces: Sequence[str] = (PLANT,),
        policies: Sequence[tuple[str, str]] = (),
        cert: ServerCert | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.endpoint = f"opc.tcp://127.0.0.1:{port}"
        self.namespaces = list(namespaces)
        self.policies = list(policies)
        self.cert = cert
        self.users = users
        self.limits: dict[str, float] = {"Setpoint": 100.0}  # writes above are refused (BadOutOfRange)
        self.writes: list[tuple[str, Any]] = []
        self.server: Server | None = None
        self.ns = 0
        self.ids: dict[str, ua.NodeId] = {}

    async def start(self, namespaces: Sequence[str] | None = None) -> None:
        if namespaces is not None:
            self.namespaces = list(namespaces)
        server = Server(user_manager=_Users(self.users) if self.users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("upstream test server")
        await server.set_application_uri(SERVER_URI)
        if self.policies:
            server.set_security_policy([POLICY_TYPES[p] for p in self.policies])
            assert self.cert is not None
            await server.load_certificate(str(self.cert.cert))
            await server.load_private_key(str(self.cert.key))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.UserNameIdentityToken] if self.users else [ua.AnonymousIdentityToken])
        for uri in self.namespaces:
            idx = await server.register_namespace(uri)
            if uri == PLANT:
                self.ns = idx
        boiler = await server.nodes.objects.add_object(ua.NodeId("Boiler", self.ns), ua.QualifiedName("Boiler", self.ns))
        self.ids = {}
        for name, (value, vtype) in VARIABLES.items():
            nid = ua.NodeId(f"Boiler.{name}", self.ns)
            var = await boiler.add_variable(nid, ua.QualifiedName(name, self.ns), ua.Variant(value, vtype), varianttype=vtype)
            await var.set_writable()
            self.ids[name] = nid
        level = await boiler.add_variable(ua.NodeId("Boiler.Level", self.ns), ua.QualifiedName("Level", self.ns), 0.0)
        self.ids["Level"] = level.nodeid
        self._refuse_writes(server)
        await server.start()
        self.server = server

    def _refuse_writes(self, server: Server) -> None:
        service = server.iserver.attribute_service
        original = service.write
        by_id = {nid: name for name, nid in self.ids.items()}

        async def write(params: ua.WriteParameters, user: Any = None) -> list[ua.StatusCode]:
            out: list[ua.StatusCode] = []
            for wv in params.NodesToWrite:
                name = by_id.get(wv.NodeId)
                value = wv.Value.Value.Value if wv.Value is not None and wv.Value.Value is not None else None
                if name is not None and wv.AttributeId == ua.AttributeIds.Value:
                    self.writes.append((name, value))
                limit = self.limits.get(name) if name else None
                if limit is not None and isinstance(value, int | float) and value > limit:
                    out.append(ua.StatusCode(ua.StatusCodes.BadOutOfRange))
                    continue
                out += await original(ua.WriteParameters(NodesToWrite=[wv]), **({} if user is None else {"user": user}))
            return out

        service.write = write

    async def reset(self) -> None:
        """Every variable back to its initial value (Good); no write refusals recorded."""
        self.writes.clear()
        for name, (value, _) in VARIABLES.items():
            await self.set(name, value)

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()
            # asyncua's server keeps the sessions of clients still connected (their timeout and
            # subscription loops) after stop; a real restart loses them
            for session in list(server.iserver._external_sessions.values()):
                await session.close_session(delete_subs=True)

    async def restart(self, namespaces: Sequence[str] | None = None) -> None:
        await self.stop()
        await self.start(namespaces)

    async def set(self, name: str, value: Any = None, *, status: int = 0, source_time: datetime | None = None) -> None:
        """Change a variable, as the upstream device would (a Bad status carries no value)."""
        assert self.server is not None
        vtype = VARIABLES.get(name, (None, VT.Double))[1]
        variant = ua.Variant(value, vtype) if value is not None and not status & 0x80000000 else ua.Variant()
        dv = ua.DataValue(Value=variant, StatusCode=ua.StatusCode(status), SourceTimestamp=source_time or datetime.now(UTC))
        await self.server.write_attribute_value(self.ids[name], dv)

    async def get(self, name: str) -> Any:
        assert self.server is not None
        return await self.server.get_node(self.ids[name]).read_value()

    def filters(self) -> list[Any]:
        """The DataChangeFilter of every monitored item the server holds now."""
        assert self.server is not None
        out = []
        for sub in self.server.iserver.subscription_service.subscriptions.values():
            out += [m.filter for m in sub.monitored_item_srv._monitored_items.values()]
        return out

    def subscriptions(self) -> int:
        """Subscriptions the server holds now (of every session)."""
        assert self.server is not None
        return len(self.server.iserver.subscription_service.subscriptions)

    def sessions(self) -> int:
        assert self.server is not None
        return len(self.server.iserver._external_sessions)
