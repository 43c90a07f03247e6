"""The OPC UA request structures the driver sends, and the checks of what comes back. Pure: asyncua's
types, no session (``drivers.opcua_client.driver`` sends them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from asyncua import ua

from drivers.opcua_client.mapping import VARIANT_TYPES, accepts, variant_type_of
from drivers.opcua_client.points import NodeRef, OpcUaPoint
from drivers.sample import Status

_DEADBANDS = {"absolute": ua.DeadbandType.Absolute, "percent": ua.DeadbandType.Percent}
_ID_TYPES = {"i": ua.NodeIdType.Numeric, "s": ua.NodeIdType.String, "g": ua.NodeIdType.Guid, "b": ua.NodeIdType.ByteString}


def bad(code: int) -> int:
    """*code* if it is Bad, else BadNodeIdUnknown (a failed lookup that the server called Good)."""
    return code if code >= 0x80000000 else int(Status.BadNodeIdUnknown)


def type_text(p: OpcUaPoint) -> str:
    return f"an array of {p.value_type}" if p.array else p.value_type


def node_id(ref: NodeRef, namespaces: Sequence[str]) -> ua.NodeId | None:
    """The NodeId of *ref* in a server with *namespaces*; None when its namespace URI is not there."""
    ns = ref.namespace
    if isinstance(ns, str):
        if ns not in namespaces:
            return None
        ns = list(namespaces).index(ns)
    ident: Any = uuid.UUID(str(ref.identifier)) if ref.kind == "g" else ref.identifier
    return ua.NodeId(ident, ns, _ID_TYPES[ref.kind])


def browse_path(p: OpcUaPoint) -> ua.BrowsePath:
    """TranslateBrowsePathsToNodeIds request of *p*'s browse path, from the Root folder."""
    assert p.browse_path is not None
    elements = [
        ua.RelativePathElement(
            ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences), IsInverse=False, IncludeSubtypes=True, TargetName=ua.QualifiedName(name, ns)
        )
        for ns, name in p.browse_path
    ]
    return ua.BrowsePath(StartingNode=ua.NodeId(ua.ObjectIds.RootFolder), RelativePath=ua.RelativePath(Elements=elements))


def browse_target(result: ua.BrowsePathResult) -> tuple[ua.NodeId | None, int]:
    """(the first target's NodeId, Good) or (None, the Bad status) of one translated browse path."""
    if not result.StatusCode.is_good() or not result.Targets:
        return None, bad(result.StatusCode.value)
    target = result.Targets[0].TargetId
    return ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType), int(Status.Good)


def type_attributes(node: ua.NodeId) -> list[ua.ReadValueId]:
    return [ua.ReadValueId(NodeId=node, AttributeId=a) for a in (ua.AttributeIds.DataType, ua.AttributeIds.ValueRank)]


def check_type(p: OpcUaPoint, data_type: ua.DataValue, value_rank: ua.DataValue) -> tuple[ua.VariantType | None, int, str]:
    """The write type of *p*'s node from its DataType and ValueRank, or (None, Bad status, reason)."""
    if not data_type.StatusCode.is_good():
        return None, bad(data_type.StatusCode.value), "the server has no such variable"
    vtype = variant_type_of(data_type.Value.Value)
    rank = value_rank.Value.Value if value_rank.StatusCode.is_good() else -2
    mismatch = vtype is not None and not accepts(p.value_type, vtype)
    mismatch |= (p.array and rank == -1) or (not p.array and isinstance(rank, int) and rank >= 1)
    if mismatch:
        upstream = f"{vtype.name if vtype else data_type.Value.Value.to_string()}, ValueRank {rank}"
        return None, int(Status.BadTypeMismatch), f"the server's node is {upstream}; the tag is {type_text(p)}"
    return vtype or VARIANT_TYPES[p.value_type], int(Status.Good), ""


def subscription_parameters(publishing_interval_s: float, keepalive_count: int) -> ua.CreateSubscriptionParameters:
    keepalive = max(1, min(keepalive_count, 100))
    return ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=publishing_interval_s * 1000,
        RequestedLifetimeCount=keepalive * 3,
        RequestedMaxKeepAliveCount=keepalive,
        PublishingEnabled=True,
    )


def monitored_item(handle: int, p: OpcUaPoint, node: ua.NodeId) -> ua.MonitoredItemCreateRequest:
    """One monitored item: *p*'s sampling interval, queue size and deadband; *handle* names it in notifications."""
    mfilter = None
    if p.deadband_type != "none":
        mfilter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=_DEADBANDS[p.deadband_type], DeadbandValue=p.deadband_value)
    mparams = ua.MonitoringParameters(
        ClientHandle=handle, SamplingInterval=p.sampling_interval_s * 1000, Filter=mfilter, QueueSize=p.queue_size, DiscardOldest=True
    )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value), MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=mparams
    )
