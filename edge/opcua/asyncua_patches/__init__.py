"""Every change the gateway makes to asyncua's behaviour, in one place.

asyncua is pinned (``asyncua==2.1.0`` in setup.py) because the changes below replace or wrap
attributes of its objects. This module is the only place that assigns to them; the behaviour each
change installs lives with the feature (``edge.opcua.auth``, ``edge.opcua.writes``,
``edge.opcua.history_read``), which passes it in as a *wrap* function: ``wrap(original)`` returns
the replacement, which may call ``original``.

Each function first checks that the attribute it replaces exists with the parameters (and the
sync/async kind) asyncua 2.1.0 has, and raises ``RuntimeError`` naming the installed asyncua
version otherwise, so an upgrade that moves one of them fails at startup instead of silently
bypassing a rule. ``tests/edge/opcua/test_asyncua_patches.py`` checks every target against the
installed asyncua and applies each change to a real server.

=====================================  ==========================================  ==========================================
change                                 replaces (asyncua 2.1.0)                    why
=====================================  ==========================================  ==========================================
``wrap_create_session``                ``InternalServer.create_session``           per-session hooks below, for client
                                                                                   sessions only (``auth.SessionHooks``)
``wrap_session_methods``               ``InternalSession.activate_session``,       run every request as the calling user
                                       ``close_session``, ``call``, ``read``,      (``users.current_principal``), roles on
                                       ``write``, ``history_read``                 Call, UserAccessLevel / UserExecutable
                                                                                   per user, session count (``auth``)
``wrap_attribute_write``               ``AttributeService.write``                  role and value checks, write-through to
                                                                                   the device, audit log (``writes.WriteGate``)
``wrap_history_read``                  ``HistoryManager.read_history``             exact continuation points for raw reads
                                                                                   (``history_read.OpcUaHistory``)
``install_channel_guard``              ``binary_server_asyncio.UaProcessor``       asyncua 2.1 falls back to the None policy
                                       (the class ``OPCUAProtocol`` builds per     when None is not offered; sessions are
                                       connection)                                 refused on such channels
                                                                                   (``auth.GuardedUaProcessor``)
``fix_event_data_types``               ``Event.data_types`` entries of an event    asyncua records derived data types
                                       generator's event                           (UtcTime, Duration...) as NodeIds, which
                                                                                   ``to_event_fields`` cannot encode (alarms)
``set_trusted_certificates``           ``TrustStore._trust_store`` (the gateway's  ``load_trust`` raises on an empty
                                       own store, ``security._TrustStore``)        ``trusted/`` folder; the gateway trusts
                                                                                   nobody then, and starts
``wrap_create_subscription``          ``SubscriptionService.create_subscription`` count the notifications sent to
                                       and ``transfer_subscriptions`` (the        clients (``stats.SubscriptionStats``,
                                       publish callback of client subscriptions)  metrics and Diagnostics)
``monitored_item_count``               reads ``MonitoredItemService._monitored_   asyncua keeps no public count of a
                                       items`` of a subscription (no change)      subscription's monitored items
``detach_datachange_callbacks``        the ``datachange_callbacks`` of a node's    deleting a node calls them without
                                       Value (``AddressSpace``), before the node   awaiting them (lost, RuntimeWarning); a
                                       is deleted                                  reload sends each monitored item a final
                                                                                   BadNodeIdUnknown itself (``model``)
``drop_references_to``                 the ``references`` lists of the nodes in    DeleteNodes with DeleteTargetReferences
                                       an ``AddressSpace``                         scans the whole address space once per
                                                                                   deleted node (seconds for one alarm
                                                                                   condition); one pass for all instead
``install_protocol_guard``             ``binary_server_asyncio.OPCUAProtocol``     connection caps with eviction of idle
                                       (the class ``BinaryServer`` builds per      unauthenticated peers, chunk sizes
                                       connection; ``connection_made``,            checked on the header before buffering,
                                       ``connection_lost``, ``data_received``)     HEL only first (``transport``)
``wrap_session_methods`` (``browse``)  ``InternalSession.browse``                  operation limits and sliced requests
                                                                                   (``operation_limits``)
``install_monitored_item_policy``      ``MonitoredItemService``: making, creating  sampling interval, queue size, deadbands
                                       (data change), ``datachange_callback``,     (percent too) and DiscardOldest as the
                                       deleting a monitored item                   client asks; no per-value deep copy
                                                                                   (``sampling``)
``rate_limit_asyncua_logs``            filters on every ``asyncua.*`` logger       one line per peer and message template
                                                                                   per minute (``peer_logs.PeerLogFilter``)
``wrap_standard_address_space``        ``InternalServer.load_standard_address_``   the standard nodes from a shelf in the
                                       ``space`` (and sets ``AddressSpace._nodes`` state directory, built once, owner-only,
                                       when it switches to the shelf)              checked before it is unpickled
                                                                                   (``standard_nodes``)
``check_fast_path`` (relied on, not    ``Variant``/``DataValue`` slots,            a sample into its node and monitored
replaced)                              ``AttributeValue.value`` and its            items without an await, notifications
                                       ``datachange_callbacks``,                   encoded once (``fastpath``, ``wire``;
                                       ``InternalSubscription._triggered_          the publish callback of
                                       datachanges``, an ExtensionObject's Body    ``wrap_create_subscription`` packs them)
``check_columnar`` (relied on, not       ``AttributeValue`` replaced by a            node values built when read, monitored
replaced)                              ``ColumnValue`` (same fields) on columnar   items as arrays, one ``ColumnBlock`` per
                                       nodes; a ``ColumnBlock`` in                 group in the queue, encoded in one call
                                       ``_triggered_datachanges`` under a          (``columnar``, ``column_items``,
                                       negative key                                ``column_wire``)
=====================================  ==========================================  ==========================================

``add_node`` (a faster path, not a replacement): asyncua's ``NodeManagementService._add_node`` scans
every reference of the parent twice for each node it adds (duplicate property names, duplicate
references), so a folder of N variables costs O(N²): 34 s for 10,000 tags, 50,000 not within
7 minutes. ``add_node`` adds the node without a parent (``try_add_nodes(check=False)``, the path
asyncua's own nodeset importer takes), appends the parent's reference to it (the
``ReferenceDescription`` asyncua builds, on the parent's ``NodeData.references``, without the scan)
and adds the node's reference back to its parent through ``try_add_references``. The gateway plans unique names and NodeIds before
it builds anything (``edge.config.nodes``), so the scans find nothing. The test checks that both
paths build the same references and attributes.

``check_node_layout`` (lean variables, ``edge.opcua.lean_nodes``): the gateway builds most of its
variables itself, as slotted copies of asyncua's ``NodeData`` and ``AttributeValue`` sharing the
constant attributes of a prototype that asyncua built. It checks that both classes still have
exactly the fields mirrored and that the ``AddressSpace`` methods reading and writing them (and
``NodeManagementService._add_reference_no_check``, which makes a child's reference back to its
parent) keep their signatures; the lean test compares every attribute with asyncua's AddNodes.

``GuardedUaProcessor`` also serves a Read request larger than 64 KB itself
(``operation_limits.serve_large_read``): the same steps as asyncua 2.1.0's Read branch of
``UaProcessor._process_message`` and ``send_response``, with decoding and encoding in a worker
thread; the test pins the asyncua source lines it mirrors.

Called, not replaced (checked the same way): ``InternalServer.decrypt_user_token`` and
``lookup_external_session`` (``auth.GuardedUaProcessor`` checks passwords off the loop before
ActivateSession), ``InternalSession.close_session`` (revoked certificates, ``revocation``).

A replacement keeps the original's name and signature (``functools.update_wrapper``), so a
wrapped attribute can be wrapped again and still passes the checks.
"""

