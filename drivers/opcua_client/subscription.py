"""Mode "subscription" of the OPC UA client driver: the upstream server pushes data changes.

``OpcUaSubscriptionDriver`` creates one subscription per session with one monitored item per point
(sampling interval, queue size, deadband filter) and pushes each notification to the supervisor's
sink (``drivers.base.SubscribingDriver``). The session, the resolution of points and the Read and
Write services are its base class's, ``drivers.opcua_client.driver.OpcUaDriver``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from asyncua import ua
from asyncua.common.subscription import DataChangeNotif

from drivers.base import DriverUnavailable, ReadResult
from drivers.opcua_client import requests as rq
from drivers.opcua_client.client import GatewayClient
from drivers.opcua_client.driver import OpcUaDriver, point_key
from drivers.opcua_client.points import OpcUaPoint
from drivers.sample import TagSample, utcnow

__all__ = ["OpcUaSubscriptionDriver"]

_MONITOR_CHUNK = 500  # monitored items per CreateMonitoredItems request


class OpcUaSubscriptionDriver(OpcUaDriver):
    """Mode "subscription": the server pushes data changes (``drivers.base.SubscribingDriver``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending: list[tuple[int, ua.DataValue]] = []

    async def run_subscription(self, points: Sequence[OpcUaPoint], sink: Callable[[ReadResult], None]) -> None:
        client = self._session()
        points = list(points)
        await self._resolve(points)
        now = utcnow()
        failed = [TagSample(p.name, None, self._nodes[point_key(p)].status, now, now) for p in points if self._nodes[point_key(p)].node_id is None]
        live = {h: p for h, p in enumerate(points) if self._nodes[point_key(p)].node_id is not None}
        self._pending = []
        if live:
            params = rq.subscription_parameters(self.publishing_interval_s, client.get_keepalive_count(self.publishing_interval_s * 1000))
            sub = await self._call(client.create_subscription(params, _Handler(self, client)))
            items = [rq.monitored_item(h, p, self._nodes[point_key(p)].node_id) for h, p in live.items()]
            results = []
            for i in range(0, len(items), _MONITOR_CHUNK):  # thousands of items in one request outlast the timeout
                results += await self._call(sub.create_monitored_items(items[i : i + _MONITOR_CHUNK]))
            for (h, p), res in list(zip(live.items(), results, strict=True)):
                if isinstance(res, ua.StatusCode):
                    del live[h]
                    self._report(p.address, rq.bad(res.value), "opcua_monitored_item_refused", "the server refused the monitored item")
                    failed.append(TagSample(p.name, None, rq.bad(res.value), now, now))
        if failed:
            sink(ReadResult(failed))
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._lost is not None:
                raise DriverUnavailable(self._lost)
            batch, self._pending = self._pending, []
            received = utcnow()
            samples = [self._sample(live[h], dv, received) for h, dv in batch if h in live]
            if samples:
                sink(ReadResult(samples))

    def _notify(self, handle: int, dv: ua.DataValue) -> None:
        self._pending.append((handle, dv))
        self._wakeup.set()


class _Handler:
    """asyncua subscription callbacks: queue data changes; a Bad subscription status is a lost session.

    asyncua calls them from tasks of their own, which may run after the session is closed: a
    callback of a session that is no longer the driver's current one is dropped."""

    def __init__(self, driver: OpcUaSubscriptionDriver, client: GatewayClient) -> None:
        self.driver = driver
        self.client = client

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        handle = data.subscription_data.client_handle
        if handle is not None and self.driver._client is self.client:
            self.driver._notify(handle, data.monitored_item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        if not status.Status.is_good() and self.driver._client is self.client:
            self.driver._session_lost(f"subscription status {status.Status.name}")
