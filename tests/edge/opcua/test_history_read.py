"""History over OPC UA with a real asyncua client: HistoryRead, continuation points, restarts, retention."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from asyncua import Client, ua

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry
from edge.history.recorder import HistoryRecorder
from edge.history.store import HistoryRow, HistoryStore
from edge.opcua.history_read import OpcUaHistory, to_datavalue
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:test-history"
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _registry() -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", "degC", device="plc"))
    reg.add(TagInfo("plc.run", ("Devices", "plc", "run"), "bool", device="plc"))
    reg.add(TagInfo("plc.count", ("Devices", "plc", "count"), "uint32", device="plc"))
    reg.add(TagInfo("plc.not_kept", ("Devices", "plc", "not_kept"), "float64", device="plc"))
    reg.add(TagInfo("tank.temp.estimate", ("Assets", "tank", "temp", "Estimate"), "float64"))
    reg.add(TagInfo("plc.level", ("Devices", "plc", "level"), "float64", "m", device="plc"))
    return reg


KEPT = ("plc.temp", "plc.run", "plc.count", "tank.temp.estimate", "plc.level")


@asynccontextmanager
async def _gateway(state_dir, port: int, *, max_page: int = 1000, flush_interval_s: float = 0.05):
    """Registry -> recorder -> OPC UA server with history, entered and left in the app's order."""
    reg = _registry()
    store = HistoryStore(state_dir / "history.sqlite", retention_days=30, max_db_mb=64)
    url = f"opc.tcp://127.0.0.1:{port}/edgetwin"
    async with HistoryRecorder(store, reg, KEPT, flush_interval_s=flush_interval_s) as recorder:
        history = OpcUaHistory(recorder, max_page=max_page)
        async with (
            OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", extensions=[history]) as server,
            Client(url, timeout=5) as client,
        ):
            yield reg, recorder, server, client


async def _node(client: Client, path: str):
    ns = await client.get_namespace_index(NS)
    return client.get_node(ua.NodeId(f"gw/{path}", ns))


def _utc(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


async def _read_pages(node, start, end, per_page: int) -> tuple[list[ua.DataValue], int]:
    """Page through a raw history read with continuation points; return values and page count."""
    unset = ua.get_win_epoch()  # "not specified" on the wire
    details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start or unset, EndTime=end or unset, NumValuesPerNode=per_page, ReturnBounds=False)
    out: list[ua.DataValue] = []
    cp = None
    pages = 0
    while True:
        result = await node.history_read(details, cp)
        result.StatusCode.check()
        pages += 1
        assert len(result.HistoryData.DataValues) <= per_page
        out.extend(result.HistoryData.DataValues)
        cp = result.ContinuationPoint
        if cp is None:
            return out, pages
        assert pages < 1000, "server keeps returning continuation points"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory, free_port_factory):
    """One gateway for the module (asyncua loads its standard address space in about a second)."""
    async with _gateway(tmp_path_factory.mktemp("history"), free_port_factory(), max_page=50) as gw:
        yield gw


