"""The targets of the asyncua patches (edge/opcua/asyncua_patches/) against the installed asyncua.

These fail loudly when an asyncua upgrade moves, renames or reshapes anything the gateway replaces:
every target is checked by name, parameters and sync/async kind against the pinned version, and a
changed target or a replacement of the wrong kind is refused.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.connection import TransportLimits
from asyncua.crypto.security_policies import SecurityPolicyFactory, SecurityPolicyNone
from asyncua.server import binary_server_asyncio
from asyncua.server.uaprocessor import UaProcessor

from edge.opcua import asyncua_patches
from edge.opcua.asyncua_patches import TARGETS, Target
from edge.opcua.transport import GuardedProtocol
from tests.edge.opcua.asyncua_owners import OWNERS

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
