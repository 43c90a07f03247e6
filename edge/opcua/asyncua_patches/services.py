"""The changes themselves: each wraps or replaces one asyncua attribute listed in ``TARGETS``
(edge.opcua.asyncua_patches describes them all)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.crypto.truststore import TrustStore
from asyncua.server import binary_server_asyncio, uaprocessor
from cryptography import x509

from edge.opcua.asyncua_patches.targets import SESSION_METHODS, TARGETS, Wrap, _incompatible, _original, _replace, check


def wrap_create_session(iserver: Any, wrap: Wrap) -> None:
    """Replace ``InternalServer.create_session(name, user, external)`` of *iserver* by ``wrap(original)``.

    asyncua creates one ``InternalSession`` per CreateSession request (``external=True``) and one
    for the server's own use; wrapping the factory is the only way to reach every client session
    before its first request.
    """
    _replace(iserver, TARGETS["InternalServer.create_session"], wrap)


def wrap_session_methods(session: Any, **wraps: Wrap) -> None:
    """Replace the named request handlers of one ``InternalSession`` by ``wrap(original)`` each.

    Names: ``activate_session``, ``close_session``, ``call``, ``read``, ``write``,
    ``history_read``, ``browse`` (asyncua's UaProcessor calls them per request on the session object).
    """
    unknown = set(wraps) - set(SESSION_METHODS)
    if unknown:
        raise ValueError(f"not a wrapped session method: {', '.join(sorted(unknown))}")
    targets = [TARGETS[f"InternalSession.{name}"] for name in wraps]
    for target in targets:  # check all before changing any
        _original(session, target)
    for target in targets:
        _replace(session, target, wraps[target.name])


def wrap_attribute_write(service: Any, wrap: Wrap) -> None:
    """Replace ``AttributeService.write(params, user)`` (``iserver.attribute_service``) by ``wrap(original)``.

    Every client Write goes through it (after ``InternalSession.write``); the server's own writes
    call it without a user.
    """
    _replace(service, TARGETS["AttributeService.write"], wrap)


class _StartErrorFilter(logging.Filter):
    """Drops asyncua's "error starting server" traceback for an OSError (a port in use, an address
    that is not ours): the gateway reports that error itself, as one ``gateway_failed`` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, OSError) and "error starting server" in str(record.msg))


_START_FILTER = _StartErrorFilter()


def quiet_start_errors() -> None:
    """Install ``_StartErrorFilter`` on asyncua's server logger (idempotent)."""
    logging.getLogger("asyncua.server.server").addFilter(_START_FILTER)


@functools.cache
def _check_once(owner: type, *keys: str) -> None:
    """``check`` the targets *keys* on the class *owner*, once per class."""
    for key in keys:
        _original(owner, TARGETS[key])


def add_node(iserver: Any, item: ua.AddNodesItem) -> ua.NodeId:
    """Add the node of *item* under its parent in constant time (see the module docstring); raise
    ``UaStatusCodeError`` with the status asyncua would have given."""
    service = iserver.node_mgt_service
    _check_once(type(service), "NodeManagementService.try_add_nodes", "NodeManagementService.try_add_references")
    aspace = iserver.aspace
    parent = item.ParentNodeId
    if item.RequestedNewNodeId in aspace:
        raise ua.UaStatusCodeError(ua.StatusCodes.BadNodeIdExists)
    if parent.is_null() or parent not in aspace:
        raise ua.UaStatusCodeError(ua.StatusCodes.BadParentNodeIdInvalid)
    if not item.TypeDefinition.is_null() and item.TypeDefinition not in aspace:
        raise ua.UaStatusCodeError(ua.StatusCodes.BadTypeDefinitionInvalid)
    orphan = dataclasses.replace(item, ParentNodeId=ua.NodeId())
    if list(service.try_add_nodes([orphan], check=False)):
        raise ua.UaStatusCodeError(ua.StatusCodes.BadNodeAttributesInvalid)
    nid = item.RequestedNewNodeId
    node = aspace.get(nid)
    value = node.attributes.get(ua.AttributeIds.Value)
    if value is not None and value.value is not None:  # stamped as asyncua's AddNodes does (check=False leaves it bare)
        now = datetime.now(UTC)
        value.value = dataclasses.replace(value.value, SourceTimestamp=now, ServerTimestamp=now if aspace.force_server_timestamp else None)
    # parent -> node: the ReferenceDescription asyncua's _add_ref_from_parent builds, appended to the
    # parent's NodeData.references without its duplicate scan (the node is new: no duplicate exists)
    aspace.get(parent).references.append(
        ua.ReferenceDescription(
            ReferenceTypeId=item.ReferenceTypeId, NodeId=nid, BrowseName=item.BrowseName, DisplayName=item.NodeAttributes.DisplayName,
            NodeClass=item.NodeClass, TypeDefinition=item.TypeDefinition, IsForward=True,
        )
    )  # fmt: skip
    # node -> parent: through asyncua (the scan is over the new node's one or two references)
    inverse = ua.AddReferencesItem(SourceNodeId=nid, ReferenceTypeId=item.ReferenceTypeId, IsForward=False, TargetNodeId=parent)
    if list(service.try_add_references([inverse])):
        raise ua.UaStatusCodeError(ua.StatusCodes.BadReferenceNotAllowed)
    return nid


