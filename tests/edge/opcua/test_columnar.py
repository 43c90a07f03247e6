"""The columnar publish path (drivers/columns.py, edge/opcua/{columnar,column_items,column_wire}.py):
the encoding against asyncua's over generated values, the registry's latest samples, then a real
asyncua client over loopback: values, status, timestamps, deadbands, a sampling interval, Read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.ua.ua_binary import struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.columns import SampleColumns, from_ticks, ticks
from drivers.sample import Status, TagSample
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua import fastpath, wire
from edge.opcua.column_wire import encode_rows
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:test-columnar"
STATUSES = [Status.Good, Status.UncertainLastUsableValue, Status.BadCommunicationError, Status.BadNoCommunication]
stamps = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
rows = st.tuples(st.integers(0, 2**32 - 1), st.floats(), st.sampled_from(STATUSES), stamps, stamps)


@settings(max_examples=200, deadline=None)
@given(st.lists(rows, max_size=20))
def test_rows_are_encoded_as_asyncua_encodes_their_notifications(items) -> None:
    """Good and Uncertain rows carry their Double, Bad rows a null value; each notification's bytes
    are asyncua's; Bad rows come after the others."""
    items = sorted(items, key=lambda r: bool(r[2] & 0x80000000))  # the order encode_rows writes
    got = encode_rows(
        np.array([r[0] for r in items], dtype=np.uint32),
        np.array([r[1] for r in items], dtype=np.float64),
        np.array([r[2] for r in items], dtype=np.uint32),
        np.array([ticks(r[3]) for r in items], dtype=np.int64),
        np.array([ticks(r[4]) for r in items], dtype=np.int64),
    )
    expected = b"".join(
        struct_to_binary(ua.MonitoredItemNotification(ClientHandle=h, Value=fastpath.datavalue(v, ua.VariantType.Double, s, src, srv)))
        for h, v, s, src, srv in items
    )
    assert got == expected


def test_a_batch_reads_as_samples_and_bad_rows_carry_no_value() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    batch = SampleColumns.stamped(("a", "b"), np.array([1.5, 2.5]), np.array([Status.Good, Status.BadTimeout], dtype=np.uint32), when)
    assert list(batch) == [TagSample("a", 1.5, Status.Good, when, when), TagSample("b", None, Status.BadTimeout, when, when)]
    assert batch[-1].tag == "b" and from_ticks(ticks(when)) == when
    with pytest.raises(ValueError, match="shape"):
        SampleColumns(("a",), np.zeros(2), np.zeros(1), np.zeros(1), np.zeros(1))


def test_registry_latest_follows_columns_and_samples_published_alone() -> None:
    reg = TagRegistry()
    for k in ("d.a", "d.b"):
        reg.add(TagInfo(k, ("Devices", "d", k[2:]), device="d"))
    keys = ("d.a", "d.b")
    seen: list[int] = []
    reg.subscribe(lambda batch: seen.append(len(batch)))
    t0 = datetime.now(UTC)
    reg.publish(SampleColumns.stamped(keys, np.array([1.0, 2.0]), Status.Good, t0))
    assert reg.latest("d.b").value == 2.0
    reg.mark_stale(["d.b"], at=t0 + timedelta(seconds=1))  # a sample of d.b alone: newer than the columns
    assert reg.latest("d.b").status == Status.UncertainNoCommunicationLastUsableValue and reg.latest("d.b").value == 2.0
    reg.publish(SampleColumns.stamped(keys, np.array([3.0, 4.0]), Status.Good, t0))
    assert (reg.latest("d.a").value, reg.latest("d.b").value, reg.latest("d.b").status) == (3.0, 4.0, Status.Good)
    reg.remove(["d.a"])
    assert reg.latest("d.b").value == 4.0
    assert seen == [2, 1, 2]
    with pytest.raises(KeyError, match=r"d\.a"):
        reg.publish(SampleColumns.stamped(("d.a", "d.b"), np.array([1.0, 2.0]), Status.Good, t0))


# -- a real server and client ------------------------------------------------------------------
KEYS = ("plc.level", "plc.flow", "plc.temp")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(free_port_factory):
    reg = TagRegistry()
    reg.add(TagInfo("plc.level", ("Devices", "plc", "level"), "float64", "m", 0.0, 100.0, device="plc", sampling_interval_s=0.1))
    reg.add(TagInfo("plc.flow", ("Devices", "plc", "flow"), "float64", "m3/h", device="plc", sampling_interval_s=0.1))
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", "degC", device="plc", sampling_interval_s=0.1))
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw") as server, Client(url, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        yield reg, server, client, lambda path: client.get_node(ua.NodeId(f"gw/{path}", ns))


