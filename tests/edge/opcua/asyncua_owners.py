"""The asyncua classes that own each patch target (``Target.owner`` -> class), for the patch tests."""

from __future__ import annotations

from asyncua.crypto.truststore import TrustStore
from asyncua.server.address_space import AddressSpace, AttributeService, NodeManagementService
from asyncua.server.history import HistoryManager
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.internal_subscription import InternalSubscription
from asyncua.server.monitored_item_service import MonitoredItemService
from asyncua.server.subscription_service import SubscriptionService
from asyncua.server.uaprocessor import UaProcessor

from edge.opcua.transport import GuardedProtocol

OWNERS: dict[str, type] = {
    "InternalServer": InternalServer,
    "InternalSession": InternalSession,
    "AttributeService": AttributeService,
    "HistoryManager": HistoryManager,
    "UaProcessor": UaProcessor,
    "TrustStore": TrustStore,
    "NodeManagementService": NodeManagementService,
    "SubscriptionService": SubscriptionService,
    "MonitoredItemService": MonitoredItemService,
    "AddressSpace": AddressSpace,
    "InternalSubscription": InternalSubscription,
    "OPCUAProtocol": GuardedProtocol.__bases__[0],  # asyncua's own (the module global is replaced)
}