from __future__ import annotations

from edge.opcua.asyncua_patches.layouts import (
    _FAST_PATH as _FAST_PATH,
)
from edge.opcua.asyncua_patches.layouts import (
    _FAST_PATH_FIELDS as _FAST_PATH_FIELDS,
)
from edge.opcua.asyncua_patches.layouts import (
    LAYOUT_TARGETS as LAYOUT_TARGETS,
)
from edge.opcua.asyncua_patches.layouts import (
    NODE_LAYOUT as NODE_LAYOUT,
)
from edge.opcua.asyncua_patches.layouts import (
    check_columnar as check_columnar,
)
from edge.opcua.asyncua_patches.layouts import (
    check_fast_path as check_fast_path,
)
from edge.opcua.asyncua_patches.layouts import (
    check_node_layout as check_node_layout,
)
from edge.opcua.asyncua_patches.services import (
    _DERIVED_TYPES as _DERIVED_TYPES,
)
from edge.opcua.asyncua_patches.services import (
    _MONITORED_ITEM_POLICY as _MONITORED_ITEM_POLICY,
)
from edge.opcua.asyncua_patches.services import (
    _PROTOCOL_BASE as _PROTOCOL_BASE,
)
from edge.opcua.asyncua_patches.services import (
    _START_FILTER as _START_FILTER,
)
from edge.opcua.asyncua_patches.services import (
    _check_once as _check_once,
)
from edge.opcua.asyncua_patches.services import (
    _StartErrorFilter as _StartErrorFilter,
)
from edge.opcua.asyncua_patches.services import (
    add_node as add_node,
)
from edge.opcua.asyncua_patches.services import (
    address_space_has as address_space_has,
)
from edge.opcua.asyncua_patches.services import (
    datachange_handles as datachange_handles,
)
from edge.opcua.asyncua_patches.services import (
    detach_datachange_callbacks as detach_datachange_callbacks,
)
from edge.opcua.asyncua_patches.services import (
    drop_references_to as drop_references_to,
)
from edge.opcua.asyncua_patches.services import (
    fix_event_data_types as fix_event_data_types,
)
from edge.opcua.asyncua_patches.services import (
    install_channel_guard as install_channel_guard,
)
from edge.opcua.asyncua_patches.services import (
    install_monitored_item_policy as install_monitored_item_policy,
)
from edge.opcua.asyncua_patches.services import (
    install_protocol_guard as install_protocol_guard,
)
from edge.opcua.asyncua_patches.services import (
    monitored_item_count as monitored_item_count,
)
from edge.opcua.asyncua_patches.services import (
    quiet_start_errors as quiet_start_errors,
)
from edge.opcua.asyncua_patches.services import (
    rate_limit_asyncua_logs as rate_limit_asyncua_logs,
)
from edge.opcua.asyncua_patches.services import (
    set_trusted_certificates as set_trusted_certificates,
)
from edge.opcua.asyncua_patches.services import (
    wrap_attribute_write as wrap_attribute_write,
)
from edge.opcua.asyncua_patches.services import (
    wrap_create_session as wrap_create_session,
)
from edge.opcua.asyncua_patches.services import (
    wrap_create_subscription as wrap_create_subscription,
)
from edge.opcua.asyncua_patches.services import (
    wrap_history_read as wrap_history_read,
)
from edge.opcua.asyncua_patches.services import (
    wrap_session_methods as wrap_session_methods,
)
from edge.opcua.asyncua_patches.services import (
    wrap_standard_address_space as wrap_standard_address_space,
)
from edge.opcua.asyncua_patches.services import (
    wrap_transfer_subscriptions as wrap_transfer_subscriptions,
)
from edge.opcua.asyncua_patches.targets import (
    ASYNCUA_VERSION as ASYNCUA_VERSION,
)
from edge.opcua.asyncua_patches.targets import (
    PINNED_VERSION as PINNED_VERSION,
)
from edge.opcua.asyncua_patches.targets import (
    SESSION_METHODS as SESSION_METHODS,
)
from edge.opcua.asyncua_patches.targets import (
    TARGETS as TARGETS,
)
from edge.opcua.asyncua_patches.targets import (
    Target as Target,
)
from edge.opcua.asyncua_patches.targets import (
    Wrap as Wrap,
)
from edge.opcua.asyncua_patches.targets import (
    _incompatible as _incompatible,
)
from edge.opcua.asyncua_patches.targets import (
    _original as _original,
)
from edge.opcua.asyncua_patches.targets import (
    _replace as _replace,
)
from edge.opcua.asyncua_patches.targets import (
    check as check,
)

__all__ = [
    "ASYNCUA_VERSION",
    "PINNED_VERSION",
    "TARGETS",
    "Target",
    "check_columnar",
    "check_fast_path",
    "check_node_layout",
    "datachange_handles",
    "detach_datachange_callbacks",
    "drop_references_to",
    "fix_event_data_types",
    "install_channel_guard",
    "install_protocol_guard",
    "monitored_item_count",
    "rate_limit_asyncua_logs",
    "set_trusted_certificates",
    "wrap_attribute_write",
    "wrap_create_session",
    "wrap_create_subscription",
    "wrap_history_read",
    "wrap_session_methods",
    "wrap_standard_address_space",
    "wrap_transfer_subscriptions",
]
