"""HistoryRead over OPC UA, served from the ``HistoryStore``.

``OpcUaHistory`` is an ``OpcUaServer`` extension: on attach it installs ``StoreHistoryBackend``
(an ``asyncua`` ``HistoryStorageInterface``) with ``history_manager.set_storage``, marks every
historized variable ``Historizing`` with the ``HistoryRead`` access bit, and takes over raw
HistoryRead requests for those variables.

Why take over the request and not only implement the storage interface: asyncua turns a storage
continuation point into "restart at this source timestamp", which repeats or skips samples that
share a timestamp at a page boundary. Our continuation points name the exact last row
(source time and row id), so paging with a small ``NumValuesPerNode`` returns every sample exactly
once. A raw read of a variable without history is answered with BadHistoryOperationUnsupported.
Every other kind of history request is answered per node with BadHistoryOperationUnsupported,
never an empty Good: read-modified (the gateway keeps no modification history: samples are never
changed after they are stored), events (alarm events are not stored), processed (aggregates) and
at-time reads.

Time range rules (OPC UA Part 11, ReadRawModifiedDetails): StartTime < EndTime reads forward,
StartTime > EndTime reads backward (newest first), only StartTime reads forward from it, only
EndTime reads backward from it, neither reads everything forward. Bounds are inclusive.

``ReturnBounds`` (Part 11, 4.4 and 6.4.3.2): with it the read also returns the bounding value of
each specified time: for a forward read, the sample at StartTime or else the last one before it,
and the sample at EndTime or else the first one after it (the other way round for a backward
read). A sample exactly at a bound is the bounding value and is returned once. Where no such
sample exists, the bounding value is a null value with status BadBoundNotFound stamped with the
bound's time. The start bound comes with the first page, the end bound with the last.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from asyncua import Node, ua
from asyncua.server.history import HistoryStorageInterface

from drivers.sample import TagValue, is_bad
from edge.history.recorder import HistoryRecorder
from edge.history.store import HistoryRow, from_us, to_us
from edge.opcua import asyncua_patches

log = structlog.get_logger("edge.history.store")

_CP = struct.Struct(">4sBqq")  # magic, reverse, source_us, row id of the last row returned
_CP_MAGIC = b"ETH1"
_UNSPECIFIED = (ua.get_win_epoch(), datetime.min)
MAX_PAGE = 1000  # values per node per HistoryRead response when the client asks for more (or for 0)


def _specified(t: datetime | None) -> int | None:
    if t is None or t.replace(tzinfo=None) in (u.replace(tzinfo=None) for u in _UNSPECIFIED):
        return None
    return to_us(t)


def _variant(value: TagValue, vtype: ua.VariantType) -> ua.Variant:
    if value is None:
        return ua.Variant(None, ua.VariantType.Null)
    if vtype == ua.VariantType.Boolean:
        value = bool(value)
    elif vtype in (ua.VariantType.Float, ua.VariantType.Double):
        value = float(value)
    elif vtype != ua.VariantType.String:
        value = int(value)
    return ua.Variant(value, vtype)


def to_datavalue(row: HistoryRow, vtype: ua.VariantType, timestamps: ua.TimestampsToReturn = ua.TimestampsToReturn.Both) -> ua.DataValue:
    """One stored row as the DataValue it was published as (status and both timestamps kept)."""
    value = None if is_bad(row.status) else row.value
    src = from_us(row.source_us) if timestamps in (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both) else None
    srv = from_us(row.server_us) if timestamps in (ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Both) else None
    return ua.DataValue(Value=_variant(value, vtype), StatusCode=ua.StatusCode(row.status), SourceTimestamp=src, ServerTimestamp=srv)


class StoreHistoryBackend(HistoryStorageInterface):
    """asyncua history storage backed by the gateway's SQLite store (read-only: the recorder writes)."""

    def __init__(self, recorder: HistoryRecorder, nodes: Mapping[ua.NodeId, tuple[str, ua.VariantType]], *, max_page: int = MAX_PAGE) -> None:
        super().__init__(max_history_data_response_size=max_page)
        self.recorder = recorder
        self.nodes = dict(nodes)
        self.max_page = max_page

    async def init(self) -> None:
        return None

    async def new_historized_node(self, node_id: ua.NodeId, period: timedelta | None, count: int = 0) -> None:
        if node_id not in self.nodes:
            raise ua.UaError(f"{node_id} is not historized by the configuration")

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        # Samples reach the store from the registry (HistoryRecorder), not from node writes.
        return None

    async def read_node_history(
        self, node_id: ua.NodeId, start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[list[ua.DataValue], datetime | None]:
        """The storage interface's read (timestamp continuation); ``read_history`` is used instead
        for requests from clients, this serves callers inside the server."""
        if node_id not in self.nodes:
            return [], None
        dvs, cp = await self.read_raw(node_id, start, end, nb_values, None)
        if cp is None:
            return dvs, None
        _, _, last_us, _ = _CP.unpack(cp)
        return dvs, from_us(last_us)

    async def new_historized_event(self, source_id: ua.NodeId, evtypes: list[Node], period: timedelta | None, count: int = 0) -> None:
        return None

    async def save_event(self, event: Any) -> None:
        return None

    async def read_event_history(self, source_id, start, end, nb_values, evfilter) -> tuple[list[Any], datetime | None]:
        return [], None

    async def stop(self) -> None:
        return None  # the recorder owns the store and closes it after the server has stopped

    # -- raw reads with exact continuation points ----------------------------------------------
    async def read_raw(
        self,
        node_id: ua.NodeId,
        start: datetime | None,
        end: datetime | None,
        nb_values: int,
        continuation: bytes | None,
        timestamps: ua.TimestampsToReturn = ua.TimestampsToReturn.Both,
        *,
        bounds: bool = False,
    ) -> tuple[list[ua.DataValue], bytes | None]:
        key, vtype = self.nodes[node_id]
        start_us, end_us = _specified(start), _specified(end)
        if start_us is not None and end_us is not None:
            reverse = start_us > end_us
            lo, hi = (end_us, start_us) if reverse else (start_us, end_us)
        else:
            reverse = start_us is None and end_us is not None
            lo, hi = start_us, end_us
        after = None
        if continuation:
            after = _decode_cp(continuation, reverse)
        page = min(nb_values, self.max_page) if nb_values > 0 else self.max_page
        await self.recorder.flush()  # a read sees every sample the registry has accepted
        rows = await asyncio.to_thread(self.recorder.store.read, key, lo, hi, reverse=reverse, after=after, limit=page + 1)
        more = len(rows) > page
        rows = rows[:page]
        cp = _CP.pack(_CP_MAGIC, int(reverse), rows[-1].source_us, rows[-1].id) if more else None
        dvs = [to_datavalue(r, vtype, timestamps) for r in rows]
        if bounds:
            # the bound the read starts from (StartTime, or EndTime of an end-only backward read) and,
            # when both times are given, the one it ends at
            first_us = start_us if start_us is not None else end_us
            last_us = end_us if start_us is not None else None
            if continuation is None and first_us is not None and not (rows and rows[0].source_us == first_us):
                dvs.insert(0, await self._bound(key, vtype, first_us, before=not reverse, timestamps=timestamps))
            if cp is None and last_us is not None and not (rows and rows[-1].source_us == last_us):
                dvs.append(await self._bound(key, vtype, last_us, before=reverse, timestamps=timestamps))
        return dvs, cp

    async def _bound(self, key: str, vtype: ua.VariantType, at_us: int, *, before: bool, timestamps: ua.TimestampsToReturn) -> ua.DataValue:
        """The bounding value at *at_us*: the last sample before it (*before*) or the first one after
        it; BadBoundNotFound stamped *at_us* when there is none."""
        store = self.recorder.store
        if before:
            rows = await asyncio.to_thread(store.read, key, None, at_us - 1, reverse=True, limit=1)
        else:
            rows = await asyncio.to_thread(store.read, key, at_us + 1, None, limit=1)
        if rows:
            return to_datavalue(rows[0], vtype, timestamps)
        t = from_us(at_us)
        src = t if timestamps in (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both) else None
        srv = t if timestamps in (ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Both) else None
        return ua.DataValue(
            Value=ua.Variant(None, ua.VariantType.Null), StatusCode=ua.StatusCode(ua.StatusCodes.BadBoundNotFound), SourceTimestamp=src, ServerTimestamp=srv
        )

    async def read_history(self, params: ua.HistoryReadParameters, fallback) -> list[ua.HistoryReadResult]:
        details = params.HistoryReadDetails
        if not (isinstance(details, ua.ReadRawModifiedDetails) and not details.IsReadModified):
            kind = "read modified" if isinstance(details, ua.ReadRawModifiedDetails) else type(details).__name__
            log.info("history_read_unsupported", kind=kind, nodes=len(params.NodesToRead))
            return [ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadHistoryOperationUnsupported)) for _ in params.NodesToRead]
        results = []
        for rv in params.NodesToRead:
            result = ua.HistoryReadResult()
            if rv.NodeId not in self.nodes:
                result.StatusCode = ua.StatusCode(ua.StatusCodes.BadHistoryOperationUnsupported)
            elif params.ReleaseContinuationPoints:
                result.HistoryData = ua.HistoryData()  # continuation points are stateless: nothing to free
            else:
                try:
                    dvs, cp = await self.read_raw(
                        rv.NodeId, details.StartTime, details.EndTime, details.NumValuesPerNode, rv.ContinuationPoint, params.TimestampsToReturn,
                        bounds=bool(details.ReturnBounds),
                    )  # fmt: skip
                except _BadContinuationPoint as exc:
                    log.warning("history_read_rejected", node=rv.NodeId.to_string(), reason=str(exc))
                    result.StatusCode = ua.StatusCode(ua.StatusCodes.BadContinuationPointInvalid)
                else:
                    result.HistoryData = ua.HistoryData(DataValues=dvs)
                    result.ContinuationPoint = cp
            results.append(result)
        return results


