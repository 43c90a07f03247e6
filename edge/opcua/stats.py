"""Figures of the OPC UA server for Diagnostics and metrics: subscriptions, monitored items and
notifications sent to clients.

asyncua keeps subscriptions in its ``SubscriptionService`` and counts no notifications;
``SubscriptionStats`` wraps the publish callback of every client subscription when it is created
or transferred to another session (``asyncua_patches.wrap_create_subscription``,
``wrap_transfer_subscriptions``) and adds up the monitored-item notifications and
events of each PublishResult handed to the transport; the same wrapper encodes its
data-change notifications in bulk (``wire.pack_result``). The counter is a plain int updated in
asyncua's publish path; the gauges are computed when read (once a second for Diagnostics, at
scrape time for metrics), on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import ua

from edge.opcua.asyncua_patches import monitored_item_count, wrap_create_subscription, wrap_transfer_subscriptions
from edge.opcua.wire import item_count, pack_result

# (leaf, data type, description) of the server's other Diagnostics/Gateway leaves (names.OPCUA_DIAGNOSTICS),
# published by the gateway's diagnostics loop (``OpcUaServer.diagnostics()``)
SERVER_DIAGNOSTICS = (
    ("Subscriptions", "uint32", "client subscriptions"),
    ("MonitoredItems", "uint32", "monitored items of all client subscriptions"),
    ("NotificationsSent", "uint64", "data-change notifications and events sent to clients since start"),
)


def notifications_in(result: ua.PublishResult) -> int:
    """Data-change notifications plus events in one PublishResult (keep-alives and status changes: 0)."""
    n = 0
    for data in result.NotificationMessage.NotificationData or ():
        if isinstance(data, ua.DataChangeNotification):
            n += item_count(data.MonitoredItems or [])
        elif isinstance(data, ua.EventNotificationList):
            n += len(data.Events or ())
    return n


class SubscriptionStats:
    """Counts of one server's client subscriptions; install once on its ``InternalServer``."""

    def __init__(self, iserver: Any) -> None:
        self._service = iserver.subscription_service
        self._client_subscriptions: set[int] = set()  # ids of subscriptions created by clients
        self.notifications_sent = 0
        self.cumulated = 0  # client subscriptions created since start (ServerDiagnosticsSummary)
        wrap_create_subscription(self._service, self._wrap)
        wrap_transfer_subscriptions(self._service, self._wrap_transfer)

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        async def create_subscription(params: Any, callback: Any, session_id: Any, request_callback: Any = None) -> Any:
            client = request_callback is not None  # the server's own subscriptions have no publish requests
            result = await original(params, self._counting(callback) if client else callback, session_id, request_callback=request_callback)
            if client:
                self._client_subscriptions.add(result.SubscriptionId)
                self.cumulated += 1
            return result

        return create_subscription

    def _wrap_transfer(self, original: Callable[..., Any]) -> Callable[..., Any]:
        async def transfer_subscriptions(params: Any, session_id: Any, callback: Any) -> Any:
            results = await original(params, session_id, self._counting(callback))
            for sub_id, result in zip(params.SubscriptionIds, results, strict=True):
                if result.StatusCode is None or result.StatusCode.is_good():
                    self._client_subscriptions.add(int(sub_id))
            return results

        return transfer_subscriptions

    def _counting(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        async def publish_result(result: ua.PublishResult, *args: Any) -> Any:
            self.notifications_sent += notifications_in(result)
            pack_result(result)  # the notifications encoded in bulk (edge.opcua.wire)
            return await callback(result, *args)

        return publish_result

    def _live(self) -> list[Any]:
        subs = self._service.subscriptions
        self._client_subscriptions.intersection_update(subs)  # forget the deleted ones
        return [subs[i] for i in self._client_subscriptions]

    @property
    def subscriptions(self) -> int:
        """Client subscriptions that exist now."""
        return len(self._live())

    @property
    def publishing_intervals(self) -> int:
        """Distinct publishing intervals of the client subscriptions that exist now."""
        return len({s.data.RevisedPublishingInterval for s in self._live()})

    @property
    def monitored_items(self) -> int:
        """Monitored items of all client subscriptions."""
        return sum(monitored_item_count(s) for s in self._live())
