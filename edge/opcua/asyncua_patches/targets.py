"""What the patches replace: asyncua's pinned version, each target's expected signature, and
the checks that refuse an asyncua that moved one (edge.opcua.asyncua_patches)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

PINNED_VERSION = "2.1.0"  # setup.py: asyncua==2.1.0
ASYNCUA_VERSION = metadata.version("asyncua")

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class Target:
    """An asyncua callable the gateway replaces: where it is, and what it must look like."""

    owner: str  # for messages: the asyncua class or module it belongs to
    name: str
    params: tuple[str, ...]  # parameter names, without self
    is_async: bool


TARGETS: dict[str, Target] = {
    t.owner + "." + t.name: t
    for t in (
        Target("InternalServer", "create_session", ("name", "user", "external"), False),
        Target("InternalSession", "activate_session", ("params", "peer_certificate"), False),
        Target("InternalSession", "close_session", ("delete_subs",), True),
        Target("InternalSession", "call", ("params",), True),
        Target("InternalSession", "read", ("params",), True),
        Target("InternalSession", "write", ("params",), True),
        Target("InternalSession", "history_read", ("params",), True),
        Target("InternalSession", "browse", ("params",), True),
        Target("InternalServer", "decrypt_user_token", ("isession", "token"), False),
        Target("InternalServer", "lookup_external_session", ("auth_token",), False),
        Target("OPCUAProtocol", "__init__", ("iserver", "policies", "clients", "closing_tasks", "limits"), False),
        Target("OPCUAProtocol", "connection_made", ("transport",), False),
        Target("OPCUAProtocol", "connection_lost", ("ex",), False),
        Target("OPCUAProtocol", "data_received", ("data",), False),
        Target("AttributeService", "write", ("params", "user"), True),
        Target("HistoryManager", "read_history", ("params",), True),
        Target("UaProcessor", "_process_message", ("typeid", "requesthdr", "seqhdr", "body"), True),
        Target("UaProcessor", "send_response", ("requesthandle", "seqhdr", "response", "msgtype"), False),
        Target("TrustStore", "load_trust", (), True),
        Target("AddressSpace", "delete_datachange_callback", ("handle",), False),
        Target("AddressSpace", "keys", (), False),
        Target("TrustStore", "_load_trust_location", ("location",), True),
        Target("NodeManagementService", "try_add_nodes", ("addnodeitems", "user", "check"), False),
        Target("NodeManagementService", "try_add_references", ("refs", "user"), False),
        Target("SubscriptionService", "create_subscription", ("params", "callback", "session_id", "request_callback"), True),
        Target("SubscriptionService", "transfer_subscriptions", ("params", "session_id", "callback"), True),
        Target("MonitoredItemService", "_make_monitored_item_common", ("params",), False),
        Target("MonitoredItemService", "_create_data_change_monitored_item", ("params",), True),
        Target("MonitoredItemService", "datachange_callback", ("handle", "value", "error"), True),
        Target("MonitoredItemService", "_delete_monitored_items", ("mid",), False),
        Target("InternalServer", "load_standard_address_space", ("shelf_file",), True),
        Target("AddressSpace", "load_aspace_shelf", ("path",), False),
        # relied on by the publish fast path (check_fast_path), not replaced
        Target("AddressSpace", "get", ("nodeid",), False),
        Target("AddressSpace", "write_attribute_value", ("nodeid", "attr", "value"), True),
        Target("InternalSubscription", "_enqueue_event", ("mid", "eventdata", "size", "queue"), True),
    )
}
SESSION_METHODS = ("activate_session", "close_session", "call", "read", "write", "history_read", "browse")


def _incompatible(what: str) -> RuntimeError:
    return RuntimeError(
        f"asyncua {ASYNCUA_VERSION} is not compatible with the gateway's asyncua patches "
        f"(written for asyncua {PINNED_VERSION}): {what}; see edge/opcua/asyncua_patches/"
    )


def check(target: Target, fn: Any) -> inspect.Signature:
    """Raise RuntimeError unless *fn* (bound, or a function taking self) looks like *target*."""
    label = f"{target.owner}.{target.name}"
    if not callable(fn):
        raise _incompatible(f"{label} is {type(fn).__name__}, not a method")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise _incompatible(f"{label} has no inspectable signature ({exc})") from None
    names = tuple(p.name for p in sig.parameters.values())
    if not inspect.ismethod(fn) and names[:1] == ("self",):
        names = names[1:]
    if names != target.params:
        raise _incompatible(f"{label} takes ({', '.join(names)}), expected ({', '.join(target.params)})")
    if inspect.iscoroutinefunction(inspect.unwrap(fn)) != target.is_async:
        kind = "a coroutine function" if target.is_async else "a plain function"
        raise _incompatible(f"{label} is no longer {kind}")
    return sig


def _original(obj: Any, target: Target) -> Callable[..., Any]:
    fn = getattr(obj, target.name, None)
    if fn is None:
        raise _incompatible(f"{target.owner} has no attribute {target.name!r}")
    check(target, fn)
    return fn  # type: ignore[no-any-return]


def _replace(obj: Any, target: Target, wrap: Wrap) -> None:
    """Set ``obj.<name> = wrap(original)`` after checking the original and the replacement."""
    original = _original(obj, target)
    replacement = wrap(original)
    if inspect.iscoroutinefunction(inspect.unwrap(replacement)) != target.is_async:
        raise TypeError(f"the replacement of {target.owner}.{target.name} must {'' if target.is_async else 'not '}be a coroutine function")
    setattr(obj, target.name, functools.update_wrapper(replacement, original))
