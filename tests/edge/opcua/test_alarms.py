"""Alarm conditions over OPC UA with a real asyncua client: raise, acknowledge, clear, refusals."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest
import pytest_asyncio
from asyncua import Client, ua
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.alarms import ACKNOWLEDGE_METHOD, AlarmSpec, OpcUaAlarms
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory

NS = "urn:edgetwin:test-alarms"
SPECS = [
    AlarmSpec("AnomalyAlarm", "tank.alarm", ("Assets", "tank"), 700, "flag", 9.0, text="tank anomaly score"),
    AlarmSpec("tempHighLimit", "plc.temp", ("Devices", "plc"), 500, "high", 80.0, 2.0, "plc.temp degC"),
    AlarmSpec("tempLowLimit", "plc.temp", ("Devices", "plc"), 300, "low", 5.0, 0.0, "plc.temp degC"),
]


def _registry() -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", "degC", device="plc"))
    reg.add(TagInfo("tank.alarm", ("Assets", "tank", "Alarm"), "bool"))
    reg.add(TagInfo("tank.anomaly_score", ("Assets", "tank", "AnomalyScore"), "float64"))
    return reg


class _Events:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def event_notification(self, event) -> None:
        self.queue.put_nowait(event)

    async def next(self, condition: str, timeout: float = 3.0):
        """The next event of *condition* (events of other conditions are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.queue.get()
                if ev.ConditionName == condition:
                    return ev

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(free_port_factory):
    reg = _registry()
    alarms = OpcUaAlarms(SPECS)
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", extensions=[alarms]) as server, Client(url, timeout=5) as client:
        events = _Events()
        sub = await client.create_subscription(10, events)
        await sub.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
        asset_events = _Events()
        asset_sub = await client.create_subscription(10, asset_events)
        ns = await client.get_namespace_index(NS)
        await asset_sub.subscribe_events(client.get_node(ua.NodeId("gw/Assets/tank", ns)), ua.ObjectIds.AlarmConditionType)
        yield reg, server, client, events, asset_events, ns
        await sub.delete()
        await asset_sub.delete()


def _publish(reg: TagRegistry, key: str, value, status=Status.Good):
    t = utcnow()
    reg.publish([TagSample(key, value, status, t, t)])
    return t


def _utc(t):
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@pytest.mark.asyncio(loop_scope="module")
async def test_anomaly_alarm_raise_ack_clear(served) -> None:
    """Raise -> acknowledge -> clear, each an AlarmConditionType event with the right fields, seen on
    the Server object and on the asset object; the acked and cleared condition is no longer retained."""
    reg, _, client, events, asset_events, ns = served
    events.drain()
    asset_events.drain()
    t_raise = _publish(reg, "tank.alarm", True)
    ev = await events.next("AnomalyAlarm")
    cond_id = ua.NodeId("gw/Assets/tank/AnomalyAlarm", ns)
    assert ev.NodeId == cond_id  # ConditionId
    assert ev.EventType == ua.NodeId(ua.ObjectIds.AlarmConditionType)
    assert ev.SourceNode == ua.NodeId("gw/Assets/tank", ns) and ev.SourceName == "tank"
    assert ev.Severity == 700
    assert ev.Message.Text == "tank anomaly score above threshold 9"
    assert ev.ActiveState.Text == "Active" and getattr(ev, "ActiveState/Id") is True
    assert ev.AckedState.Text == "Unacknowledged" and getattr(ev, "AckedState/Id") is False
    assert getattr(ev, "EnabledState/Id") is True
    assert ev.Retain is True
    assert _utc(ev.Time) == t_raise
    assert isinstance(ev.EventId, bytes) and len(ev.EventId) == 16
    same = await asset_events.next("AnomalyAlarm")
    assert same.EventId == ev.EventId

    # acknowledge through the condition (standard AcknowledgeableConditionType.Acknowledge)
    cond = client.get_node(cond_id)
    await cond.call_method(ACKNOWLEDGE_METHOD, ua.Variant(ev.EventId, ua.VariantType.ByteString), ua.LocalizedText("checked the pump"))
    acked = await events.next("AnomalyAlarm")
    assert getattr(acked, "AckedState/Id") is True and acked.AckedState.Text == "Acknowledged"
    assert getattr(acked, "ActiveState/Id") is True and acked.Retain is True
    assert acked.Comment.Text == "checked the pump"
    assert acked.EventId != ev.EventId

    # a second acknowledgement of the same branch is refused
    with pytest.raises(ua.UaStatusCodeError) as info:
        await cond.call_method(ACKNOWLEDGE_METHOD, ua.Variant(acked.EventId, ua.VariantType.ByteString), ua.LocalizedText(""))
    assert info.value.code == ua.StatusCodes.BadConditionBranchAlreadyAcked

    _publish(reg, "tank.alarm", False)
    cleared = await events.next("AnomalyAlarm")
    assert getattr(cleared, "ActiveState/Id") is False and cleared.ActiveState.Text == "Inactive"
    assert getattr(cleared, "AckedState/Id") is True
    assert cleared.Retain is False
    assert cleared.Message.Text == "tank anomaly score back below the release level of threshold 9"


@pytest.mark.asyncio(loop_scope="module")
async def test_cleared_but_unacknowledged_alarm_stays_retained_until_acked(served) -> None:
    reg, _, client, events, _, ns = served
    events.drain()
    _publish(reg, "tank.alarm", True)
    raised = await events.next("AnomalyAlarm")
    _publish(reg, "tank.alarm", False)
    cleared = await events.next("AnomalyAlarm")
    assert getattr(cleared, "ActiveState/Id") is False and getattr(cleared, "AckedState/Id") is False
    assert cleared.Retain is True
    # an acknowledgement naming an older event is refused
    instance_ack = client.get_node(ua.NodeId("gw/Assets/tank/AnomalyAlarm.Acknowledge", ns))
    cond = client.get_node(ua.NodeId("gw/Assets/tank/AnomalyAlarm", ns))
    with pytest.raises(ua.UaStatusCodeError) as info:
        await cond.call_method(instance_ack, ua.Variant(raised.EventId, ua.VariantType.ByteString), ua.LocalizedText(""))
    assert info.value.code == ua.StatusCodes.BadEventIdUnknown
    # the condition's own Acknowledge method works like the type's
    await cond.call_method(instance_ack, ua.Variant(cleared.EventId, ua.VariantType.ByteString), ua.LocalizedText("late"))
    done = await events.next("AnomalyAlarm")
    assert done.Retain is False and getattr(done, "AckedState/Id") is True


@pytest.mark.asyncio(loop_scope="module")
async def test_limit_alarm_with_deadband_on_the_device_object(served) -> None:
    """A high limit raises above 80, stays active down to 78 (deadband 2) and clears below it; the
    event names the device object as source and carries the value in its message."""
    reg, _server, _, events, asset_events, ns = served
    events.drain()
    asset_events.drain()
    _publish(reg, "plc.temp", 50.0)
    _publish(reg, "plc.temp", 81.5)
    raised = await events.next("tempHighLimit")
    assert raised.SourceNode == ua.NodeId("gw/Devices/plc", ns) and raised.SourceName == "plc"
    assert raised.Severity == 500 and getattr(raised, "ActiveState/Id") is True
    assert raised.Message.Text == "plc.temp degC = 81.5, above high limit 80"
    assert raised.InputNode == ua.NodeId("gw/Devices/plc/temp", ns)
    _publish(reg, "plc.temp", 79.0)  # inside the deadband: still active, no event
    _publish(reg, "plc.temp", 77.5)
    cleared = await events.next("tempHighLimit")
    assert getattr(cleared, "ActiveState/Id") is False and cleared.Message.Text == "plc.temp degC = 77.5, back below high limit 80"
    assert cleared.Retain is True  # not acknowledged yet
    others = []
    while not asset_events.queue.empty():
        others.append(asset_events.queue.get_nowait().ConditionName)
    assert "tempHighLimit" not in others  # device alarms are not emitted on the asset


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_sample_keeps_the_state_and_reports_quality(served) -> None:
    reg, _, _, events, _, _ = served
    events.drain()
    _publish(reg, "plc.temp", 2.0)
    low = await events.next("tempLowLimit")
    assert getattr(low, "ActiveState/Id") is True and low.Quality.is_good()
    _publish(reg, "plc.temp", None, Status.BadNoCommunication)
    bad = await events.next("tempLowLimit")
    assert getattr(bad, "ActiveState/Id") is True and bad.Quality.value == Status.BadNoCommunication
    _publish(reg, "plc.temp", 20.0)
    back = await events.next("tempLowLimit")
    assert getattr(back, "ActiveState/Id") is False and back.Quality.is_good()


@pytest.mark.asyncio(loop_scope="module")
async def test_source_objects_are_event_notifiers_referenced_from_server(served) -> None:
    _, _, client, _, _, ns = served
    for path in ("gw/Assets/tank", "gw/Devices/plc"):
        node = client.get_node(ua.NodeId(path, ns))
        assert ua.EventNotifier.SubscribeToEvents in await node.read_event_notifier()
    notified = {r.NodeId for r in await client.nodes.server.get_references(ua.ObjectIds.HasNotifier)}
    assert {ua.NodeId("gw/Assets/tank", ns), ua.NodeId("gw/Devices/plc", ns)} <= notified


@pytest.mark.asyncio(loop_scope="module")
async def test_acknowledge_with_wrong_arguments_is_refused(served) -> None:
    _, _, client, _, _, ns = served
    cond = client.get_node(ua.NodeId("gw/Assets/tank/AnomalyAlarm", ns))
    with pytest.raises(ua.UaStatusCodeError) as info:
        await cond.call_method(ACKNOWLEDGE_METHOD, ua.Variant("not bytes", ua.VariantType.String), ua.LocalizedText(""))
    assert info.value.code == ua.StatusCodes.BadInvalidArgument
    other = client.get_node(ua.NodeId("gw/Assets/tank", ns))  # not a condition
    with pytest.raises(ua.UaStatusCodeError):
        await other.call_method(ACKNOWLEDGE_METHOD, ua.Variant(b"x", ua.VariantType.ByteString), ua.LocalizedText(""))


@pytest.mark.asyncio(loop_scope="module")
async def test_condition_refresh_replays_retained_conditions(served) -> None:
    """A client that subscribes late calls ConditionRefresh and receives the active condition."""
    reg, _, client, events, _, ns = served
    events.drain()
    _publish(reg, "tank.alarm", True)
    raised = await events.next("AnomalyAlarm")
    late = _Events()
    sub = await client.create_subscription(10, late)
    try:
        await sub.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
        assert late.queue.empty()
        refresh = client.get_node(ua.NodeId(ua.ObjectIds.ConditionType))
        await refresh.call_method(ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh), ua.Variant(sub.subscription_id, ua.VariantType.UInt32))
        replayed = await late.next("AnomalyAlarm")
        assert replayed.EventId == raised.EventId and replayed.Retain is True and getattr(replayed, "ActiveState/Id") is True
    finally:
        await sub.delete()
    # back to normal for the other tests: clear and acknowledge
    _publish(reg, "tank.alarm", False)
    cleared = await events.next("AnomalyAlarm")
    cond = client.get_node(ua.NodeId("gw/Assets/tank/AnomalyAlarm", ns))
    await cond.call_method(ACKNOWLEDGE_METHOD, ua.Variant(cleared.EventId, ua.VariantType.ByteString), ua.LocalizedText(""))
    assert (await events.next("AnomalyAlarm")).Retain is False


