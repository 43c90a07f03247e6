"""The asyncua patches (edge/opcua/asyncua_patches.py) against the installed asyncua.

These fail loudly when an asyncua upgrade moves, renames or reshapes anything the gateway replaces:
every patch is applied to a real in-process server and seen to take effect on a client's requests,
and every layout the gateway reads is checked. The targets themselves (name, parameters, sync/async
kind, the pinned version) are checked in ``test_asyncua_patch_targets.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, Server, ua
from asyncua.common.connection import TransportLimits
from asyncua.common.utils import Buffer
from asyncua.crypto.truststore import TrustStore
from asyncua.server import binary_server_asyncio
from asyncua.server.address_space import AddressSpace
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import extensionobject_from_binary, extensionobject_to_binary

from edge.opcua import asyncua_patches
from edge.opcua.auth import GuardedUaProcessor, install_channel_guard
from edge.opcua.peer_logs import PeerLogFilter
from edge.opcua.security import _TrustStore
from edge.opcua.stats import SubscriptionStats
from edge.opcua.transport import ConnectionGuard, GuardedProtocol, TransportSettings, set_guard
from tests.edge.opcua.asyncua_owners import OWNERS


async def test_trust_store_patch_lets_an_empty_trusted_folder_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError):  # why the patch exists: asyncua's own load_trust, empty trusted/
        await TrustStore([tmp_path], []).load_trust()
    store = _TrustStore([tmp_path], [])
    await store.load_trust()
    assert store._trust_store is None


async def test_every_patch_takes_effect_on_a_real_server(free_port: int) -> None:
    seen: dict[str, int] = {}

    def counting(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(original):

                async def replacement(*args: Any, **kwargs: Any) -> Any:
                    seen[name] = seen.get(name, 0) + 1
                    return await original(*args, **kwargs)

            else:

                def replacement(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                    seen[name] = seen.get(name, 0) + 1
                    return original(*args, **kwargs)

            return replacement

        return wrap

    def on_create_session(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_session(name: str, user: Any = None, external: bool = False) -> Any:
            session = original(name, **({} if user is None else {"user": user}), external=external)
            if external:
                seen["create_session"] = seen.get("create_session", 0) + 1
                asyncua_patches.wrap_session_methods(session, **{m: counting(m) for m in asyncua_patches.SESSION_METHODS})
            return session

        return create_session

    url = f"opc.tcp://127.0.0.1:{free_port}/patches"
    server = Server()
    await server.init()
    server.set_endpoint(url)
    ns = await server.register_namespace("urn:edgetwin:patches")
    var = await server.nodes.objects.add_variable(ua.NodeId("v", ns), f"{ns}:v", 1.0)
    await var.set_writable()
    await server.historize_node_data_change(var, period=None, count=10)
    iserver = server.iserver
    asyncua_patches.wrap_create_session(iserver, on_create_session)
    asyncua_patches.wrap_attribute_write(iserver.attribute_service, counting("attribute_write"))
    asyncua_patches.wrap_history_read(iserver.history_manager, counting("history_manager_read"))
    install_channel_guard()
    asyncua_patches.install_protocol_guard(GuardedProtocol)
    asyncua_patches.install_protocol_guard(GuardedProtocol)  # idempotent
    guard = ConnectionGuard(TransportSettings(max_connections=5))
    set_guard(iserver, guard)
    gen = await server.get_event_generator(ua.ObjectIds.AlarmConditionType)
    assert any(isinstance(t, ua.NodeId) for t in gen.event.data_types.values()), "asyncua now records variant types itself"
    asyncua_patches.fix_event_data_types(gen.event)
    assert all(isinstance(t, ua.VariantType) for t in gen.event.data_types.values())
    async with server:
        assert binary_server_asyncio.UaProcessor is GuardedUaProcessor
        client = Client(url, timeout=5)
        async with client:
            assert server.bserver is not None
            assert any(isinstance(p.processor, GuardedUaProcessor) for p in server.bserver.clients)
            assert binary_server_asyncio.OPCUAProtocol is GuardedProtocol
            assert [type(p) for p in server.bserver.clients] == [GuardedProtocol] and guard.connections == server.bserver.clients
            assert await client.nodes.objects.get_children()  # Browse
            node = client.get_node(var.nodeid)
            assert await node.read_value() == 1.0
            await node.write_value(2.0)
            await node.read_raw_history()
            with pytest.raises(ua.UaStatusCodeError):
                await client.nodes.server.call_method(ua.NodeId(ua.ObjectIds.Server_GetMonitoredItems), ua.Variant(0, ua.VariantType.UInt32))
        await gen.trigger(message="fields encode after the fix")
    expected = {"create_session", "attribute_write", "history_manager_read", *asyncua_patches.SESSION_METHODS}
    assert expected <= set(seen), f"not reached: {sorted(expected - set(seen))}"


def _ref_view(refs: list[ua.ReferenceDescription]) -> list[tuple]:
    return [(r.ReferenceTypeId, r.IsForward, r.NodeId.Identifier, r.NodeClass, r.BrowseName.Name, r.DisplayName.Text, r.TypeDefinition) for r in refs]


async def test_add_node_builds_what_asyncua_add_nodes_builds() -> None:
    """The constant-time path and asyncua's AddNodes give the same node: every attribute, the
    parent's references to it and its own references; and the same refusals."""
    server = Server()
    await server.init()
    iserver = server.iserver
    ns = await server.register_namespace("urn:test:add-node")
    objects = ua.NodeId(ua.ObjectIds.ObjectsFolder)

    def items(prefix: str, parent: ua.NodeId) -> list[ua.AddNodesItem]:
        folder = ua.AddNodesItem(
            ParentNodeId=parent, ReferenceTypeId=ua.NodeId(ua.ObjectIds.Organizes), RequestedNewNodeId=ua.NodeId(f"{prefix}/F", ns),
            BrowseName=ua.QualifiedName("F", ns), NodeClass=ua.NodeClass.Object, TypeDefinition=ua.NodeId(ua.ObjectIds.FolderType),
            NodeAttributes=ua.ObjectAttributes(DisplayName=ua.LocalizedText("F"), Description=ua.LocalizedText("a folder"), EventNotifier=0),
        )  # fmt: skip
        out = [folder]
        for i in range(3):
            attrs = ua.VariableAttributes(
                DisplayName=ua.LocalizedText(f"v{i}"), Description=ua.LocalizedText("x"), Value=ua.Variant(1.5 * i, ua.VariantType.Double),
                DataType=ua.NodeId(ua.ObjectIds.Double), ValueRank=ua.ValueRank.Scalar, AccessLevel=1, UserAccessLevel=1,
                MinimumSamplingInterval=0.0, Historizing=False, WriteMask=0, UserWriteMask=0,
            )  # fmt: skip
            out.append(
                ua.AddNodesItem(
                    ParentNodeId=folder.RequestedNewNodeId, ReferenceTypeId=ua.NodeId(ua.ObjectIds.HasComponent),
                    RequestedNewNodeId=ua.NodeId(f"{prefix}/F/v{i}", ns), BrowseName=ua.QualifiedName(f"v{i}", ns),
                    NodeClass=ua.NodeClass.Variable, NodeAttributes=attrs, TypeDefinition=ua.NodeId(ua.ObjectIds.BaseDataVariableType),
                )
            )  # fmt: skip
        return out

    for item in items("stock", objects):
        (result,) = await iserver.isession.add_nodes([item])
        result.StatusCode.check()
    for item in items("fast", objects):
        assert asyncua_patches.add_node(iserver, item) == item.RequestedNewNodeId
    aspace = iserver.aspace
    for path in ("F", "F/v0", "F/v1", "F/v2"):
        stock, fast = aspace.get(ua.NodeId(f"stock/{path}", ns)), aspace.get(ua.NodeId(f"fast/{path}", ns))
        for attr in ua.AttributeIds:
            a, b = aspace.read_attribute_value(stock.nodeid, attr), aspace.read_attribute_value(fast.nodeid, attr)
            if attr == ua.AttributeIds.NodeId:
                continue
            assert (a.StatusCode, a.Value, a.SourceTimestamp is None) == (b.StatusCode, b.Value, b.SourceTimestamp is None), f"{path} {attr.name}"
        strip = [(t, f, i.replace("stock/", "").replace("fast/", "") if isinstance(i, str) else i, *rest) for t, f, i, *rest in _ref_view(stock.references)]
        assert sorted(strip, key=repr) == sorted(
            [(t, f, i.replace("fast/", "") if isinstance(i, str) else i, *rest) for t, f, i, *rest in _ref_view(fast.references)], key=repr
        )
    objects_refs = [r for r in _ref_view(aspace.get(objects).references) if r[2] in ("stock/F", "fast/F")]
    assert [r[2] for r in objects_refs] == ["stock/F", "fast/F"] and objects_refs[0][3:] == objects_refs[1][3:]
    again = items("fast", objects)[1]
    with pytest.raises(ua.UaStatusCodeError) as info:
        asyncua_patches.add_node(iserver, again)
    assert info.value.code == ua.StatusCodes.BadNodeIdExists
    orphan = items("other", ua.NodeId("nowhere", ns))[0]
    with pytest.raises(ua.UaStatusCodeError) as info:
        asyncua_patches.add_node(iserver, orphan)
    assert info.value.code == ua.StatusCodes.BadParentNodeIdInvalid