@pytest.mark.asyncio(loop_scope="module")
async def test_historized_nodes_advertise_history(served) -> None:
    """Historized variables have Historizing set and the HistoryRead access bit; others do not."""
    _, _, _, client = served
    temp = await _node(client, "Devices/plc/temp")
    assert (await temp.read_attribute(ua.AttributeIds.Historizing)).Value.Value is True
    for attr in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
        level = (await temp.read_attribute(attr)).Value.Value
        assert level & (1 << ua.AccessLevel.HistoryRead) and level & (1 << ua.AccessLevel.CurrentRead)
    other = await _node(client, "Devices/plc/not_kept")
    assert (await other.read_attribute(ua.AttributeIds.Historizing)).Value.Value is False
    assert not (await other.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value & (1 << ua.AccessLevel.HistoryRead)


@pytest.mark.asyncio(loop_scope="module")
async def test_continuation_points_return_every_sample_once_in_order(served) -> None:
    """Paging with NumValuesPerNode=4 returns all 30 samples exactly once, also where several samples
    share a source timestamp across a page boundary, forward and backward."""
    reg, _, _, client = served
    base = T0 + timedelta(days=1)
    # 30 samples, source times in pairs: (0,0),(1,1),... so page boundaries split equal timestamps
    samples = [TagSample("plc.count", i, Status.Good, base + timedelta(seconds=i // 2), base) for i in range(30)]
    for s in samples:
        reg.publish([s])
    node = await _node(client, "Devices/plc/count")
    start, end = base, base + timedelta(seconds=100)

    forward, pages = await _read_pages(node, start, end, per_page=4)
    assert [dv.Value.Value for dv in forward] == list(range(30))
    assert pages == 8
    assert all(dv.Value.VariantType == ua.VariantType.UInt32 for dv in forward)

    backward, _ = await _read_pages(node, end, start, per_page=4)
    assert [dv.Value.Value for dv in backward] == [v for pair in reversed(range(15)) for v in (2 * pair + 1, 2 * pair)]

    # only an end time: newest first from there
    newest, _ = await _read_pages(node, None, base + timedelta(seconds=1), per_page=3)
    assert [dv.Value.Value for dv in newest] == [3, 2, 1, 0]


@pytest.mark.asyncio(loop_scope="module")
async def test_server_page_limit_applies_when_the_client_asks_for_everything(served) -> None:
    """NumValuesPerNode=0 still pages (server limit 50 here), and asyncua's read_raw_history follows it."""
    reg, _, _, client = served
    base = T0 + timedelta(days=2)
    reg.publish([TagSample("tank.temp.estimate", float(i), Status.Good, base + timedelta(milliseconds=i), base) for i in range(120)])
    node = await _node(client, "Assets/tank/temp/Estimate")
    details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=base, EndTime=base + timedelta(seconds=1), NumValuesPerNode=0, ReturnBounds=False)
    first = await node.history_read(details)
    assert len(first.HistoryData.DataValues) == 50 and first.ContinuationPoint is not None
    everything = await node.read_raw_history(base, base + timedelta(seconds=1), return_bounds=False)
    assert [dv.Value.Value for dv in everything] == [float(i) for i in range(120)]


async def _read_bounds(node, start, end, per_page: int) -> list[tuple[object, str, datetime]]:
    details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=per_page, ReturnBounds=True)
    out, cp = [], None
    while True:
        result = await node.history_read(details, cp)
        result.StatusCode.check()
        out += [(dv.Value.Value, dv.StatusCode.name, _utc(dv.SourceTimestamp)) for dv in result.HistoryData.DataValues]
        cp = result.ContinuationPoint
        if cp is None:
            return out


@pytest.mark.asyncio(loop_scope="module")
async def test_return_bounds_adds_the_bounding_values_once_or_bad_bound_not_found(served) -> None:
    """ReturnBounds: the sample at or before StartTime and at or after EndTime (the other way round
    backward); a sample exactly at a bound is returned once; none there: BadBoundNotFound at the bound."""
    reg, _, _, client = served
    base = T0 + timedelta(days=3)
    at = {k: base + timedelta(seconds=k) for k in (5, 10, 15, 20, 25, 30, 35, 40, 50)}
    reg.publish([TagSample("plc.level", float(k), Status.Good, at[k], at[k]) for k in (10, 20, 30, 40)])
    node = await _node(client, "Devices/plc/level")

    def good(*ks: int) -> list[tuple[object, str, datetime]]:
        return [(float(k), "Good", at[k]) for k in ks]

    not_found = lambda k: [(None, "BadBoundNotFound", at[k])]  # noqa: E731
    for per_page in (100, 2, 1):  # the start bound comes with the first page, the end bound with the last
        assert await _read_bounds(node, at[15], at[35], per_page) == good(10, 20, 30, 40)
        assert await _read_bounds(node, at[20], at[30], per_page) == good(20, 30)  # exactly at the bounds: once
        assert await _read_bounds(node, at[5], at[25], per_page) == not_found(5) + good(10, 20, 30)
        assert await _read_bounds(node, at[35], at[50], per_page) == good(30, 40) + not_found(50)
        assert await _read_bounds(node, at[35], at[15], per_page) == good(40, 30, 20, 10)  # backward
    # without ReturnBounds: the samples inside the range only
    plain, _ = await _read_pages(node, at[15], at[35], per_page=10)
    assert [dv.Value.Value for dv in plain] == [20.0, 30.0]


@pytest.mark.parametrize(
    "details",
    [
        pytest.param(ua.ReadRawModifiedDetails(IsReadModified=True, StartTime=T0, EndTime=T0 + timedelta(days=9), NumValuesPerNode=10), id="modified"),
        pytest.param(ua.ReadEventDetails(StartTime=T0, EndTime=T0 + timedelta(days=9), NumValuesPerNode=10), id="events"),
        pytest.param(ua.ReadProcessedDetails(StartTime=T0, EndTime=T0 + timedelta(days=9), ProcessingInterval=1000.0), id="processed"),
        pytest.param(ua.ReadAtTimeDetails(ReqTimes=[T0]), id="at-time"),
    ],
)
@pytest.mark.asyncio(loop_scope="module")
async def test_history_reads_the_gateway_does_not_serve_are_refused_never_an_empty_good(served, details) -> None:
    _, _, _, client = served
    node = await _node(client, "Devices/plc/temp")
    result = await node.history_read(details)
    assert result.StatusCode.value == ua.StatusCodes.BadHistoryOperationUnsupported


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_continuation_point_is_refused(served) -> None:
    _, _, _, client = served
    node = await _node(client, "Devices/plc/temp")
    details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=T0, EndTime=T0 + timedelta(days=9), NumValuesPerNode=2, ReturnBounds=False)
    result = await node.history_read(details, b"not a continuation point")
    assert result.StatusCode.value == ua.StatusCodes.BadContinuationPointInvalid


@pytest.mark.asyncio(loop_scope="module")
async def test_node_without_history_is_refused(served) -> None:
    _, _, _, client = served
    node = await _node(client, "Devices/plc/not_kept")
    details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=T0, EndTime=T0 + timedelta(days=9), NumValuesPerNode=2, ReturnBounds=False)
    result = await node.history_read(details)
    assert result.StatusCode.is_bad()