def address_space_has(service: Any, nodeid: Any) -> bool:
    """Whether the address space behind *service* (asyncua's ``AttributeService``, private ``_aspace``) holds *nodeid*."""
    return nodeid in service._aspace


def wrap_history_read(manager: Any, wrap: Wrap) -> None:
    """Replace ``HistoryManager.read_history(params)`` (``iserver.history_manager``) by ``wrap(original)``.

    asyncua turns a storage continuation point into "restart at this timestamp", which repeats or
    skips samples sharing a timestamp at a page boundary; the gateway answers raw reads itself.
    """
    _replace(manager, TARGETS["HistoryManager.read_history"], wrap)


def install_channel_guard(processor_cls: type) -> None:
    """Make asyncua's binary server build *processor_cls* (a ``UaProcessor`` subclass) per connection.

    ``OPCUAProtocol.connection_made`` instantiates the module global
    ``asyncua.server.binary_server_asyncio.UaProcessor``; it is replaced for every server in the
    process (the guard is a correct rule for all of them). Idempotent.
    """
    base = uaprocessor.UaProcessor
    if not (isinstance(processor_cls, type) and issubclass(processor_cls, base)):
        raise TypeError(f"{processor_cls!r} is not a subclass of asyncua's UaProcessor")
    current = getattr(binary_server_asyncio, "UaProcessor", None)
    if current is processor_cls:
        return
    if current is not base:
        raise _incompatible(f"binary_server_asyncio.UaProcessor is {current!r}, expected asyncua.server.uaprocessor.UaProcessor")
    check(TARGETS["UaProcessor._process_message"], base._process_message)
    check(TARGETS["UaProcessor.send_response"], base.send_response)  # overridden to count ServiceFaults (server_diagnostics)
    binary_server_asyncio.UaProcessor = processor_cls  # type: ignore[misc]


# Data types of event fields that asyncua records as the NodeId of a derived type.
_DERIVED_TYPES = {
    ua.ObjectIds.UtcTime: ua.VariantType.DateTime,
    ua.ObjectIds.Duration: ua.VariantType.Double,
    ua.ObjectIds.LocaleId: ua.VariantType.String,
    ua.ObjectIds.Counter: ua.VariantType.UInt32,
}


def fix_event_data_types(event: Any) -> None:
    """Map the NodeId data types in ``event.data_types`` to built-in variant types, in place.

    asyncua records derived data types (UtcTime, Duration...) of event fields as NodeIds, which
    ``Event.to_event_fields`` cannot turn into Variants: the alarm events of the gateway could not
    be sent.
    """
    data_types = getattr(event, "data_types", None)
    if not isinstance(data_types, dict):
        raise _incompatible(f"{type(event).__name__} has no data_types dict")
    for name, dtype in list(data_types.items()):
        if isinstance(dtype, ua.NodeId):
            ident = dtype.Identifier if dtype.NamespaceIndex == 0 else None
            if ident in _DERIVED_TYPES:
                data_types[name] = _DERIVED_TYPES[ident]
            elif isinstance(ident, int) and 1 <= ident <= 25:
                data_types[name] = ua.VariantType(ident)
            else:
                data_types[name] = ua.VariantType.ExtensionObject