async def test_subscription_stats_count_what_clients_receive(free_port: int) -> None:
    """The wrapped publish callback counts exactly the notifications a client's subscription
    receives; subscriptions and monitored items are counted while they exist, the server's own
    internal subscriptions never."""
    url = f"opc.tcp://127.0.0.1:{free_port}/stats"
    server = Server()
    await server.init()
    server.set_endpoint(url)
    ns = await server.register_namespace("urn:edgetwin:stats")
    a = await server.nodes.objects.add_variable(ua.NodeId("a", ns), f"{ns}:a", 0.0)
    b = await server.nodes.objects.add_variable(ua.NodeId("b", ns), f"{ns}:b", 0.0)
    stats = SubscriptionStats(server.iserver)

    class Handler:
        def __init__(self) -> None:
            self.values: list[Any] = []

        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            self.values.append(val)

    async with server:
        internal = await server.create_subscription(50, Handler())  # the server's own: not counted
        await internal.subscribe_data_change(a)
        got = Handler()
        async with Client(url, timeout=5) as client:
            sub = await client.create_subscription(20, got)
            await sub.subscribe_data_change([client.get_node(a.nodeid), client.get_node(b.nodeid)])
            assert (stats.subscriptions, stats.monitored_items) == (1, 2)
            for i in range(1, 6):
                await a.write_value(float(i))
                await b.write_value(float(-i))
                await asyncio.sleep(0.05)
            for _ in range(200):
                if len(got.values) >= 12:
                    break
                await asyncio.sleep(0.02)
            assert len(got.values) == 12  # 2 initial values, then 5 changes of each
            assert stats.notifications_sent == len(got.values)

            # TransferSubscriptions hands the subscription another session's publish callback: still counted
            moved: list[ua.PublishResult] = []

            async def new_session_callback(result: ua.PublishResult, *args: Any) -> None:
                moved.append(result)

            params = ua.TransferSubscriptionsParameters(SubscriptionIds=[sub.subscription_id])
            results = await server.iserver.subscription_service.transfer_subscriptions(params, ua.NodeId(99, 0), new_session_callback)
            assert results[0].StatusCode.is_good()
            await a.write_value(100.0)
            for _ in range(200):
                if moved:
                    break
                await asyncio.sleep(0.02)
            # what the callback gets is encoded in bulk (edge.opcua.wire): decoded, the same notifications
            decoded = [_decoded(d) for r in moved for d in r.NotificationMessage.NotificationData]
            assert stats.notifications_sent == 12 + sum(len(d.MonitoredItems) for d in decoded) == 13
            assert [n.Value.Value.Value for d in decoded for n in d.MonitoredItems] == [100.0]
            assert stats.subscriptions == 1
            await sub.delete()
            assert (stats.subscriptions, stats.monitored_items) == (0, 0)
        await internal.delete()