def _columns(level: float, flow: float, temp: float, status: list[int] | None = None, when: datetime | None = None) -> SampleColumns:
    st_ = np.array(status or [Status.Good] * 3, dtype=np.uint32)
    return SampleColumns.stamped(KEYS, np.array([level, flow, temp]), st_, when or datetime.now(UTC))


class Collect:
    def __init__(self) -> None:
        self.values: list[ua.DataValue] = []

    def datachange_notification(self, node, val, data) -> None:
        self.values.append(data.monitored_item.Value)


async def _settle(server: OpcUaServer) -> None:
    await server.drain()
    await asyncio.sleep(0.35)


@pytest.mark.asyncio(loop_scope="module")
async def test_values_status_and_timestamps_reach_a_client_and_read(served) -> None:
    """Each batch's value, status and both timestamps; a Bad row is a null value with its status,
    an Uncertain one keeps its value; a Read returns the latest column value."""
    reg, server, client, node = served
    t0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    reg.publish(_columns(10.0, 1.0, 20.0, when=t0))
    await server.drain()
    got = Collect()
    sub = await client.create_subscription(50, got)
    try:
        await sub.subscribe_data_change(node("Devices/plc/flow"))
        await asyncio.sleep(0.3)
        before = server._writer.columns.notifications  # type: ignore[union-attr]
        t1, t2, t3 = (t0 + timedelta(seconds=i) for i in (1, 2, 3))
        reg.publish(_columns(11.0, 2.0, 21.0, when=t1))
        await _settle(server)
        reg.publish(_columns(12.0, 3.0, 22.0, [Status.Good, Status.BadCommunicationError, Status.Good], when=t2))
        await _settle(server)
        reg.publish(_columns(13.0, 3.0, 23.0, [Status.Good, Status.UncertainLastUsableValue, Status.Good], when=t3))
        await _settle(server)
        seen = [(dv.Value.Value, dv.StatusCode.value, dv.SourceTimestamp, dv.ServerTimestamp) for dv in got.values]
        assert seen == [
            (1.0, Status.Good, t0, t0),
            (2.0, Status.Good, t1, t1),
            (None, Status.BadCommunicationError, t2, t2),
            (3.0, Status.UncertainLastUsableValue, t3, t3),
        ]
        # the groups are rebuilt at most every REBUILD_MIN_S: the first batch after subscribing may go per item
        assert server._writer.columns.notifications - before >= 2  # type: ignore[union-attr]
        read = await node("Devices/plc/level").read_data_value()
        assert (read.Value.Value, read.StatusCode.value, read.SourceTimestamp) == (13.0, Status.Good, t3)
        assert reg.latest("plc.temp").value == 23.0
    finally:
        await sub.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_absolute_and_percent_deadbands_against_the_last_reported_value(served) -> None:
    reg, server, client, node = served
    reg.publish(_columns(50.0, 5.0, 0.0))
    await server.drain()
    percent, absolute = Collect(), Collect()
    sub_p, sub_a = await client.create_subscription(50, percent), await client.create_subscription(50, absolute)
    try:
        await sub_p.deadband_monitor(node("Devices/plc/level"), 10.0, deadbandtype=ua.DeadbandType.Percent)  # 10 % of 0..100
        await sub_a.deadband_monitor(node("Devices/plc/flow"), 1.0, deadbandtype=ua.DeadbandType.Absolute)
        await asyncio.sleep(0.3)
        for level, flow in ((55.0, 5.4), (58.0, 5.8), (61.0, 6.2), (65.0, 6.5), (49.0, 7.3)):
            reg.publish(_columns(level, flow, 0.0))
            await _settle(server)
        assert [dv.Value.Value for dv in percent.values] == [50.0, 61.0, 49.0]
        assert [dv.Value.Value for dv in absolute.values] == [5.0, 6.2, 7.3]
        reg.mark_stale(["plc.flow"])  # published alone, per sample: status travels, and the group follows it
        await _settle(server)
        reg.publish(_columns(49.0, 7.3, 0.0))  # the same value, Good again: reported although within the deadband
        await _settle(server)
        assert [(dv.Value.Value, dv.StatusCode.value) for dv in absolute.values[3:]] == [
            (7.3, Status.UncertainNoCommunicationLastUsableValue),
            (7.3, Status.Good),
        ]
    finally:
        await sub_p.delete()
        await sub_a.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_an_item_with_its_own_sampling_interval_takes_the_latest_value(served) -> None:
    """A 1,000 ms item on a columnar node (per-item path) next to a 0 ms one (columnar): changes
    every 50 ms for 2.2 s."""
    reg, server, client, node = served
    reg.publish(_columns(0.0, 0.0, 0.0))
    await server.drain()
    slow, fast = Collect(), Collect()
    sub_slow, sub_fast = await client.create_subscription(50, slow), await client.create_subscription(50, fast)
    try:
        await sub_slow.subscribe_data_change(node("Devices/plc/temp"), sampling_interval=1000)
        await sub_fast.subscribe_data_change(node("Devices/plc/temp"), sampling_interval=0)
        await asyncio.sleep(0.3)
        for i in range(1, 45):
            reg.publish(_columns(0.0, 0.0, float(i)))
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.3)
        values = [dv.Value.Value for dv in slow.values]
        assert 3 <= len(values) <= 4 and values[0] == 0.0 and values[-1] == 44.0, values
        fast_values = [dv.Value.Value for dv in fast.values]
        assert len(fast_values) >= 20 and fast_values[-1] == 44.0 and fast_values == sorted(fast_values)
    finally:
        await sub_slow.delete()
        await sub_fast.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_client_write_is_the_node_value_until_the_next_batch(served) -> None:
    reg, server, _, node = served
    reg.publish(_columns(1.0, 2.0, 3.0))
    await server.drain()
    assert (await node("Devices/plc/level").read_value()) == 1.0
    aspace = server.ua_server.iserver.aspace
    level = node("Devices/plc/level").nodeid
    await aspace.write_attribute_value(level, ua.AttributeIds.Value, ua.DataValue(ua.Variant(9.0, ua.VariantType.Double)))
    assert (await node("Devices/plc/level").read_value()) == 9.0
    reg.publish(_columns(4.0, 5.0, 6.0))
    await server.drain()
    assert (await node("Devices/plc/level").read_value()) == 4.0
    assert wire.item_count([]) == 0