def set_trusted_certificates(store: TrustStore, certs: list[x509.Certificate]) -> None:
    """Make *store* trust exactly *certs*; an empty list means "trust nobody".

    asyncua's ``TrustStore.load_trust`` builds ``x509.verification.Store(certs)``, which raises
    for an empty ``trusted/`` folder, so a fresh installation could not start. The gateway's
    ``load_trust`` (``edge.opcua.security``) stores None instead, which ``TrustStore.is_trusted``
    answers with "not trusted".
    """
    if not isinstance(store, TrustStore) or not hasattr(store, "_trust_store"):
        raise _incompatible("TrustStore keeps its certificates elsewhere than _trust_store")
    check(TARGETS["TrustStore.load_trust"], TrustStore.load_trust)
    store._trust_store = x509.verification.Store(certs) if certs else None


def wrap_create_subscription(service: Any, wrap: Wrap) -> None:
    """Replace ``SubscriptionService.create_subscription(params, callback, session_id,
    request_callback)`` (``iserver.subscription_service``) by ``wrap(original)``.

    Every session creates its subscriptions through the server's one service. *callback* receives
    each ``PublishResult`` as it goes to the client (``UaProcessor.forward_publish_response``,
    with the publish request as a second argument); a client's subscription has a
    *request_callback*, the server's own internal ones have none. asyncua counts no notifications:
    wrapping *callback* here is where they can be counted.
    """
    _replace(service, TARGETS["SubscriptionService.create_subscription"], wrap)


_MONITORED_ITEM_POLICY: list[bool] = []


def install_monitored_item_policy() -> None:
    """Route asyncua's ``MonitoredItemService`` (the class: every subscription's service) through
    ``edge.opcua.sampling`` for address spaces passed to ``sampling.enable``; others keep asyncua's
    behaviour. Replaced: ``_make_monitored_item_common`` (revised sampling interval and queue size),
    ``_create_data_change_monitored_item`` (BadFilterNotAllowed), ``datachange_callback`` (sampling,
    deadbands, no deep copy), ``_delete_monitored_items`` (held values and timers). Also relied on:
    ``_monitored_items``, ``_monitored_datachange``, ``isub._triggered_datachanges``. Idempotent."""
    if _MONITORED_ITEM_POLICY:
        return
    from asyncua.server.monitored_item_service import MonitoredItemService

    from edge.opcua import sampling

    for name, wrap in (
        ("_make_monitored_item_common", sampling.make_common),
        ("_create_data_change_monitored_item", sampling.create_data_change),
        ("datachange_callback", sampling.datachange),
        ("_delete_monitored_items", sampling.delete_item),
    ):
        _replace(MonitoredItemService, TARGETS[f"MonitoredItemService.{name}"], wrap)
    _MONITORED_ITEM_POLICY.append(True)


def wrap_standard_address_space(iserver: Any, wrap: Wrap) -> None:
    """Replace ``InternalServer.load_standard_address_space(shelf_file)`` of *iserver* by
    ``wrap(original)`` (before ``Server.init``, its first step).

    asyncua 2.1 decides whether a shelf exists with ``Path.is_file()`` on the name or the name
    with ``.db``, which misses the ``.dat``/``.dir`` files of ``dbm.dumb`` (the only backend of a
    Python built without gdbm): it would rebuild the shelf at every start. It also creates the shelf
    with the umask's mode. ``edge.opcua.standard_nodes`` decides and builds itself, and calls
    ``AddressSpace.load_aspace_shelf`` (checked here too), which replaces ``AddressSpace._nodes``
    by a mapping that reads a node from the shelf the first time it is asked for.
    """
    _original(iserver.aspace, TARGETS["AddressSpace.load_aspace_shelf"])
    if not isinstance(getattr(iserver.aspace, "_nodes", None), dict):
        raise _incompatible("AddressSpace keeps its nodes elsewhere than the dict _nodes")
    _replace(iserver, TARGETS["InternalServer.load_standard_address_space"], wrap)


def wrap_transfer_subscriptions(service: Any, wrap: Wrap) -> None:
    """Replace ``SubscriptionService.transfer_subscriptions(params, session_id, callback)`` by
    ``wrap(original)``: a TransferSubscriptions request gives the moved subscriptions the new
    session's publish *callback* (``pub_result_callback``), replacing the one wrapped at creation."""
    _replace(service, TARGETS["SubscriptionService.transfer_subscriptions"], wrap)


def monitored_item_count(subscription: Any) -> int:
    """The number of monitored items of one ``InternalSubscription`` (its ``monitored_item_srv``
    keeps them in the private dict ``_monitored_items``; asyncua has no public count)."""
    items = getattr(getattr(subscription, "monitored_item_srv", None), "_monitored_items", None)
    if not isinstance(items, dict):
        raise _incompatible("InternalSubscription.monitored_item_srv keeps its monitored items elsewhere than _monitored_items")
    return len(items)


