"""The asyncua patches (edge/opcua/asyncua_patches.py) against the installed asyncua.

These fail loudly when an asyncua upgrade moves, renames or reshapes anything the gateway replaces:
every target is checked by name, parameters and sync/async kind, and every patch is applied to a
real in-process server and seen to take effect on a client's requests.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, Server, ua
from asyncua.common.connection import TransportLimits
from asyncua.crypto.security_policies import SecurityPolicyFactory, SecurityPolicyNone
from asyncua.crypto.truststore import TrustStore
from asyncua.server import binary_server_asyncio
from asyncua.server.address_space import AttributeService
from asyncua.server.history import HistoryManager
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.uaprocessor import UaProcessor

from edge.opcua import asyncua_patches
from edge.opcua.asyncua_patches import TARGETS, Target
from edge.opcua.auth import GuardedUaProcessor, install_channel_guard
from edge.opcua.peer_logs import PeerLogFilter
from edge.opcua.security import _TrustStore
from edge.opcua.transport import ConnectionGuard, GuardedProtocol, TransportSettings, set_guard

OWNERS: dict[str, type] = {
    "InternalServer": InternalServer,
    "InternalSession": InternalSession,
    "AttributeService": AttributeService,
    "HistoryManager": HistoryManager,
    "UaProcessor": UaProcessor,
    "TrustStore": TrustStore,
    "OPCUAProtocol": GuardedProtocol.__bases__[0],  # asyncua's own (the module global is replaced)
}
SETUP_PY = Path(__file__).resolve().parents[3] / "setup.py"


def test_installed_asyncua_is_the_version_the_patches_were_written_for() -> None:
    pinned = re.search(r'"asyncua==([^"]+)"', SETUP_PY.read_text())
    assert pinned is not None, "setup.py no longer pins asyncua"
    assert pinned.group(1) == asyncua_patches.PINNED_VERSION, "update PINNED_VERSION (and re-check every patch) with the pin"
    assert asyncua_patches.ASYNCUA_VERSION == asyncua_patches.PINNED_VERSION


@pytest.mark.parametrize("key", sorted(TARGETS))
def test_every_patch_target_exists_with_the_expected_parameters(key: str) -> None:
    target = TARGETS[key]
    owner = OWNERS[target.owner]
    assert hasattr(owner, target.name), f"asyncua's {target.owner} has no {target.name}"
    asyncua_patches.check(target, getattr(owner, target.name))


def test_channel_guard_targets_the_class_the_binary_server_instantiates() -> None:
    # OPCUAProtocol builds its processor from the module global, which is what the guard replaces
    assert "UaProcessor(" in inspect.getsource(GuardedProtocol.__bases__[0].connection_made)
    assert issubclass(binary_server_asyncio.UaProcessor, UaProcessor)

    class Transport:
        def get_extra_info(self, name: str) -> Any:
            return ("127.0.0.1", 4840)

    # GuardedUaProcessor reads the channel's policy and the policies the server offers
    processor = UaProcessor(None, Transport(), TransportLimits())  # type: ignore[arg-type]
    offered = [SecurityPolicyFactory(SecurityPolicyNone, ua.MessageSecurityMode.None_)]
    processor.set_policies(offered)
    assert processor._connection._policies is offered
    policy = processor._connection.security_policy
    assert offered[0].matches(policy.URI, policy.Mode)


def test_a_changed_target_is_refused_with_the_asyncua_version() -> None:
    target = Target("InternalSession", "read", ("params",), True)

    class Renamed:
        async def read(self, parameters: Any) -> None: ...

    class NowSync:
        def read(self, params: Any) -> None: ...

    with pytest.raises(RuntimeError, match=rf"asyncua {re.escape(asyncua_patches.ASYNCUA_VERSION)} .*takes \(parameters\), expected \(params\)"):
        asyncua_patches.check(target, Renamed().read)
    with pytest.raises(RuntimeError, match="no longer a coroutine function"):
        asyncua_patches.check(target, NowSync.read)
    with pytest.raises(RuntimeError, match="has no attribute 'read'"):
        asyncua_patches.wrap_session_methods(object(), read=lambda original: original)
    with pytest.raises(ValueError, match="not a wrapped session method: translate"):
        asyncua_patches.wrap_session_methods(object(), translate=lambda original: original)


def test_a_replacement_must_keep_the_sync_or_async_kind() -> None:
    class Service:
        async def write(self, params: Any, user: Any = None) -> list[Any]:
            return []

    service = Service()

    def sync_write(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda params, user=None: []

    with pytest.raises(TypeError, match="must be a coroutine function"):
        asyncua_patches.wrap_attribute_write(service, sync_write)


def test_a_wrapped_target_can_be_wrapped_again() -> None:
    class Manager:
        async def read_history(self, params: Any) -> list[str]:
            return ["asyncua"]

    def outer(tag: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            async def read_history(params: Any) -> list[str]:
                return [tag, *await original(params)]

            return read_history

        return wrap

    manager = Manager()
    asyncua_patches.wrap_history_read(manager, outer("first"))
    asyncua_patches.wrap_history_read(manager, outer("second"))
    assert list(inspect.signature(manager.read_history).parameters) == ["params"]


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
