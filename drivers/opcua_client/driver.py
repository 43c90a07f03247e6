"""The OPC UA client driver: one session to one upstream server. The only module that uses it.

Each ``connect`` builds a new client (``client.build_client``) and a new session; ``close`` ends
both. Nothing survives a reconnect except what was logged: namespace indexes, NodeIds of browse
paths and the nodes' DataTypes are looked up again in every session (lazily, with the first read
or subscription), so a restarted server that reorders its namespace array cannot remap a tag.

* ``OpcUaDriver`` (mode "poll") reads its points with the Read service, one request per scan group.
* ``OpcUaSubscriptionDriver`` (mode "subscription", ``drivers.opcua_client.subscription``) creates one subscription per session with one
  monitored item per point (sampling interval, queue size, deadband filter) and pushes each
  notification to the supervisor's sink (``drivers.base.SubscribingDriver``). A lost session is
  noticed by asyncua's connection supervisor, which probes the server state every ``watchdog_s``
  and reports a dropped socket at once, or by a Bad subscription status; ``run_subscription``
  then raises DriverUnavailable.

A point the server cannot serve (unknown namespace URI, unknown node, browse path without match,
a DataType that does not fit the tag's type, a monitored item the server refuses) gets a Bad
sample with the server's status and one log line; the other points carry on. Statuses and source
timestamps pass through unchanged (``drivers.opcua_client.mapping``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from asyncua import ua

from drivers.base import DriverContext, DriverUnavailable, LinkState, ReadResult
from drivers.opcua_client import requests as rq
from drivers.opcua_client.client import GatewayClient, OpcUaClientError, UntrustedServerCertificate, build_client
from drivers.opcua_client.mapping import ValueProblem, to_sample, to_variant
from drivers.opcua_client.pki import ClientPki
from drivers.opcua_client.points import OpcUaPoint
from drivers.opcua_client.settings import OpcUaSettings
from drivers.sample import Status, TagSample, TagValue, utcnow

if TYPE_CHECKING:
    from drivers.opcua_client.subscription import OpcUaSubscriptionDriver

__all__ = ["OpcUaDriver", "OpcUaSubscriptionDriver"]

_READ_CHUNK = 500  # nodes per Read request
_LOGIN_REFUSED = {ua.StatusCodes.BadUserAccessDenied, ua.StatusCodes.BadIdentityTokenRejected, ua.StatusCodes.BadIdentityTokenInvalid}
_Key = tuple[Any, Any, str, bool]  # (node, browse_path, value_type, array): what resolution depends on


@dataclass(slots=True)
class _Node:
    """A point resolved in the current session: its NodeId and write type, or why it is Bad."""

    node_id: ua.NodeId | None
    status: int = Status.Good
    write_type: ua.VariantType = ua.VariantType.Null


class OpcUaDriver:
    """A session to one upstream OPC UA server, polled with the Read service (mode "poll")."""

    kind: ClassVar[str] = "opcua"
    Settings: ClassVar[type[OpcUaSettings]] = OpcUaSettings
    source_timestamps: ClassVar[bool] = True  # upstream SourceTimestamps: an unchanged value keeps its old time

    def __init__(
        self,
        *,
        name: str,
        endpoint: str,
        security_policy: str = "None",
        security_mode: str = "SignAndEncrypt",
        username: str | None = None,
        password_file: Path | None = None,
        pki_dir: Path | None = None,
        server_certificate: Path | None = None,
        trust_on_first_use: bool = False,
        timeout_s: float = 5.0,
        watchdog_s: float = 1.0,
        session_timeout_s: float = 60.0,
        publishing_interval_s: float = 1.0,
        log: Any = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.security_policy = security_policy
        self.security_mode = security_mode
        self.username = username
        self.password_file = password_file
        self.pki_dir = pki_dir
        self.server_certificate = server_certificate
        self.trust_on_first_use = trust_on_first_use
        self.timeout_s = timeout_s
        self.watchdog_s = watchdog_s
        self.session_timeout_s = session_timeout_s
        self.publishing_interval_s = publishing_interval_s
        self._log = (log if log is not None else structlog.get_logger("drivers.opcua_client")).bind(device=name, driver=self.kind)
        self._state = LinkState.DISCONNECTED
        self.requests_sent = 0  # service requests (Read, TranslateBrowsePaths...) sent, for the daemon's counters
        self._client: GatewayClient | None = None
        self._nodes: dict[_Key, _Node] = {}  # resolved in the current session
        self._namespaces: list[str] | None = None
        self._reported: dict[str, int] = {}  # point address -> Bad status already logged
        self._lost: str | None = None  # why the session was lost, once it is
        self._wakeup = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: OpcUaSettings, *, log: Any = None, context: DriverContext | None = None) -> OpcUaDriver:
        """The driver of *settings*: paths relative to ``context.config_dir``, the client PKI in
        ``<context.state_dir>/pki/client`` (a secure policy needs a state_dir)."""
        s, ctx = settings, context or DriverContext()
        base = ctx.config_dir or Path.cwd()
        if s.security_policy != "None" and ctx.state_dir is None:
            raise ValueError(f"device {s.name}: security policy {s.security_policy} needs a state folder for the client certificate")
        from drivers.opcua_client.subscription import OpcUaSubscriptionDriver  # a subclass: imported when used

        target = OpcUaSubscriptionDriver if s.mode == "subscription" else OpcUaDriver
        return target(
            name=s.name,
            endpoint=s.endpoint,
            security_policy=s.security_policy,
            security_mode=s.security_mode,
            username=s.username,
            password_file=base / s.password_file if s.password_file else None,
            pki_dir=ClientPki.under(ctx.state_dir).root if ctx.state_dir is not None else None,
            server_certificate=base / s.server_certificate if s.server_certificate else None,
            trust_on_first_use=s.trust_on_first_use,
            timeout_s=s.timeout_s,
            watchdog_s=s.watchdog_s,
            session_timeout_s=s.session_timeout_s,
            publishing_interval_s=s.publishing_interval_s,
            log=log,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, endpoint={self.endpoint!r})"

    @property
    def state(self) -> LinkState:
        if self._state is LinkState.CONNECTED and self._lost is not None:
            return LinkState.DISCONNECTED
        return self._state

    # -- session -----------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.close()
        self._state = LinkState.CONNECTING
        self._lost = None
        self._wakeup.clear()
        client = self._new_client()
        self._client = client
        try:
            await asyncio.wait_for(client.connect(), self.timeout_s * 3)
        except Exception as exc:  # every way a connect fails ends here, as DriverUnavailable
            await self.close()
            raise DriverUnavailable(self._connect_error(exc)) from exc
        self._state = LinkState.CONNECTED

    def _new_client(self) -> GatewayClient:
        password = None
        if self.password_file is not None:
            try:
                password = self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise DriverUnavailable(f"cannot read password_file {self.password_file}: {exc.strerror}") from None
        try:
            client = build_client(
                self.endpoint,
                security_policy=self.security_policy,
                security_mode=self.security_mode,
                username=self.username,
                password=password,
                pki_dir=self.pki_dir,
                server_certificate=self.server_certificate,
                trust_on_first_use=self.trust_on_first_use,
                timeout_s=self.timeout_s,
                watchdog_s=self.watchdog_s,
                log=self._log,
            )
        except (ValueError, OSError) as exc:
            raise DriverUnavailable(str(exc)) from None
        client.session_timeout = self.session_timeout_s * 1000
        client.connection_lost_callback = self._on_connection_lost
        return client

    def _connect_error(self, exc: BaseException) -> str:
        if isinstance(exc, UntrustedServerCertificate):
            self._report(f"certificate:{exc.thumbprint}", Status.BadCertificateUntrusted, "opcua_server_certificate_untrusted", str(exc))
            return str(exc)
        if isinstance(exc, OpcUaClientError):
            return str(exc)
        if isinstance(exc, ua.UaStatusCodeError):
            name = ua.StatusCode(exc.code).name
            if exc.code in _LOGIN_REFUSED:
                return f"{self.endpoint}: login as {self.username or 'anonymous'} refused ({name})"
            return f"{self.endpoint}: {name}"
        if isinstance(exc, TimeoutError):
            return f"{self.endpoint}: no answer within {self.timeout_s * 3:g} s"
        if isinstance(exc, OSError):
            return f"{self.endpoint}: cannot connect: {exc.strerror or exc}"
        return f"{self.endpoint}: {type(exc).__name__}: {exc}"

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._session_lost(f"session lost: {type(exc).__name__}: {exc}" if str(exc) else f"session lost: {type(exc).__name__}")

    def _session_lost(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._wakeup.set()

    async def close(self) -> None:
        client, self._client = self._client, None
        self._nodes.clear()
        self._namespaces = None
        if client is not None:
            client.connection_lost_callback = None
            # the server may be gone or silent: then the transport is dropped below
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(client.disconnect(), self.timeout_s)
            client.disconnect_socket()
            # asyncua 2.1 leaves the session's publish loop running when the connection was already
            # lost (CloseSession returns early without a protocol); it would retry every second forever
            publish = getattr(client.uaclient.session, "_publish_task", None)
            if publish is not None and not publish.done():
                publish.cancel()
                await asyncio.gather(publish, return_exceptions=True)
        if self._state is not LinkState.CLOSED:
            self._state = LinkState.DISCONNECTED

    def _session(self) -> GatewayClient:
        if self._client is None or self._state is not LinkState.CONNECTED:
            raise DriverUnavailable("not connected")
        if self._lost is not None:
            raise DriverUnavailable(self._lost)
        return self._client

    async def _call(self, request: Any) -> Any:
        """Await one service request; a failure of the whole service means the session is unusable."""
        self.requests_sent += 1
        try:
            return await asyncio.wait_for(request, self.timeout_s)
        except ua.UaStatusCodeError as exc:
            raise DriverUnavailable(f"{self.endpoint}: {ua.StatusCode(exc.code).name}") from exc
        except (TimeoutError, OSError, ConnectionError) as exc:
            raise DriverUnavailable(f"{self.endpoint}: {type(exc).__name__}: {exc}") from exc

    # -- resolution --------------------------------------------------------------------------
    async def _resolve(self, points: Iterable[OpcUaPoint]) -> None:
        """Look up (once per session) the NodeId and DataType of every point not known yet."""
        client = self._session()
        todo = {point_key(p): p for p in points if point_key(p) not in self._nodes}
        if not todo:
            return
        found: dict[_Key, _Node] = {}
        if any(p.node is not None and isinstance(p.node.namespace, str) for p in todo.values()) and self._namespaces is None:
            self._namespaces = list(await self._call(client.get_namespace_array()))
        paths = [(k, p) for k, p in todo.items() if p.browse_path is not None]
        if paths:
            results = await self._call(client.uaclient.translate_browsepaths_to_nodeids([rq.browse_path(p) for _, p in paths]))
            for (k, p), res in zip(paths, results, strict=True):
                found[k] = _Node(*rq.browse_target(res))
                if found[k].node_id is None:
                    self._report(p.address, found[k].status, "opcua_node_unresolved", "browse path has no match")
        for k, p in todo.items():
            if p.node is not None:
                nid = rq.node_id(p.node, self._namespaces or [])
                found[k] = _Node(nid) if nid is not None else _Node(None, Status.BadNodeIdUnknown)
                if nid is None:
                    reason = f"namespace URI {p.node.namespace!r} is not in the server's namespace array"
                    self._report(p.address, Status.BadNodeIdUnknown, "opcua_node_unresolved", reason)
        await self._read_types(client, {k: found[k] for k in todo if found[k].node_id is not None}, todo)
        self._nodes.update(found)

    async def _read_types(self, client: GatewayClient, nodes: dict[_Key, _Node], points: dict[_Key, OpcUaPoint]) -> None:
        """Read DataType and ValueRank of *nodes*; a missing node or a type that cannot fit makes it Bad."""
        keys = list(nodes)
        values = await self._read(client, [rid for k in keys for rid in rq.type_attributes(nodes[k].node_id)])
        for i, k in enumerate(keys):
            p, node = points[k], nodes[k]
            write_type, node.status, reason = rq.check_type(p, values[2 * i], values[2 * i + 1])
            if write_type is None:
                node.node_id = None
                event = "opcua_type_mismatch" if node.status == Status.BadTypeMismatch else "opcua_node_unresolved"
                self._report(p.address, node.status, event, reason)
                continue
            node.write_type = write_type
            self._reported.pop(p.address, None)

    async def _read(self, client: GatewayClient, ids: list[ua.ReadValueId]) -> list[ua.DataValue]:
        out: list[ua.DataValue] = []
        for i in range(0, len(ids), _READ_CHUNK):
            params = ua.ReadParameters(NodesToRead=ids[i : i + _READ_CHUNK], TimestampsToReturn=ua.TimestampsToReturn.Both)
            out += await self._call(client.uaclient.read(params))
        return out

    def _report(self, address: str, status: int, event: str, reason: str) -> None:
        """Log a point's (or the certificate's) problem once, until it changes."""
        if self._reported.get(address) != status:
            self._reported[address] = status
            self._log.warning(event, node=address, status=ua.StatusCode(status).name, reason=reason, endpoint=self.endpoint)

    # -- data --------------------------------------------------------------------------------
    async def read(self, points: Sequence[OpcUaPoint]) -> ReadResult:
        client = self._session()
        await self._resolve(points)
        now = utcnow()
        live = [p for p in points if self._nodes[point_key(p)].node_id is not None]
        ids = [ua.ReadValueId(NodeId=self._nodes[point_key(p)].node_id, AttributeId=ua.AttributeIds.Value) for p in live]
        values = await self._read(client, ids) if ids else []
        received = utcnow()
        samples = [self._sample(p, dv, received) for p, dv in zip(live, values, strict=True)]
        samples += [TagSample(p.name, None, self._nodes[point_key(p)].status, now, now) for p in points if self._nodes[point_key(p)].node_id is None]
        return ReadResult(samples)

    def _sample(self, p: OpcUaPoint, dv: ua.DataValue, received: Any) -> TagSample:
        sample = to_sample(p.name, dv, p.value_type, p.array, received)
        if sample.status in (Status.BadTypeMismatch, Status.BadOutOfRange) and (dv.StatusCode is None or dv.StatusCode.is_good()):
            self._report(p.address, sample.status, "opcua_value_mismatch", f"a {type(dv.Value.Value).__name__} value does not fit {rq.type_text(p)}")
        return sample

    async def write(self, point: OpcUaPoint, value: TagValue) -> int:
        try:
            client = self._session()
            await self._resolve([point])
        except DriverUnavailable:
            return Status.BadNotConnected
        node = self._nodes[point_key(point)]
        if node.node_id is None:
            return node.status
        try:
            variant = to_variant(value, node.write_type, point.array)
        except ValueProblem as exc:
            self._log.warning("opcua_write_refused", node=point.address, status=ua.StatusCode(exc.status).name, reason=str(exc))
            return exc.status
        params = ua.WriteParameters(NodesToWrite=[ua.WriteValue(NodeId=node.node_id, AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(variant))])
        try:
            results = await asyncio.wait_for(client.uaclient.write(params), self.timeout_s)
        except ua.UaStatusCodeError as exc:
            return int(exc.code)
        except TimeoutError:
            return Status.BadTimeout
        except (OSError, ConnectionError):
            return Status.BadNotConnected
        return int(results[0].value)


def point_key(p: OpcUaPoint) -> _Key:
    """What the resolution of *p* in a session depends on."""
    return (p.node, p.browse_path, p.value_type, p.array)


def __getattr__(name: str) -> Any:
    """``OpcUaSubscriptionDriver`` from its own module (it subclasses ``OpcUaDriver``, so it is imported late)."""
    if name == "OpcUaSubscriptionDriver":
        from drivers.opcua_client import subscription

        return subscription.OpcUaSubscriptionDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