def _decoded(data: Any) -> Any:
    """A NotificationData entry as a client decodes it (asyncua's binary encoding and decoding)."""
    return extensionobject_from_binary(Buffer(extensionobject_to_binary(data)))


def test_monitored_item_count_refuses_an_unknown_layout() -> None:
    class Moved:
        monitored_item_srv = object()

    with pytest.raises(RuntimeError, match="_monitored_items"):
        asyncua_patches.monitored_item_count(Moved())


def test_protocol_guard_only_takes_a_subclass_of_asyncuas_protocol() -> None:
    with pytest.raises(TypeError):
        asyncua_patches.install_protocol_guard(UaProcessor)


def test_protocol_guard_relies_on_asyncuas_receive_buffer_and_queue() -> None:
    base = GuardedProtocol.__bases__[0]
    source = inspect.getsource(base)
    for needle in ("self._buffer += data", "self.messages.put_nowait", "max_pending_activation_seconds", "UaProcessor(self.iserver"):
        assert needle in source, f"asyncua's OPCUAProtocol changed: {needle!r} is gone"
    assert "def _make_protocol" in inspect.getsource(binary_server_asyncio.BinaryServer)
    assert "OPCUAProtocol(" in inspect.getsource(binary_server_asyncio.BinaryServer._make_protocol)