class _BadContinuationPoint(ValueError):
    pass


def _decode_cp(cp: bytes, reverse: bool) -> tuple[int, int]:
    if len(cp) != _CP.size:
        raise _BadContinuationPoint(f"continuation point of {len(cp)} bytes, expected {_CP.size}")
    magic, rev, last_us, last_id = _CP.unpack(cp)
    if magic != _CP_MAGIC:
        raise _BadContinuationPoint("continuation point was not issued by this server")
    if bool(rev) != reverse:
        raise _BadContinuationPoint("continuation point belongs to a read in the other direction")
    return last_us, last_id


class OpcUaHistory:
    """Serve the recorder's store as OPC UA history for the historized variables."""

    def __init__(self, recorder: HistoryRecorder, *, max_page: int = MAX_PAGE) -> None:
        self.recorder = recorder
        self.max_page = max_page
        self.backend: StoreHistoryBackend | None = None

    async def attach(self, server: Any) -> None:
        """Install on an ``OpcUaServer`` whose address space is built but not yet started."""
        ua_server = server.ua_server
        nodes = await _historize(server, sorted(self.recorder.keys))
        self.backend = StoreHistoryBackend(self.recorder, nodes, max_page=self.max_page)
        manager = ua_server.iserver.history_manager
        manager.set_storage(self.backend)
        backend = self.backend

        def serve_raw_reads(original: Callable[..., Any]) -> Callable[..., Any]:
            async def read_history(params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
                return await backend.read_history(params, original)

            return read_history

        asyncua_patches.wrap_history_read(manager, serve_raw_reads)
        log.info("history_served", nodes=len(nodes))

    async def detach(self) -> None:
        return None

    async def set_keys(self, server: Any, keys: Collection[str], *, renewed: Collection[str] = ()) -> None:
        """Historize *keys* from now on (a config reload): the recorder records them and their
        nodes say so (Historizing, HistoryRead). *renewed* are kept keys whose nodes were made
        again. A key no longer historized keeps its stored rows; its node (if it stays) is no
        longer Historizing."""
        assert self.backend is not None, "attach first"
        old = set(self.recorder.keys)
        self.recorder.set_keys(keys)
        for key in sorted(old - set(keys)):
            if key in server.registry:
                node = server.ua_server.get_node(server.node_id(key))
                await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(ua.Variant(False, ua.VariantType.Boolean)))
                await node.unset_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
                await node.unset_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
        await _historize(server, sorted((set(keys) - old) | (set(keys) & set(renewed))))
        self.backend.nodes = {server.node_id(k): (k, _vtype(server, k)) for k in sorted(keys)}


def _vtype(server: Any, key: str) -> ua.VariantType:
    from edge.opcua.model import VARIANT_TYPES

    return VARIANT_TYPES[server.registry.info(key).data_type]


async def _historize(server: Any, keys: Sequence[str]) -> dict[ua.NodeId, tuple[str, ua.VariantType]]:
    """Mark the nodes of *keys* Historizing and HistoryRead; return NodeId -> (key, variant type)."""
    nodes: dict[ua.NodeId, tuple[str, ua.VariantType]] = {}
    for key in keys:
        nid = server.node_id(key)
        nodes[nid] = (key, _vtype(server, key))
        node = server.ua_server.get_node(nid)
        await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
        await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
        await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
    return nodes
