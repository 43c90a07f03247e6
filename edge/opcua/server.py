"""The northbound OPC UA server: builds the address space from the registry and publishes samples.

The information model (object types, node layout, attributes) is in ``edge/opcua/model.py``;
logins and per-session rights in ``edge/opcua/auth.py``; client writes in ``edge/opcua/writes.py``;
certificates and the client PKI in ``edge/opcua/security.py``; users and roles in ``edge/opcua/users.py``.

Every sample is published as a DataValue with its status code and source/server timestamps. The
variant type is always explicit: asyncua silently drops a value whose type does not match the node.
Client writes to writable nodes are validated, handed to ``write_handler`` (which sends them to
the device) and acknowledged with the device's result; the node itself changes only on the next
read-back.

Extending the server (history, alarms, methods): pass ``extensions=[...]`` (each with
``attach(server)``/``detach()``, see ``ServerExtension``); ``attach`` runs after the tag tree and
types exist and before the endpoint opens. Extensions reach the asyncua server (``ua_server``),
NodeIds (``node_id(key)``, ``path_node_id(path)``, ``type_node_id(name)``), the registry (for
samples: ``registry.subscribe``), method roles (``require_role``) and ``start_task`` for a loop of
their own.

Tasks: the publish loop (``run``, task ``opcua:publish``) and every extension's loop run
supervised (``edge.core.tasks``): a crash is logged at once and the loop restarts. They belong to
the TaskGroup passed as ``tasks`` (the gateway's); without one (tests, embedding) the server owns
them and ends them on exit. A sample the address space cannot take (a string for a Double, an
integer out of range) is logged once per tag (``publish_failed``) and its node shows a Bad status
with a null value until a good sample arrives; the other tags are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import structlog
from asyncua import Server, ua

from drivers.sample import Status, TagSample, TagValue, utcnow
from edge.core.names import gateway_diag_key, gateway_diag_path, node_id_text
from edge.core.registry import TagInfo, TagRegistry
from edge.core.tasks import cancel_and_wait, start_supervised
from edge.opcua import asyncua_patches, capabilities, sampling
from edge.opcua.auth import OpcUaUserManager, SessionHooks
from edge.opcua.logins import LoginSettings
from edge.opcua.model import GROUP_FOLDERS, VARIANT_TYPES, ModelBuilder, ModelInfo, eu_information, to_datavalue
from edge.opcua.operation_limits import OperationLimits
from edge.opcua.peer_logs import ASYNCUA_LOG_FILTER
from edge.opcua.publish import NodeWriter
from edge.opcua.revocation import TrustWatcher
from edge.opcua.secure_setup import setup_security
from edge.opcua.security import Pki, SecuritySettings
from edge.opcua.server_diagnostics import SummaryWriter, keep_counters
from edge.opcua.standard_nodes import use_shelf as use_standard_nodes_shelf
from edge.opcua.stats import SERVER_DIAGNOSTICS, SubscriptionStats
from edge.opcua.transport import ConnectionGuard, GuardedProtocol, TransportSettings, set_guard
from edge.opcua.users import Role, UserDirectory
from edge.opcua.writes import WriteGate, WriteHandler

__all__ = [
    "GROUP_FOLDERS",
    "VARIANT_TYPES",
    "OpcUaServer",
    "ServerExtension",
    "WriteHandler",
    "eu_information",
    "node_id_text",
    "to_datavalue",
]

log = structlog.get_logger("edge.opcua.server")

SESSIONS_KEY = gateway_diag_key("Sessions")
WRITE_DRAIN_TIMEOUT_S = 1.0  # the longest a Good write answer waits for its value to reach the node


class ServerExtension(Protocol):
    """A part of the server built beside the tag tree (history, alarms, methods).

    ``attach`` runs after the tag nodes exist and before the endpoint opens; ``detach`` runs in
    reverse order before it closes.
    """

    async def attach(self, server: OpcUaServer) -> None: ...

    async def detach(self) -> None: ...


class OpcUaServer:
    """Serve the registry over OPC UA. Use as ``async with OpcUaServer(...) as server:``.

    Without ``security`` the server offers only the None policy; without ``users`` it accepts
    anonymous logins with every right. Both defaults are for tests and loopback embedding: the
    daemon always passes the config's settings (``edge.app``) and its TaskGroup (``tasks``).
    """

    def __init__(
        self,
        registry: TagRegistry,
        *,
        endpoint: str,
        namespace_uri: str,
        gateway_name: str,
        write_handler: WriteHandler | None = None,
        extensions: Sequence[ServerExtension] = (),
        security: SecuritySettings | None = None,
        users: UserDirectory | None = None,
        model: ModelInfo | None = None,
        tasks: asyncio.TaskGroup | None = None,
        transport: TransportSettings | None = None,
        operation_limits: OperationLimits | None = None,
        logins: LoginSettings | None = None,
        standard_nodes: Path | None = None,
    ) -> None:
        self._registry = registry
        self._transport = transport or TransportSettings()
        self._operation_limits = operation_limits or OperationLimits()
        self.guard = ConnectionGuard(self._transport)
        self.trust_watcher: TrustWatcher | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._tasks = tasks
        self._extensions = list(extensions)
        self._endpoint = endpoint
        self._namespace_uri = namespace_uri
        self._gateway = gateway_name
        self._write_handler = write_handler
        self._security = security or SecuritySettings()
        self._users = users or UserDirectory(anonymous_role=Role.ADMIN)
        self._model = model or ModelInfo()
        self._standard_nodes = standard_nodes  # the shelf of asyncua's standard nodes (edge.opcua.standard_nodes); None: in memory
        self.user_manager = OpcUaUserManager(self._users, logins)
        self._server = Server(user_manager=self.user_manager)
        self._ns = 0
        self._builder: ModelBuilder | None = None
        self._nodes: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}
        self._targets: dict[str, list[tuple[ua.NodeId, ua.VariantType]]] = {}
        self._required_roles: dict[ua.NodeId, Role] = {}
        self._queue: asyncio.Queue[Sequence[TagSample]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._writer: NodeWriter | None = None  # the publish loop's writes (edge.opcua.publish), once the model is built
        self.sessions: SessionHooks | None = None
        self.subscriptions: SubscriptionStats | None = None
        self.summary: SummaryWriter | None = None
        self._summary_task: asyncio.Task[None] | None = None
        self.pki: Pki | None = None
        self.application_uri = self._security.application_uri or f"urn:{socket.gethostname()}:edgetwin:{gateway_name}"
        if SESSIONS_KEY not in registry:
            registry.add(TagInfo(SESSIONS_KEY, gateway_diag_path("Sessions"), "uint32", description="activated client sessions"))
        for leaf, dtype, description in SERVER_DIAGNOSTICS:
            if gateway_diag_key(leaf) not in registry:
                registry.add(TagInfo(gateway_diag_key(leaf), gateway_diag_path(leaf), dtype, description=description))

    @property
    def namespace_index(self) -> int:
        return self._ns

    def node_id(self, key: str) -> ua.NodeId:
        return self._nodes[key][0]

    @staticmethod
    def freeze_heap() -> None:
        """Move every object alive now (asyncua's standard address space and the gateway's model)
        out of the garbage collector's view: a full collection then scans only newer objects. A
        full collection over the address space held the event loop for up to 1.8 s on a loaded
        2-core machine during large Reads. The daemon calls this once, when it is ready."""
        gc.freeze()

    # -- for extensions (history, alarms, methods): see ServerExtension ------------------------
    @property
    def ua_server(self) -> Server:
        return self._server

    @property
    def registry(self) -> TagRegistry:
        return self._registry

    def path_node_id(self, path: Sequence[str]) -> ua.NodeId:
        """The NodeId of the object or variable at *path* below the gateway object."""
        return ua.NodeId(node_id_text(self._gateway, path), self._ns)

    def type_node_id(self, name: str) -> ua.NodeId:
        """The NodeId of one of the model's object types ("AssetType", "TwinSignalType", "DeviceType")."""
        assert self._builder is not None, "the address space is built in __aenter__"
        return self._builder.types[name]

    def start_task(self, loop: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
        """Run *loop* (an extension's own loop) supervised as the task *name*, owned by the
        server's TaskGroup if it has one; otherwise the extension ends it in ``detach``."""
        return start_supervised(loop, name=name, tasks=self._tasks)

    def require_role(self, method_id: ua.NodeId, role: Role) -> None:
        """Refuse calls of *method_id* from sessions below *role* (BadUserAccessDenied) and report
        UserExecutable = false to them. Handlers can ask ``edge.opcua.users.current_role()`` too."""
        self._required_roles[method_id] = role

    # -- changes while running (config reload: edge.reload) ------------------------------------
    @property
    def extensions(self) -> list[ServerExtension]:
        return list(self._extensions)

    async def add_extension(self, ext: ServerExtension) -> None:
        """Attach *ext* to the running server (a reload that adds the first alarm or method); it
        is detached with the others on exit."""
        await ext.attach(self)
        self._extensions.append(ext)

    def set_model_info(self, model: ModelInfo) -> None:
        """Descriptions and forecast horizons for the nodes added from now on."""
        self._model = model
        if self._builder is not None:
            self._builder.info = model

    async def add_tags(self, infos: Sequence[TagInfo]) -> None:
        """Create the nodes of *infos* (already in the registry) in the running address space, with
        the NodeIds the builder gives them at start, and show their latest samples."""
        assert self._builder is not None, "the address space is built in __aenter__"
        await self._builder.add_infos(infos)
        log.info("opcua_nodes_added", tags=len(infos))

    async def describe_tags(self, infos: Sequence[TagInfo]) -> None:
        """Write the Description of the nodes of *infos* (keys whose only change is their
        description keep their nodes, values and monitored items)."""
        for info in infos:
            text = ua.LocalizedText(info.description or f"{info.path[-1]} of {'/'.join(info.path[:-1])}")
            for nid, _ in self._targets.get(info.key, ()):
                await self._server.get_node(nid).write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(text, ua.VariantType.LocalizedText)))

    async def remove_tags(self, keys: Sequence[str]) -> None:
        """Delete the nodes of *keys* (a client monitoring one gets BadNodeIdUnknown from asyncua).
        Call ``prune`` once the registry has forgotten them, to delete the objects left empty."""
        assert self._builder is not None, "the address space is built in __aenter__"
        await self._builder.remove_keys(keys)
        if self._writer is not None:
            self._writer.forget(keys)
        log.info("opcua_nodes_removed", tags=len(keys))

    async def prune(self) -> None:
        """Delete the objects (devices, assets, signals) that no longer hold a registry variable."""
        assert self._builder is not None, "the address space is built in __aenter__"
        removed = await self._builder.prune()
        if removed:
            log.info("opcua_objects_removed", paths=["/".join(p) for p in removed])

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> OpcUaServer:
        if self._standard_nodes is not None:
            use_standard_nodes_shelf(self._server, self._standard_nodes)
        await self._server.init()
        self._server.set_endpoint(self._endpoint)
        self._server.set_server_name(f"edgetwin {self._gateway}")
        await self._server.set_application_uri(self.application_uri)
        await capabilities.set_build_info(self._server)
        await self._harden()
        await self._setup_security()
        self._ns = await self._server.register_namespace(self._namespace_uri)
        self._builder = ModelBuilder(self._server, self._ns, self._gateway, self._registry, self._model)
        await self._builder.build_types()
        await self._builder.build_instances()
        self._nodes = self._builder.nodes
        self._targets = self._builder.targets
        self._writer = NodeWriter(self._server.iserver.aspace, self._builder.targets, self._builder.value_texts)
        # the gate holds the builder's maps, so nodes added or deleted later (a reload) are covered at once
        gate = WriteGate(
            self._registry,
            self._write_through if self._write_handler is not None else None,
            writable=self._builder.writable,
            variables=self._builder.variables,
        )
        gate.install(self._server.iserver.attribute_service)
        self.sessions = SessionHooks(
            self._server.iserver,
            on_sessions=self._publish_sessions,
            required_roles=self._required_roles,
            write_role=Role.OPERATOR,
            limits=self._operation_limits,
        )
        self.subscriptions = SubscriptionStats(self._server.iserver)
        self.summary = SummaryWriter(self._server, keep_counters(self._server.iserver), self.sessions, self.subscriptions)
        for ext in self._extensions:
            await ext.attach(self)
        # the standard Server object's capabilities, true to this server (edge.opcua.capabilities)
        history_values = next((e.max_page for e in self._extensions if hasattr(e, "recorder") and hasattr(e, "max_page")), None)
        rates = (i.sampling_interval_s for i in self._registry.infos())
        caps = capabilities.server_capabilities(
            history_values=history_values, min_sample_ms=capabilities.min_sample_rate_ms(rates), queue_cap=capabilities.subscription_queue_cap()
        )
        await capabilities.publish(self._server, caps)
        self._unsubscribe = self._registry.subscribe(self._queue.put_nowait)
        self._publish_sessions(0)
        asyncua_patches.quiet_start_errors()  # a busy port is reported once, by the caller
        # monitored items honour sampling interval, queue size and deadbands (edge.opcua.sampling)
        asyncua_patches.install_monitored_item_policy()
        asyncua_patches.check_fast_path()  # the publish loop's fast path (edge.opcua.fastpath, edge.opcua.wire)
        sampling.enable(self._server.iserver.aspace)
        await self._server.start()
        self._task = self.start_task(self.run, "opcua:publish")
        self._summary_task = self.start_task(self.summary.run, "opcua:diagnostics_summary")
        if self.trust_watcher is not None:
            self._watch_task = self.start_task(self.trust_watcher.run, "opcua:trust_watch")
        log.info(
            "opcua_server_started",
            endpoint=self._endpoint,
            namespace=self._namespace_uri,
            nodes=len(self._nodes),
            policies=list(self._security.policies),
            modes=list(self._security.modes) if self._security.secure else [],
            anonymous=self._users.anonymous_role.label if self._users.anonymous_role else "off",
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        try:
            await cancel_and_wait(self._watch_task)
            await cancel_and_wait(self._task)
            await cancel_and_wait(self._summary_task)
        finally:
            try:
                for ext in reversed(self._extensions):
                    await ext.detach()
            finally:
                await self._server.stop()
                log.info("opcua_server_stopped")

    async def _setup_security(self) -> None:
        """Security policies, identity tokens and, on a secure endpoint, the certificate, the
        client-certificate validator and its trust watcher (``edge.opcua.secure_setup``)."""
        self.pki, self.trust_watcher = await setup_security(self._server, self._security, self._endpoint, self._gateway, self.application_uri)

    async def _harden(self) -> None:
        """Connection caps, size checks before buffering, operation limits, rate-limited asyncua
        warnings (``edge.opcua.transport``, ``operation_limits``, ``peer_logs``)."""
        set_guard(self._server.iserver, self.guard)
        self._server.limits = self._transport.asyncua_limits()
        asyncua_patches.install_protocol_guard(GuardedProtocol)
        asyncua_patches.rate_limit_asyncua_logs(ASYNCUA_LOG_FILTER)
        await self._operation_limits.advertise(self._server)

    def diagnostics(self) -> list[tuple[str, object]]:
        """``(leaf, value)`` of ``SERVER_DIAGNOSTICS`` now (zeros before the server is built)."""
        stats = self.subscriptions
        values = (stats.subscriptions, stats.monitored_items, stats.notifications_sent) if stats is not None else (0, 0, 0)
        return [(leaf, v) for (leaf, _, _), v in zip(SERVER_DIAGNOSTICS, values, strict=True)]

    def _publish_sessions(self, count: int) -> None:
        now = utcnow()
        self._registry.publish([TagSample(SESSIONS_KEY, count, Status.Good, now, now)])

    # -- publishing --------------------------------------------------------------------------
    async def run(self) -> None:
        """The publish loop: write each batch the registry accepted into the address space."""
        assert self._writer is not None, "the address space is built in __aenter__"
        while True:
            batches, taken = await self._writer.next_batch(self._queue)  # batches waiting behind a busy loop: latest per tag
            try:
                for batch in batches:
                    await self._write_batch(batch)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    async def _write_batch(self, batch: Sequence[TagSample]) -> None:
        assert self._writer is not None, "the address space is built in __aenter__"
        await self._writer.write_batch(batch)

    @property
    def publish_failures(self) -> int:
        """Samples the address space could not take (their nodes were left Bad); ``edge.opcua.publish``."""
        return self._writer.failures if self._writer is not None else 0

    async def _write_through(self, key: str, value: TagValue) -> int:
        """The device write; after a Good one, wait until the value the device runner published
        (write then read) is in the address space, so a client that reads right after its write
        gets the new value."""
        assert self._write_handler is not None
        status = await self._write_handler(key, value)
        if status == Status.Good:
            with contextlib.suppress(TimeoutError):  # never hold a write answer on a stuck publish loop
                async with asyncio.timeout(WRITE_DRAIN_TIMEOUT_S):
                    await self.drain()
        return status

    async def drain(self) -> None:
        """Wait until every batch published so far is in the address space, including the one
        being written right now (tests)."""
        await self._queue.join()
