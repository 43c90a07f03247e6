"""The standard Server object's capabilities, read by a real client from a server with history."""

from __future__ import annotations

from asyncua import Client, ua

from edge.core.registry import TagInfo, TagRegistry
from edge.history.recorder import HistoryRecorder
from edge.history.store import HistoryStore
from edge.opcua import capabilities
from edge.opcua.history_read import OpcUaHistory
from edge.opcua.server import OpcUaServer


def test_min_sample_rate_is_the_fastest_known_rate_or_zero_when_one_is_unknown() -> None:
    assert capabilities.min_sample_rate_ms([0.5, 0.1, 2.0]) == 100.0
    assert capabilities.min_sample_rate_ms([0.5, None]) == 0.0
    assert capabilities.min_sample_rate_ms([]) == 0.0


def test_no_history_no_history_capabilities() -> None:
    caps = capabilities.server_capabilities(history_values=None, min_sample_ms=0.0, queue_cap=10)
    ids = ua.ObjectIds
    assert caps[ids.Server_ServerCapabilities_ServerProfileArray][0] == [capabilities.MICRO_EMBEDDED]
    assert caps[ids.HistoryServerCapabilities_AccessHistoryDataCapability][0] is False
    assert caps[ids.HistoryServerCapabilities_MaxReturnDataValues][0] == 0


async def test_a_client_reads_the_capabilities_the_server_really_has(tmp_path, free_port) -> None:
    reg = TagRegistry()
    reg.add(TagInfo("plc.level", ("Devices", "plc", "level"), "float64", device="plc", sampling_interval_s=0.25))
    url = f"opc.tcp://127.0.0.1:{free_port}/edgetwin"
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=1, max_db_mb=10)
    async with HistoryRecorder(store, reg, ["plc.level"], flush_interval_s=0.05) as recorder:
        history = OpcUaHistory(recorder, max_page=321)
        async with OpcUaServer(reg, endpoint=url, namespace_uri="urn:test:caps", gateway_name="gw", extensions=[history]), Client(url, timeout=5) as client:

            async def value(nid: int):
                return await client.get_node(ua.NodeId(nid)).read_value()

            ids = ua.ObjectIds
            assert await value(ids.Server_ServerCapabilities_ServerProfileArray) == [capabilities.MICRO_EMBEDDED, capabilities.HISTORICAL_RAW]
            assert await value(ids.Server_ServerCapabilities_LocaleIdArray) == ["en"]
            # the registry holds the server's own diagnostics too, whose rate is unknown: exception-based
            assert await value(ids.Server_ServerCapabilities_MinSupportedSampleRate) == 0.0
            assert await value(ids.Server_ServerCapabilities_MaxMonitoredItemsQueueSize) == capabilities.subscription_queue_cap() == 10_000
            assert await value(ids.HistoryServerCapabilities_AccessHistoryDataCapability) is True
            assert await value(ids.HistoryServerCapabilities_AccessHistoryEventsCapability) is False
            assert await value(ids.HistoryServerCapabilities_MaxReturnDataValues) == 321
            assert await value(ids.HistoryServerCapabilities_ServerTimestampSupported) is True
            for name in ("InsertDataCapability", "UpdateDataCapability", "DeleteRawCapability", "InsertAnnotationCapability"):
                assert await value(getattr(ids, f"HistoryServerCapabilities_{name}")) is False
            assert await value(ids.Server_ServerDiagnostics_EnabledFlag) is True  # edge.opcua.server_diagnostics
            assert await value(ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead) > 0