async def test_viewer_may_not_acknowledge(free_port_factory) -> None:
    """Acknowledge needs the operator role: a viewer's call is refused with BadUserAccessDenied and
    the condition stays unacknowledged."""
    reg = _registry()
    alarms = OpcUaAlarms(SPECS[:1])
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    users = UserDirectory(anonymous_role=Role.VIEWER)
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", extensions=[alarms], users=users), Client(url, timeout=5) as client:
        events = _Events()
        sub = await client.create_subscription(10, events)
        await sub.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
        _publish(reg, "tank.alarm", True)
        raised = await events.next("AnomalyAlarm")
        ns = await client.get_namespace_index(NS)
        cond = client.get_node(ua.NodeId("gw/Assets/tank/AnomalyAlarm", ns))
        for method in (ACKNOWLEDGE_METHOD, ua.NodeId("gw/Assets/tank/AnomalyAlarm.Acknowledge", ns)):
            with pytest.raises(ua.UaStatusCodeError) as info:
                await cond.call_method(method, ua.Variant(raised.EventId, ua.VariantType.ByteString), ua.LocalizedText("no"))
            assert info.value.code == ua.StatusCodes.BadUserAccessDenied
        assert events.queue.empty()
        assert not alarms.conditions[raised.NodeId].state.acked
        await sub.delete()