async def test_history_survives_a_restart_with_status_and_timestamps(tmp_path, free_port_factory) -> None:
    """Samples accepted by the registry are read back after the gateway stops and starts again on the
    same state directory: values, status codes (Bad without a value), source and server timestamps."""
    published: list[TagSample] = []
    async with _gateway(tmp_path, free_port_factory(), flush_interval_s=60.0) as (reg, _, _, _):
        # a long flush interval: nothing is written before shutdown, so the final flush must do it
        for i, (value, status) in enumerate(
            [(20.5, Status.Good), (21.0, Status.UncertainNoCommunicationLastUsableValue), (None, Status.BadNoCommunication), (22.25, Status.Good)]
        ):
            t, arrived = T0 + timedelta(seconds=i), utcnow()  # producers stamp the arrival as server time
            run_status = status if value is not None else Status.BadNoCommunication
            reg.publish([TagSample("plc.temp", value, status, t, arrived), TagSample("plc.run", i % 2 == 0, run_status, t, arrived)])
        published = [reg.latest("plc.temp")]
    assert published[0].value == 22.25

    async with _gateway(tmp_path, free_port_factory()) as (_, recorder, _, client):
        assert recorder.store.count("plc.temp") == 4
        node = await _node(client, "Devices/plc/temp")
        dvs = await node.read_raw_history(T0, T0 + timedelta(seconds=10), return_bounds=False)
        assert [dv.Value.Value for dv in dvs] == [20.5, 21.0, None, 22.25]
        assert [dv.StatusCode.value for dv in dvs] == [Status.Good, Status.UncertainNoCommunicationLastUsableValue, Status.BadNoCommunication, Status.Good]
        assert [_utc(dv.SourceTimestamp) for dv in dvs] == [T0 + timedelta(seconds=i) for i in range(4)]
        assert all(_utc(dv.ServerTimestamp) >= _utc(dv.SourceTimestamp) for dv in dvs)
        assert _utc(dvs[-1].ServerTimestamp) == published[0].server_time
        run = await (await _node(client, "Devices/plc/run")).read_raw_history(T0, T0 + timedelta(seconds=10), return_bounds=False)
        assert [dv.Value.Value for dv in run] == [True, False, None, False]
        assert all(dv.Value.VariantType in (ua.VariantType.Boolean, ua.VariantType.Null) for dv in run)


@pytest.mark.asyncio(loop_scope="module")
async def test_retention_trims_by_age_and_history_read_no_longer_returns_old_rows(served) -> None:
    reg, recorder, _, client = served
    now = utcnow()
    old = now - timedelta(days=40)  # retention_days = 30
    recent = now - timedelta(days=1)
    # written straight to the store: age retention goes by arrival (server) time, and a sample
    # published today would not have arrived 40 days ago
    await asyncio.to_thread(recorder.store.append, [TagSample("plc.temp", 1.0, Status.Good, old, old)])
    reg.publish([TagSample("plc.temp", 2.0, Status.Good, recent, recent)])
    await recorder.flush()
    node = await _node(client, "Devices/plc/temp")
    assert [dv.Value.Value for dv in await node.read_raw_history(now - timedelta(days=60), now, return_bounds=False)] == [1.0, 2.0]
    await recorder.trim()
    assert [dv.Value.Value for dv in await node.read_raw_history(now - timedelta(days=60), now, return_bounds=False)] == [2.0]


@pytest.mark.parametrize(
    ("stored", "vtype", "expected"),
    [
        (1, ua.VariantType.Boolean, True),
        (0, ua.VariantType.Boolean, False),
        (3, ua.VariantType.Double, 3.0),
        (str(2**64 - 1), ua.VariantType.UInt64, 2**64 - 1),  # stored as text beyond int64
        ("text", ua.VariantType.String, "text"),
    ],
)
def test_stored_values_come_back_with_the_node_type(stored, vtype, expected) -> None:
    dv = to_datavalue(HistoryRow(1, 0, 0, Status.Good, stored), vtype)
    assert dv.Value.Value == expected and type(dv.Value.Value) is type(expected) and dv.Value.VariantType == vtype


def test_bad_rows_come_back_without_a_value() -> None:
    dv = to_datavalue(HistoryRow(1, 0, 0, Status.BadNoCommunication, 5.0), ua.VariantType.Double)
    assert dv.Value.Value is None and dv.StatusCode.value == Status.BadNoCommunication