def test_log_filter_reaches_every_asyncua_logger() -> None:
    import logging

    f = PeerLogFilter()
    added = asyncua_patches.rate_limit_asyncua_logs(f)
    assert added >= 5
    assert asyncua_patches.rate_limit_asyncua_logs(f) == 0  # idempotent
    for name in ("asyncua", "asyncua.server.uaprocessor", "asyncua.server.binary_server_asyncio", "asyncuagds.validate"):
        logger = logging.getLogger(name)
        assert f in logger.filters
        logger.removeFilter(f)
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("asyncua"):
            logging.getLogger(name).removeFilter(f)


def test_processor_limits_and_peer_certificate_are_where_the_guard_reads_them() -> None:
    source = inspect.getsource(UaProcessor.__init__)
    assert "self._limits = copy.deepcopy(limits)" in source and "self._connection = SecureConnection" in source
    from asyncua.crypto.security_policies import SecurityPolicy

    assert "peer_certificate" in SecurityPolicy.__annotations__
    assert "max_recv_buffer" in TransportLimits.__dataclass_fields__


def test_the_large_read_path_mirrors_asyncuas_read_branch() -> None:
    """operation_limits.serve_large_read repeats these steps of asyncua 2.1.0; a change here means re-checking it."""
    process = inspect.getsource(UaProcessor._process_message)
    for line in (
        "if self._connection.security_policy.permissions.check_validity(user, typeid, body) is False:",
        "self.session_last_activity = time.monotonic()",
        "self.session.touch()",
        "params = struct_from_binary(ua.ReadParameters, body)",
        "results = await self.session.read(params)",
        "response = ua.ReadResponse()",
        "response.Results = results",
    ):
        assert line in process, f"asyncua's Read branch changed: {line!r} is gone"
    send = inspect.getsource(UaProcessor.send_response)
    assert "response.ResponseHeader.RequestHandle = requesthandle" in send
    assert "struct_to_binary(response), message_type=msgtype, request_id=seqhdr.RequestId" in send


def test_lean_nodes_mirror_asyncuas_node_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """edge.opcua.lean_nodes builds slotted copies of NodeData and AttributeValue: an asyncua whose
    classes gain, lose or rename a field, or whose AddressSpace methods using them change, is refused."""
    asyncua_patches.check_node_layout()
    for target in asyncua_patches.LAYOUT_TARGETS:
        asyncua_patches.check(target, getattr(OWNERS[target.owner], target.name))
    monkeypatch.setitem(asyncua_patches.NODE_LAYOUT, "AttributeValue", ("value", "value_callback", "datachange_callbacks"))
    asyncua_patches.check_node_layout.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"AttributeValue has the fields \(value, value_callback, value_setter, datachange_callbacks\)"):
            asyncua_patches.check_node_layout()
    finally:
        asyncua_patches.check_node_layout.cache_clear()


def test_the_fast_path_layout_is_checked_and_an_unknown_one_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_fast_path`` passes on the installed asyncua and names what moved otherwise: a field
    of DataValue, how write_attribute_value stores a value."""
    asyncua_patches.check_fast_path()
    monkeypatch.setattr(asyncua_patches.layouts, "_FAST_PATH", [])
    monkeypatch.setitem(asyncua_patches._FAST_PATH_FIELDS, ua.DataValue, ("Encoding", "Value", "Status"))
    with pytest.raises(RuntimeError, match="DataValue has the fields"):
        asyncua_patches.check_fast_path()
    monkeypatch.setitem(asyncua_patches._FAST_PATH_FIELDS, ua.DataValue, tuple(f.name for f in dataclasses.fields(ua.DataValue)))

    async def write_attribute_value(self: Any, nodeid: Any, attr: Any, value: Any) -> Any:
        self.store(value)

    monkeypatch.setattr(AddressSpace, "write_attribute_value", write_attribute_value)
    with pytest.raises(RuntimeError, match="no longer stores the value"):
        asyncua_patches.check_fast_path()


def test_the_fast_path_enqueues_as_asyncua_does() -> None:
    """``sampling._report`` appends to ``_triggered_datachanges`` as ``InternalSubscription._enqueue_event``
    does at a publishing interval > 0: a new item gets a list, a full queue drops its oldest."""
    source = inspect.getsource(InternalSubscription._enqueue_event)
    for line in ("queue[mid] = [eventdata]", "if len(queue[mid]) >= size:", "queue[mid].pop(0)", "queue[mid].append(eventdata)"):
        assert line in source
    assert "RevisedPublishingInterval <= 0.0" in inspect.getsource(InternalSubscription._trigger_publish)