def detach_datachange_callbacks(aspace: Any, nodeid: ua.NodeId) -> int:
    """Remove the data-change callbacks (one per monitored item) of *nodeid*'s Value before the
    node is deleted; return how many there were.

    asyncua 2.1 ``NodeManagementService._delete_node_callbacks`` calls each of them, the async
    ``MonitoredItemService.datachange_callback``, without awaiting it: the notification is lost
    (with a RuntimeWarning), and awaited it would send a StatusChangeNotification, which tells the
    client that its whole subscription failed. The gateway writes a final BadNodeIdUnknown value
    to the node instead (each monitored item sees its node go Bad) and then detaches them here.
    """
    handles = datachange_handles(aspace, nodeid)
    for handle in handles:
        aspace.delete_datachange_callback(handle)
    return len(handles)


def datachange_handles(aspace: Any, nodeid: ua.NodeId) -> list[int]:
    """The handles of the data-change callbacks (monitored items) on *nodeid*'s Value."""
    _original(aspace, TARGETS["AddressSpace.delete_datachange_callback"])
    nodedata = aspace.get(nodeid)
    value = nodedata.attributes.get(ua.AttributeIds.Value) if nodedata is not None else None
    return list(getattr(value, "datachange_callbacks", None) or ())


def drop_references_to(aspace: Any, nodeids: Collection[ua.NodeId]) -> int:
    """Remove every reference to one of *nodeids* (nodes just deleted without
    DeleteTargetReferences) from the nodes of *aspace*, in one pass; return how many.

    asyncua 2.1's DeleteNodes with DeleteTargetReferences walks every node of the address space for
    each deleted node: deleting one alarm condition (some 40 nodes) on a gateway with thousands of
    tags blocked the event loop for seconds.
    """
    _original(aspace, TARGETS["AddressSpace.keys"])
    doomed = set(nodeids)
    dropped = 0
    for nid in list(aspace.keys()):
        refs = aspace[nid].references
        kept = [r for r in refs if r.NodeId not in doomed]
        if len(kept) != len(refs):
            dropped += len(refs) - len(kept)
            refs[:] = kept
    return dropped


def install_protocol_guard(protocol_cls: type) -> None:
    """Make asyncua's ``BinaryServer`` build *protocol_cls* (an ``OPCUAProtocol`` subclass) per connection.

    ``BinaryServer._make_protocol`` instantiates the module global
    ``asyncua.server.binary_server_asyncio.OPCUAProtocol``; it is replaced for every server in the
    process. ``edge.opcua.transport.GuardedProtocol`` behaves exactly as asyncua's for a server
    without a ``ConnectionGuard``. It relies on the protocol's ``_buffer`` (bytes of the frame being
    received), ``messages`` (the inbound queue), ``processor`` and ``transport``. Idempotent.
    """
    base = _PROTOCOL_BASE
    if not (isinstance(protocol_cls, type) and issubclass(protocol_cls, base)):
        raise TypeError(f"{protocol_cls!r} is not a subclass of asyncua's OPCUAProtocol")
    current = getattr(binary_server_asyncio, "OPCUAProtocol", None)
    if current is protocol_cls:
        return
    if current is not base:
        raise _incompatible(f"binary_server_asyncio.OPCUAProtocol is {current!r}, expected asyncua's own")
    for key in ("__init__", "connection_made", "connection_lost", "data_received"):
        check(TARGETS[f"OPCUAProtocol.{key}"], getattr(base, key))
    if "self._buffer" not in inspect.getsource(base.data_received):
        raise _incompatible("OPCUAProtocol.data_received no longer buffers in self._buffer")
    binary_server_asyncio.OPCUAProtocol = protocol_cls  # type: ignore[misc]


_PROTOCOL_BASE = binary_server_asyncio.OPCUAProtocol


def rate_limit_asyncua_logs(log_filter: logging.Filter) -> int:
    """Attach *log_filter* to asyncua's root logger and every ``asyncua.*`` logger that exists,
    and ``asyncuagds.*`` (the trust store's); a filter on a parent logger does not see its
    children's records. Idempotent; returns how many loggers it was added to."""
    added = 0
    for name in ["asyncua", *[n for n in list(logging.Logger.manager.loggerDict) if n.startswith(("asyncua.", "asyncuagds"))]]:
        logger = logging.getLogger(name)
        if log_filter not in logger.filters:
            logger.addFilter(log_filter)
            added += 1
    return added
