"""Monitored items as the client asks them (edge/opcua/sampling.py): the pure rules in tables, then a
real asyncua client against the gateway's server: revised sampling interval and queue size,
MinimumSamplingInterval, an item sampled at its own rate, percent and absolute deadbands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from asyncua import Client, ua

from drivers.sample import Status, TagSample
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua import sampling
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:test-sampling"


@pytest.mark.parametrize(
    "requested, publishing, node_min, revised",
    [(-1, 250, 100, 250), (0, 250, 100, 100), (10, 250, 100, 100), (2000, 250, 100, 2000), (0, 250, 0, 0), (-1, 50, 500, 500)],
)
def test_revised_sampling_interval(requested: float, publishing: float, node_min: float, revised: float) -> None:
    assert sampling.revise_sampling_ms(requested, publishing, node_min) == revised


@pytest.mark.parametrize("requested, revised", [(0, 1), (1, 1), (5, 5), (50_000, 10_000)])
def test_revised_queue_size(requested: int, revised: int) -> None:
    assert sampling.revise_queue_size(requested, 10_000) == revised


def _filter(kind: ua.DeadbandType, value: float) -> ua.DataChangeFilter:
    return ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=kind, DeadbandValue=value)


@pytest.mark.parametrize(
    "flt, numeric, span, status",
    [
        (None, False, None, None),
        (_filter(ua.DeadbandType.None_, 0), False, None, None),
        (_filter(ua.DeadbandType.Absolute, 1.0), True, None, None),
        (_filter(ua.DeadbandType.Absolute, 1.0), False, None, ua.StatusCodes.BadFilterNotAllowed),
        (_filter(ua.DeadbandType.Absolute, -1.0), True, None, ua.StatusCodes.BadDeadbandFilterInvalid),
        (_filter(ua.DeadbandType.Percent, 5.0), True, 100.0, None),
        (_filter(ua.DeadbandType.Percent, 5.0), True, None, ua.StatusCodes.BadFilterNotAllowed),
        (_filter(ua.DeadbandType.Percent, 150.0), True, 100.0, ua.StatusCodes.BadDeadbandFilterInvalid),
    ],
)
def test_filter_rules(flt, numeric: bool, span: float | None, status: int | None) -> None:
    assert sampling.filter_problem(flt, numeric, span) == status


def _dv(value: float, status: int = Status.Good) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, ua.VariantType.Double), StatusCode=ua.StatusCode(status))


def test_deadband_compares_with_the_last_reported_value() -> None:
    """A slow drift is reported once it has moved more than the deadband from the last reported value."""
    reported, last = [], None
    for v in (50.0, 50.4, 50.8, 51.2, 51.5, 52.3):
        if sampling.changed(last, _dv(v), ua.DataChangeTrigger.StatusValue, 1.0):
            reported.append(v)
            last = _dv(v)
    assert reported == [50.0, 51.2, 52.3]
    assert sampling.changed(_dv(50.0), _dv(50.0, Status.UncertainLastUsableValue), ua.DataChangeTrigger.StatusValue, 1.0)
    assert sampling.absolute_deadband(_filter(ua.DeadbandType.Percent, 10.0), 40.0) == 4.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(free_port_factory):
    reg = TagRegistry()
    reg.add(TagInfo("plc.level", ("Devices", "plc", "level"), "float64", "m", 0.0, 100.0, device="plc", sampling_interval_s=0.1))
    reg.add(TagInfo("plc.flow", ("Devices", "plc", "flow"), "float64", "m3/h", device="plc", sampling_interval_s=0.1))
    reg.add(TagInfo("plc.label", ("Devices", "plc", "label"), "string", device="plc", sampling_interval_s=0.1))
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw"), Client(url, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        yield reg, client, lambda path: client.get_node(ua.NodeId(f"gw/{path}", ns))


def _publish(reg: TagRegistry, key: str, value: float) -> None:
    now = datetime.now(UTC)
    reg.publish([TagSample(key, value, Status.Good, now, now)])


class Collect:
    def __init__(self) -> None:
        self.values: list[float] = []

    def datachange_notification(self, node, val, data) -> None:
        self.values.append(val)


@pytest.mark.asyncio(loop_scope="module")
async def test_revised_parameters_and_minimum_sampling_interval(served) -> None:
    _, client, node = served
    level = node("Devices/plc/level")
    assert (await level.read_attribute(ua.AttributeIds.MinimumSamplingInterval)).Value.Value == 100.0
    sub = await client.create_subscription(250, Collect())
    try:
        requests = []
        for handle, (interval, queue) in enumerate([(-1, 0), (0, 0), (10, 5), (2000, 1)], start=1):
            params = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=interval, QueueSize=queue, DiscardOldest=True)
            requests.append(
                ua.MonitoredItemCreateRequest(ItemToMonitor=ua.ReadValueId(NodeId=level.nodeid, AttributeId=ua.AttributeIds.Value), RequestedParameters=params)
            )
        results = await client.uaclient.create_monitored_items(ua.CreateMonitoredItemsParameters(SubscriptionId=sub.subscription_id, ItemsToCreate=requests))
        assert [(r.RevisedSamplingInterval, r.RevisedQueueSize) for r in results] == [(250.0, 1), (100.0, 1), (100.0, 5), (2000.0, 1)]
    finally:
        await sub.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_an_item_is_sampled_at_its_own_interval_and_ends_on_the_latest_value(served) -> None:
    """Changes every 50 ms for 2.2 s: a 1,000 ms item sees the initial value, then one value per
    second, the last one being the latest; a 0 ms item sees every change."""
    reg, client, node = served
    _publish(reg, "plc.flow", 0.0)
    await asyncio.sleep(0.2)
    slow, fast = Collect(), Collect()
    sub_slow, sub_fast = await client.create_subscription(50, slow), await client.create_subscription(50, fast)
    try:
        await sub_slow.subscribe_data_change(node("Devices/plc/flow"), sampling_interval=1000)
        await sub_fast.subscribe_data_change(node("Devices/plc/flow"), sampling_interval=0, queuesize=100)
        await asyncio.sleep(0.3)
        for i in range(1, 45):
            _publish(reg, "plc.flow", float(i))
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.3)  # the last interval ends: its held value is reported
        assert 3 <= len(slow.values) <= 4, slow.values
        assert slow.values[0] == 0.0 and slow.values[-1] == 44.0
        assert len(fast.values) >= 40 and fast.values[-1] == 44.0
    finally:
        await sub_slow.delete()
        await sub_fast.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_percent_deadband_on_the_eu_range_and_refused_without_one(served) -> None:
    reg, client, node = served
    _publish(reg, "plc.level", 50.0)
    got = Collect()
    sub = await client.create_subscription(50, got)
    try:
        await sub.deadband_monitor(node("Devices/plc/level"), 10.0, deadbandtype=ua.DeadbandType.Percent)  # 10 % of 0..100
        await asyncio.sleep(0.3)
        for v in (55.0, 58.0, 61.0, 65.0, 49.0):
            _publish(reg, "plc.level", v)
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)
        assert got.values == [50.0, 61.0, 49.0]
        for path, dtype in (("Devices/plc/flow", ua.DeadbandType.Percent), ("Devices/plc/label", ua.DeadbandType.Absolute)):
            with pytest.raises(ua.UaStatusCodeError) as info:
                await sub.deadband_monitor(node(path), 1.0, deadbandtype=dtype)
            assert info.value.code == ua.StatusCodes.BadFilterNotAllowed
    finally:
        await sub.delete()