@pytest.mark.asyncio(loop_scope="module")
async def test_conditions_hang_off_their_source_with_has_condition_only(served) -> None:
    """Browsing a source object shows its variables, not its conditions; HasCondition leads to them."""
    _, _, client, _, _, ns = served
    plc = client.get_node(ua.NodeId("gw/Devices/plc", ns))
    assert {(await c.read_browse_name()).Name for c in await plc.get_children()} == {"temp"}
    conditions = {r.NodeId for r in await plc.get_references(ua.ObjectIds.HasCondition)}
    assert conditions == {ua.NodeId("gw/Devices/plc/tempHighLimit", ns), ua.NodeId("gw/Devices/plc/tempLowLimit", ns)}
    cond = client.get_node(ua.NodeId("gw/Devices/plc/tempHighLimit", ns))
    assert await cond.read_type_definition() == ua.NodeId(ua.ObjectIds.AlarmConditionType)


@pytest.mark.asyncio(loop_scope="module")
async def test_condition_node_variables_show_the_latest_state(served) -> None:
    reg, _, client, events, _, ns = served
    events.drain()
    _publish(reg, "plc.temp", 50.0)
    _publish(reg, "plc.temp", 95.0)
    raised = await events.next("tempHighLimit")
    cond = client.get_node(ua.NodeId("gw/Devices/plc/tempHighLimit", ns))

    async def read(*path: str):
        return await (await cond.get_child([f"0:{p}" for p in path])).read_value()

    assert await read("ActiveState", "Id") is True and (await read("ActiveState")).Text == "Active"
    assert await read("AckedState", "Id") is False
    assert await read("Retain") is True and await read("Severity") == 500
    assert (await read("Message")).Text == raised.Message.Text
    assert await read("EventId") == raised.EventId
    _publish(reg, "plc.temp", 20.0)
    cleared = await events.next("tempHighLimit")
    assert await read("ActiveState", "Id") is False
    await cond.call_method(ACKNOWLEDGE_METHOD, ua.Variant(cleared.EventId, ua.VariantType.ByteString), ua.LocalizedText("ok"))
    await events.next("tempHighLimit")
    assert await read("AckedState", "Id") is True and await read("Retain") is False
    assert (await read("Comment")).Text == "ok"


async def test_a_sample_that_is_not_a_number_never_stops_alarm_processing(free_port_factory) -> None:
    """A string for a limit-alarmed tag is logged once (alarm_emit_failed) and skipped; the alarms
    loop keeps evaluating, and drain() returns only once the published batches are evaluated."""
    reg = _registry()
    alarms = OpcUaAlarms(SPECS)
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", extensions=[alarms]):
        with capture_logs() as logs:
            _publish(reg, "plc.temp", "sensor error")
            _publish(reg, "plc.temp", "sensor error")
            _publish(reg, "tank.alarm", True)
            _publish(reg, "plc.temp", 90.0)
            await alarms.drain()
            states = {c.spec.name: c.state for c in alarms.conditions.values()}
            assert states["tempHighLimit"].active and states["tempHighLimit"].value == 90.0
            assert states["AnomalyAlarm"].active
        failed = [e for e in logs if e["event"] == "alarm_emit_failed"]
        assert [e["condition"] for e in failed] == ["tempHighLimit", "tempLowLimit"]
        assert failed[0]["value"] == "'sensor error'"
        assert not [e for e in logs if e["event"] == "task_crashed"]
