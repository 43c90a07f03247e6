"""The standard Server object's capabilities, filled in true to what this server does.

asyncua leaves ServerCapabilities and HistoryServerCapabilities empty, so generic tools and
historians that look there find nothing. ``server_capabilities`` (pure) says what the gateway's
server does; ``publish`` writes it into the address space before the server starts:

* ServerProfileArray: Micro Embedded Device Server 2017 (sessions, subscriptions, security), plus
  the Historical Raw Data facet when history runs;
* MinSupportedSampleRate: the fastest tag's MinimumSamplingInterval (its poll interval), 0 when
  some variable's rate is unknown (exception-based sampling);
* continuation points: none are held by the server (history continuation points are stateless,
  Browse answers in one go), so the maxima are 0, "no limit";
* MaxMonitoredItemsQueueSize: the subscription's cap on a monitored item's queue;
* HistoryServerCapabilities: raw data read (when history runs) with server timestamps, up to
  ``max_values_per_read`` values per node and response; no events, no inserts, updates, deletes
  or annotations;
* ServerDiagnostics.EnabledFlag is true: the server keeps its ServerDiagnosticsSummary
  (``edge.opcua.server_diagnostics``; the gateway's own counters are under Diagnostics/Gateway
  and in the Prometheus metrics).

OperationLimits are written by ``operation_limits.OperationLimits.advertise``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

MICRO_EMBEDDED = "http://opcfoundation.org/UA-Profile/Server/MicroEmbeddedDevice2017"
HISTORICAL_RAW = "http://opcfoundation.org/UA-Profile/Server/HistoricalRawData"

Values = dict[int, tuple[Any, ua.VariantType]]


def subscription_queue_cap() -> int:
    """asyncua's cap on a monitored item's queue (``InternalSubscription(max_queue_size=...)``)."""
    from asyncua.server.internal_subscription import InternalSubscription

    return int(inspect.signature(InternalSubscription.__init__).parameters["max_queue_size"].default)


def min_sample_rate_ms(sampling_intervals_s: Iterable[float | None]) -> float:
    """The fastest MinimumSamplingInterval of the variables (ms); 0 if one of them has none."""
    rates = list(sampling_intervals_s)
    if not rates or any(r is None or r <= 0 for r in rates):
        return 0.0
    return 1000.0 * min(r for r in rates if r is not None)


def server_capabilities(*, history_values: int | None, min_sample_ms: float, queue_cap: int) -> Values:
    """Node id -> (value, type) of the capabilities; *history_values* is ``max_values_per_read``
    when history runs, else None."""
    ids = ua.ObjectIds
    V = ua.VariantType
    history = history_values is not None
    profiles = [MICRO_EMBEDDED, *([HISTORICAL_RAW] if history else [])]
    values: Values = {
        ids.Server_ServerCapabilities_ServerProfileArray: (profiles, V.String),
        ids.Server_ServerCapabilities_LocaleIdArray: (["en"], V.String),
        ids.Server_ServerCapabilities_MinSupportedSampleRate: (float(min_sample_ms), V.Double),
        ids.Server_ServerCapabilities_MaxBrowseContinuationPoints: (0, V.UInt16),
        ids.Server_ServerCapabilities_MaxQueryContinuationPoints: (0, V.UInt16),
        ids.Server_ServerCapabilities_MaxHistoryContinuationPoints: (0, V.UInt16),
        ids.Server_ServerCapabilities_MaxMonitoredItemsQueueSize: (queue_cap, V.UInt32),
        ids.HistoryServerCapabilities_AccessHistoryDataCapability: (history, V.Boolean),
        ids.HistoryServerCapabilities_AccessHistoryEventsCapability: (False, V.Boolean),
        ids.HistoryServerCapabilities_MaxReturnDataValues: (history_values or 0, V.UInt32),
        ids.HistoryServerCapabilities_MaxReturnEventValues: (0, V.UInt32),
        ids.HistoryServerCapabilities_ServerTimestampSupported: (history, V.Boolean),
        ids.Server_ServerDiagnostics_EnabledFlag: (True, V.Boolean),
    }
    for name in (
        "InsertDataCapability", "ReplaceDataCapability", "UpdateDataCapability", "DeleteRawCapability", "DeleteAtTimeCapability",
        "InsertEventCapability", "ReplaceEventCapability", "UpdateEventCapability", "DeleteEventCapability", "InsertAnnotationCapability",
    ):  # fmt: skip
        values[getattr(ids, f"HistoryServerCapabilities_{name}")] = (False, V.Boolean)
    return values


async def set_build_info(ua_server: Any) -> None:
    """Server/ServerStatus/BuildInfo: ProductName edgetwin, the package version, and the kernel
    implementation in use as the BuildNumber (``kernels=cython`` or ``kernels=numpy``)."""
    import kernels
    from edge import __version__

    await ua_server.set_build_info(
        product_uri="urn:edgetwin",
        manufacturer_name="edgetwin",
        product_name="edgetwin",
        software_version=__version__,
        build_number=f"kernels={kernels.IMPLEMENTATION}",
        build_date=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def publish(ua_server: Any, values: Values) -> None:
    """Write *values* into the asyncua server's standard nodes."""
    for nid, (value, vtype) in values.items():
        variant = ua.Variant(value, vtype, is_array=isinstance(value, list))
        await ua_server.write_attribute_value(ua.NodeId(nid), ua.DataValue(variant))
