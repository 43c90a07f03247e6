"""The publish loop's fast path (edge.opcua.fastpath, sampling.feed, wire): what a client receives is
what asyncua's own path delivered: values, statuses, both timestamps, queue size and DiscardOldest;
monitored items outside the gateway's policy still get every value."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, ua

from drivers.sample import Status, TagSample
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:fastpath"


class Collect:
    def __init__(self) -> None:
        self.items: list[tuple[int, ua.DataValue]] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.items.append((data.monitored_item.ClientHandle, data.monitored_item.Value))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(free_port_factory):
    reg = TagRegistry()
    reg.add(TagInfo("plc.a", ("Devices", "plc", "a"), "float64", device="plc", sampling_interval_s=0.05))
    reg.add(TagInfo("plc.n", ("Devices", "plc", "n"), "uint16", device="plc", sampling_interval_s=0.05))
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw") as server, Client(url, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        yield reg, server, client, lambda path: client.get_node(ua.NodeId(f"gw/{path}", ns))


async def _publish(reg: TagRegistry, server: OpcUaServer, key: str, value: Any, status: int = Status.Good, at: datetime | None = None) -> TagSample:
    at = at or datetime.now(UTC)
    sample = TagSample(key, value, status, at, at + timedelta(milliseconds=3))
    reg.publish([sample])
    await server.drain()
    return sample


async def _wait_for(got: Collect, n: int) -> None:
    for _ in range(150):
        if len(got.items) >= n:
            return
        await asyncio.sleep(0.02)


@pytest.mark.asyncio(loop_scope="module")
async def test_statuses_and_timestamps_reach_the_client_unchanged(served) -> None:
    """Good, Uncertain and Bad samples go through the fast path (counted) and arrive with their
    status and both timestamps; a Bad one with a null value, as asyncua makes it."""
    reg, server, client, node = served
    await _publish(reg, server, "plc.a", 1.0)
    got = Collect()
    sub = await client.create_subscription(50, got)
    try:
        await sub.subscribe_data_change(node("Devices/plc/a"), queuesize=10)
        await _wait_for(got, 1)
        fast_before = server._writer.fast_writes  # type: ignore[union-attr]
        sent = [
            await _publish(reg, server, "plc.a", 2.5),
            await _publish(reg, server, "plc.a", 2.5, Status.UncertainLastUsableValue),
            await _publish(reg, server, "plc.a", None, Status.BadCommunicationError),
            await _publish(reg, server, "plc.a", 3, Status.Good),  # an int for a Double: as float, like to_datavalue
        ]
        await _wait_for(got, 5)
        assert server._writer.fast_writes - fast_before == 4  # type: ignore[union-attr]
        received = [dv for _, dv in got.items[1:]]
        assert [(dv.Value.Value, dv.StatusCode.value) for dv in received] == [
            (2.5, Status.Good),
            (2.5, Status.UncertainLastUsableValue),
            (None, Status.BadCommunicationError),
            (3.0, Status.Good),
        ]
        assert [(dv.SourceTimestamp, dv.ServerTimestamp) for dv in received] == [(s.source_time, s.server_time) for s in sent]
        read = await node("Devices/plc/a").read_data_value()
        assert (read.Value.Value, read.Value.VariantType, read.SourceTimestamp) == (3.0, ua.VariantType.Double, sent[-1].source_time)
    finally:
        await sub.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_queue_size_and_discard_oldest(served) -> None:
    """Five changes within one publishing interval, queue size 2: DiscardOldest keeps the last two,
    DiscardOldest = false the first and the latest."""
    reg, server, client, node = served
    await _publish(reg, server, "plc.a", 0.0)
    got = Collect()
    sub = await client.create_subscription(600, got)
    try:
        nid = node("Devices/plc/a").nodeid
        requests = [
            ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=nid, AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting,
                RequestedParameters=ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=0, QueueSize=2, DiscardOldest=discard),
            )
            for handle, discard in ((1, True), (2, False))
        ]
        results = await sub.create_monitored_items(requests)
        assert all(isinstance(r, int) for r in results)
        await _wait_for(got, 2)
        await asyncio.sleep(0.7)  # the initial values are out; the next cycle collects the changes
        got.items.clear()
        for v in (1.0, 2.0, 3.0, 4.0, 5.0):
            await _publish(reg, server, "plc.a", v)
        await _wait_for(got, 4)
        by_handle = {h: [dv.Value.Value for hh, dv in got.items if hh == h] for h in (1, 2)}
        assert by_handle == {1: [4.0, 5.0], 2: [1.0, 5.0]}
    finally:
        await sub.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_items_outside_the_policy_and_values_a_node_cannot_take(served) -> None:
    """The server's own internal subscription (asyncua's callback) still gets each value; a value
    out of the node's range leaves it Bad through asyncua's path, and the next good one is fast again."""
    reg, server, client, node = served
    internal = Collect()
    own = await server.ua_server.create_subscription(50, internal)
    got = Collect()
    sub = await client.create_subscription(50, got)
    try:
        await own.subscribe_data_change(server.ua_server.get_node(node("Devices/plc/a").nodeid))
        await _publish(reg, server, "plc.a", 7.0)
        await _wait_for(internal, 2)
        assert internal.items[-1][1].Value.Value == 7.0

        await sub.subscribe_data_change(node("Devices/plc/n"), queuesize=10)
        await _publish(reg, server, "plc.n", 5)
        await _wait_for(got, 1)
        failures = server.publish_failures
        await _publish(reg, server, "plc.n", 70000)  # does not fit a UInt16
        await _publish(reg, server, "plc.n", 6)
        await _wait_for(got, 3)
        assert server.publish_failures == failures + 1
        assert [(dv.Value.Value, dv.StatusCode.value) for _, dv in got.items[-2:]] == [(None, Status.BadTypeMismatch), (6, Status.Good)]
    finally:
        await sub.delete()
        await own.delete()


async def test_batches_waiting_behind_a_busy_loop_are_merged_to_the_latest_value_per_tag() -> None:
    """One or two batches waiting: taken one by one. More: all at once, latest sample of each tag
    (in the order tags first appeared), superseded samples counted."""
    from edge.opcua.publish import COALESCE_AFTER, NodeWriter, latest_per_tag

    now = datetime.now(UTC)

    def batch(*pairs: tuple[str, float]) -> list[TagSample]:
        return [TagSample(tag, v, Status.Good, now, now) for tag, v in pairs]

    assert [(s.tag, s.value) for s in latest_per_tag([batch(("a", 1), ("b", 1)), batch(("c", 2), ("a", 2))])] == [("a", 2), ("b", 1), ("c", 2)]
    writer = NodeWriter(None, {}, {})
    queue: asyncio.Queue[list[TagSample]] = asyncio.Queue()
    for b in (batch(("a", 1)), batch(("b", 1))):
        queue.put_nowait(b)
    assert (await writer.next_batch(queue))[1] == 1 and writer.coalesced == 0
    queue.get_nowait()
    for i in range(COALESCE_AFTER + 1):
        queue.put_nowait(batch(("a", float(i)), (f"x{i}", 0.0)))
    (merged,), taken = await writer.next_batch(queue)
    assert taken == COALESCE_AFTER + 1 and queue.empty()
    assert [(s.tag, s.value) for s in merged] == [("a", float(COALESCE_AFTER)), *((f"x{i}", 0.0) for i in range(COALESCE_AFTER + 1))]
    assert writer.coalesced == COALESCE_AFTER


@pytest.mark.asyncio
@pytest.mark.parametrize(("slice_s", "yields"), [(0.0, 9), (3600.0, 0)])
async def test_a_large_batch_gives_the_loop_back_by_time(monkeypatch: pytest.MonkeyPatch, slice_s: float, yields: int) -> None:
    """The per-sample path yields once ``SLICE_S`` has passed (the clock looked at every
    ``CHECK_EVERY`` samples), never in the middle of a batch that fits in its slice."""
    from edge.opcua import publish

    monkeypatch.setattr(publish, "SLICE_S", slice_s)
    now = datetime.now(UTC)
    batch = [TagSample(f"t{i}", 1.0, Status.Good, now, now) for i in range(10 * publish.CHECK_EVERY)]
    writer = publish.NodeWriter(None, {}, {})
    ran = 0

    async def other() -> None:
        nonlocal ran
        while True:
            await asyncio.sleep(0)
            ran += 1

    task = asyncio.create_task(other(), name="test:other")
    await asyncio.sleep(0)  # the other task is waiting on the loop
    before = ran
    await writer.write_batch(batch)
    during = ran - before
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert during == yields
