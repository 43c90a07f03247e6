"""The northbound OPC UA server: builds the address space from the registry and publishes samples.

Node layout (string NodeIds derived from the browse path, so they are identical across restarts):
``Objects/<gateway>/Devices/<device>/<tag>``, ``Objects/<gateway>/Assets/<asset>/<signal>/<output>``,
``Objects/<gateway>/Diagnostics/...``. Each registry ``TagInfo.path`` becomes one variable.

Every sample is published as a DataValue with its status code and source/server timestamps. The
variant type is always explicit: asyncua silently drops a value whose type does not match the node.
Client writes to writable nodes are handed to ``write_handler`` (which sends them to the device)
and acknowledged with the device's result; the node itself changes only on the next read-back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from asyncua import Server, ua

from drivers.sample import Status, TagSample, TagValue
from edge import units
from edge.registry import TagInfo, TagRegistry

log = structlog.get_logger("edge.opcua_server")

WriteHandler = Callable[[str, TagValue], Awaitable[int]]

VARIANT_TYPES: dict[str, ua.VariantType] = {
    "bool": ua.VariantType.Boolean,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "int64": ua.VariantType.Int64,
    "uint64": ua.VariantType.UInt64,
    "float32": ua.VariantType.Float,
    "float64": ua.VariantType.Double,
    "string": ua.VariantType.String,
}
_ZERO: dict[str, object] = {"bool": False, "string": "", "float32": 0.0, "float64": 0.0} | {
    t: 0 for t in ("int16", "uint16", "int32", "uint32", "int64", "uint64")
}

GROUP_FOLDERS = frozenset({"Devices", "Assets", "Diagnostics"})


def node_id_text(gateway: str, path: Sequence[str]) -> str:
    return "/".join((gateway, *path))


def to_datavalue(sample: TagSample, vtype: ua.VariantType) -> ua.DataValue:
    value = sample.value
    if value is not None and vtype in (ua.VariantType.Float, ua.VariantType.Double):
        value = float(value)
    variant = ua.Variant(value, vtype) if value is not None else ua.Variant(None, ua.VariantType.Null)
    return ua.DataValue(
        Value=variant,
        StatusCode=ua.StatusCode(int(sample.status)),
        SourceTimestamp=sample.source_time,
        ServerTimestamp=sample.server_time,
    )


class OpcUaServer:
    """Serve the registry over OPC UA. Use as ``async with OpcUaServer(...) as server:``."""

    def __init__(
        self,
        registry: TagRegistry,
        *,
        endpoint: str,
        namespace_uri: str,
        gateway_name: str,
        write_handler: WriteHandler | None = None,
    ) -> None:
        self._registry = registry
        self._endpoint = endpoint
        self._namespace_uri = namespace_uri
        self._gateway = gateway_name
        self._write_handler = write_handler
        self._server = Server()
        self._ns = 0
        self._nodes: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}
        self._writable: dict[ua.NodeId, TagInfo] = {}
        self._queue: asyncio.Queue[Sequence[TagSample]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._write_failures: set[str] = set()

    @property
    def namespace_index(self) -> int:
        return self._ns

    def node_id(self, key: str) -> ua.NodeId:
        return self._nodes[key][0]

    async def __aenter__(self) -> OpcUaServer:
        await self._server.init()
        self._server.set_endpoint(self._endpoint)
        self._server.set_server_name(f"edgetwin {self._gateway}")
        self._server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self._ns = await self._server.register_namespace(self._namespace_uri)
        await self._build()
        self._install_write_hook()
        self._unsubscribe = self._registry.subscribe(self._queue.put_nowait)
        await self._server.start()
        self._task = asyncio.create_task(self._publish_loop(), name="opcua:publish")
        log.info("opcua_server_started", endpoint=self._endpoint, namespace=self._namespace_uri, nodes=len(self._nodes))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task() is not None and asyncio.current_task().cancelling():
                    raise
        await self._server.stop()
        log.info("opcua_server_stopped")

    # -- address space -----------------------------------------------------------------------
    async def _build(self) -> None:
        objects = self._server.nodes.objects
        containers: dict[tuple[str, ...], Any] = {}
        root = await objects.add_object(self._nid(()), self._qn(self._gateway))
        containers[()] = root
        for info in self._registry.infos():
            parent = root
            for depth in range(1, len(info.path)):
                prefix = info.path[:depth]
                if prefix not in containers:
                    if depth == 1 and prefix[0] in GROUP_FOLDERS:
                        containers[prefix] = await parent.add_folder(self._nid(prefix), self._qn(prefix[-1]))
                    else:
                        containers[prefix] = await parent.add_object(self._nid(prefix), self._qn(prefix[-1]))
                parent = containers[prefix]
            await self._add_variable(parent, info)

    def _nid(self, path: Sequence[str]) -> ua.NodeId:
        return ua.NodeId(node_id_text(self._gateway, path), self._ns)

    def _qn(self, name: str) -> ua.QualifiedName:
        return ua.QualifiedName(name, self._ns)

    async def _add_variable(self, parent: Any, info: TagInfo) -> None:
        vtype = VARIANT_TYPES[info.data_type]
        nid = self._nid(info.path)
        initial = to_datavalue(self._registry.latest(info.key), vtype)
        var = await parent.add_variable(nid, self._qn(info.path[-1]), ua.Variant(_ZERO[info.data_type], vtype), varianttype=vtype)
        if info.description:
            await var.write_attribute(
                ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(info.description), ua.VariantType.LocalizedText))
            )
        if info.units is not None:
            await var.add_property(
                self._nid((*info.path, "EngineeringUnits")), ua.QualifiedName("EngineeringUnits", 0), _eu_information(info.units)
            )
        if info.low is not None and info.high is not None:
            await var.add_property(
                self._nid((*info.path, "EURange")), ua.QualifiedName("EURange", 0), ua.Range(Low=float(info.low), High=float(info.high))
            )
        if info.writable:
            await var.set_writable(True)
            self._writable[nid] = info
        await self._server.iserver.aspace.write_attribute_value(nid, ua.AttributeIds.Value, initial)
        self._nodes[info.key] = (nid, vtype)

    # -- publishing --------------------------------------------------------------------------
    async def _publish_loop(self) -> None:
        aspace = self._server.iserver.aspace
        while True:
            batch = await self._queue.get()
            for sample in batch:
                nid, vtype = self._nodes[sample.tag]
                result = await aspace.write_attribute_value(nid, ua.AttributeIds.Value, to_datavalue(sample, vtype))
                if not result.is_good() and sample.tag not in self._write_failures:
                    self._write_failures.add(sample.tag)
                    log.error("publish_failed", tag=sample.tag, status=result.name, value=repr(sample.value))

    async def drain(self) -> None:
        """Wait until every sample published so far is visible in the address space (tests, shutdown)."""
        while not self._queue.empty():
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    # -- writes ------------------------------------------------------------------------------
    def _install_write_hook(self) -> None:
        service = self._server.iserver.attribute_service
        original = service.write

        async def write(params: ua.WriteParameters, user: Any = None) -> list[ua.StatusCode]:
            results: list[ua.StatusCode | None] = []
            passthrough = []
            for wv in params.NodesToWrite:
                info = self._writable.get(wv.NodeId)
                if info is None or wv.AttributeId != ua.AttributeIds.Value:
                    results.append(None)
                    passthrough.append(wv)
                else:
                    results.append(ua.StatusCode(await self._client_write(info, wv.Value)))
            if passthrough:
                kwargs = {} if user is None else {"user": user}
                rest = iter(await original(ua.WriteParameters(NodesToWrite=passthrough), **kwargs))
                results = [r if r is not None else next(rest) for r in results]
            return results  # type: ignore[return-value]

        service.write = write

    async def _client_write(self, info: TagInfo, dv: ua.DataValue) -> int:
        value = dv.Value.Value if dv.Value is not None else None
        expected = VARIANT_TYPES[info.data_type]
        if dv.Value is None or dv.Value.VariantType != expected:
            got = dv.Value.VariantType.name if dv.Value is not None else "null"
            log.warning("write_rejected", tag=info.key, reason="type_mismatch", expected=expected.name, got=got)
            return Status.BadTypeMismatch
        if self._write_handler is None:
            return Status.BadNotWritable
        old = self._registry.latest(info.key).value
        try:
            status = int(await self._write_handler(info.key, value))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a driver bug must not take the server down
            log.exception("write_failed", tag=info.key, error=str(exc))
            return Status.BadInternalError
        event = "write_done" if status == Status.Good else "write_rejected"
        log.info(event, tag=info.key, old=old, new=value, status=Status(status).name if status in Status._value2member_map_ else hex(status))
        return status


def _eu_information(text: str) -> ua.EUInformation:
    unit = units.lookup(text)
    if unit is None:
        return ua.EUInformation(
            NamespaceUri=units.UNECE_NAMESPACE, UnitId=-1, DisplayName=ua.LocalizedText(text), Description=ua.LocalizedText(text)
        )
    return ua.EUInformation(
        NamespaceUri=units.UNECE_NAMESPACE,
        UnitId=units.unit_id(unit.code),
        DisplayName=ua.LocalizedText(unit.symbol),
        Description=ua.LocalizedText(unit.description),
    )
