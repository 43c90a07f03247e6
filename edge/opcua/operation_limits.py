"""The advertised operation limits, enforced; large legal requests served in slices.

asyncua advertises ``MaxNodesPerRead`` (and the others) as 10,000 without enforcing them, and
serves a Read in one pass: 200,000 items held the event loop for 2.6 s and dropped another
client's session. The gateway writes its own limits into ``Server/ServerCapabilities/
OperationLimits`` and, per session (``auth.SessionHooks``):

* a Read, Write, Browse or HistoryRead with more items than its limit is refused as a whole with
  BadTooManyOperations (a ServiceFault), as OPC UA Part 4 requires;
* a legal request with more than ``slice_items`` items is served ``slice_items`` at a time, with
  a yield to the event loop between slices, so other clients' requests and the publish loop go on;
* a Read request larger than ``LARGE_REQUEST_BYTES`` is decoded, and its response encoded, in a
  worker thread (``serve_large_read``, called by ``auth.GuardedUaProcessor``): asyncua decodes a
  10,000-item Read in one piece on the event loop (~0.9 s on a loaded 2-core machine); in a
  thread the loop still gets the interpreter every few milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from edge.core.ratelimit import BurstLimiter

__all__ = ["LARGE_REQUEST_BYTES", "OperationLimits", "serve_large_read", "sliced"]

log = structlog.get_logger("edge.opcua.operation_limits")
_logged = BurstLimiter(60.0)  # too_many_operations: once a minute per service

# session method -> (the params field holding the items, the limit attribute)
SERVICES: dict[str, tuple[str, str]] = {
    "read": ("NodesToRead", "max_nodes_per_read"),
    "write": ("NodesToWrite", "max_nodes_per_write"),
    "browse": ("NodesToBrowse", "max_nodes_per_browse"),
    "history_read": ("NodesToRead", "max_nodes_per_history_read"),
}


@dataclass(frozen=True, slots=True)
class OperationLimits:
    """Items per request (``[opcua.limits]``); advertised in the server's OperationLimits."""

    max_nodes_per_read: int = 10_000
    max_nodes_per_write: int = 1_000
    max_nodes_per_browse: int = 1_000
    max_nodes_per_history_read: int = 1_000
    slice_items: int = 500

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be >= 1")

    def advertised(self) -> dict[int, int]:
        """OperationLimits node id -> value."""
        ids = ua.ObjectIds
        return {
            ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead: self.max_nodes_per_read,
            ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite: self.max_nodes_per_write,
            ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse: self.max_nodes_per_browse,
            ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData: self.max_nodes_per_history_read,
            ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadEvents: self.max_nodes_per_history_read,
        }

    async def advertise(self, server: Any) -> None:
        """Write the limits into the asyncua *server*'s OperationLimits variables."""
        for nid, value in self.advertised().items():
            await server.write_attribute_value(ua.NodeId(nid), ua.DataValue(ua.Variant(value, ua.VariantType.UInt32)))

    def wrap(self, service: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A wrap for ``asyncua_patches.wrap_session_methods`` (``service`` is a session method name)."""
        field, attr = SERVICES[service]
        return lambda original: sliced(original, field=field, limit=getattr(self, attr), slice_items=self.slice_items, service=service)


def sliced(original: Callable[..., Any], *, field: str, limit: int, slice_items: int, service: str) -> Callable[..., Any]:
    """``original(params)`` refused above *limit* items and called per *slice_items* items."""

    async def handler(params: Any) -> list[Any]:
        items = getattr(params, field)
        n = len(items)
        if n > limit:
            suppressed = _logged.allow(service)
            if suppressed is not None:
                log.warning("too_many_operations", service=service, items=n, limit=limit, suppressed=suppressed)
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        if n <= slice_items:
            return list(await original(params))
        results: list[Any] = []
        for start in range(0, n, slice_items):
            part = dataclasses.replace(params, **{field: items[start : start + slice_items]})
            results.extend(await original(part))
            await asyncio.sleep(0)  # let other connections' requests and the publish loop run
        return results

    return handler


LARGE_REQUEST_BYTES = 64 * 1024
READ_REQUEST = ua.NodeId(ua.ObjectIds.ReadRequest_Encoding_DefaultBinary)


def is_large_read(processor: Any, typeid: ua.NodeId, body: Any) -> bool:
    session = processor.session
    return typeid == READ_REQUEST and len(body) > LARGE_REQUEST_BYTES and session is not None and session.is_activated()


async def serve_large_read(processor: Any, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> bool:
    """asyncua's Read branch of ``UaProcessor._process_message`` (2.1.0: permission check, activity
    stamps, decode, ``session.read``, encode, send) with the decoding and the encoding of the
    response in a worker thread. Only for an activated session (``is_large_read``)."""
    session = processor.session
    permissions = processor._connection.security_policy.permissions
    if permissions is not None and permissions.check_validity(session.user, typeid, body) is False:
        raise ua.uaerrors.BadUserAccessDenied
    processor.session_last_activity = time.monotonic()
    session.touch()
    params = await asyncio.to_thread(struct_from_binary, ua.ReadParameters, body)
    response = ua.ReadResponse()
    response.Results = await session.read(params)
    response.ResponseHeader.RequestHandle = requesthdr.RequestHandle
    data = await asyncio.to_thread(struct_to_binary, response)
    processor._transport.write(processor._connection.message_to_binary(data, message_type=ua.MessageType.SecureMessage, request_id=seqhdr.RequestId))
    return True