def test_the_asyncua_internals_of_the_columnar_path_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_columnar`` passes on the installed asyncua and names what moved otherwise."""
    from asyncua.server.internal_subscription import InternalSubscription

    from edge.opcua import asyncua_patches
    from edge.opcua.asyncua_patches import layouts

    asyncua_patches.check_columnar()
    monkeypatch.setattr(layouts, "_COLUMNAR", [])

    def _pop_triggered_datachanges(self, result) -> None:
        result.NotificationMessage.NotificationData.append(list(self._triggered_datachanges.values()))

    monkeypatch.setattr(InternalSubscription, "_pop_triggered_datachanges", _pop_triggered_datachanges)
    with pytest.raises(RuntimeError, match="_pop_triggered_datachanges no longer has"):
        asyncua_patches.check_columnar()


async def test_merged_batches_keep_columns_and_only_newer_samples_of_their_tags() -> None:
    """Behind a busy loop: the latest columnar batch of a key tuple stays columns; a sample of one
    of its tags published alone before it is superseded, one published after it is kept."""
    from edge.opcua.publish import NodeWriter

    now = datetime.now(UTC)
    keys = ("d.a", "d.b")
    old, new = (SampleColumns.stamped(keys, np.array([v, v]), Status.Good, now) for v in (1.0, 2.0))
    before, after = TagSample("d.a", 0.5, Status.Good, now, now), TagSample("d.b", 3.0, Status.UncertainLastUsableValue, now, now)
    other = TagSample("x", 7.0, Status.Good, now, now)
    queue: asyncio.Queue = asyncio.Queue()
    for b in (old, [before, other], new, [after]):
        queue.put_nowait(b)
    writer = NodeWriter(None, {}, {})
    merged, taken = await writer.next_batch(queue)
    assert taken == 4 and merged[0] is new
    assert list(merged[1]) == [other, after]
    assert writer.coalesced == 3  # old's two rows and `before`


@pytest.mark.asyncio(loop_scope="module")
async def test_a_disabled_item_in_a_group_gets_nothing(served) -> None:
    reg, server, client, node = served
    reg.publish(_columns(1.0, 1.0, 1.0))
    await server.drain()
    got = Collect()
    sub = await client.create_subscription(50, got)
    try:
        handle = await sub.subscribe_data_change(node("Devices/plc/level"))
        await asyncio.sleep(0.6)  # past REBUILD_MIN_S: the next batch rebuilds the groups with the item
        reg.publish(_columns(2.0, 1.0, 1.0))
        await _settle(server)
        await sub.set_monitoring_mode(ua.MonitoringMode.Disabled)
        before = server._writer.columns.notifications  # type: ignore[union-attr]
        for v in (3.0, 4.0):
            reg.publish(_columns(v, 1.0, 1.0))
            await _settle(server)
        assert [dv.Value.Value for dv in got.values] == [1.0, 2.0]
        assert server._writer.columns.notifications == before
        assert handle
    finally:
        await sub.delete()
