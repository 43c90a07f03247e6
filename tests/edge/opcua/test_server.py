"""The OPC UA server against a real asyncua Client over loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
import pytest_asyncio
from asyncua import Client, ua
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:test"


def _registry() -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", "degC", -20.0, 150.0, "tank temperature", device="plc"))
    reg.add(TagInfo("plc.count", ("Devices", "plc", "count"), "uint32", device="plc"))
    reg.add(TagInfo("plc.sp", ("Devices", "plc", "sp"), "float64", "%", 0.0, 100.0, writable=True, device="plc"))
    reg.add(TagInfo("plc.run", ("Devices", "plc", "run"), "bool", writable=True, device="plc"))
    reg.add(TagInfo("plc.level", ("Devices", "plc", "level"), "float64", "m", device="plc"))
    reg.add(TagInfo("plc.total", ("Devices", "plc", "total"), "uint16", device="plc"))
    reg.add(TagInfo("tank.temp.estimate", ("Assets", "tank", "temp", "Estimate"), "float64", "degC"))
    return reg


class _Writes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.result = Status.Good

    async def __call__(self, key: str, value: object) -> int:
        self.calls.append((key, value))
        return self.result


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def _module_server(free_port_factory):
    """One server for the module: asyncua loads its standard address space in about a second."""
    reg = _registry()
    writes = _Writes()
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", write_handler=writes) as server, Client(url, timeout=5) as client:
        yield reg, server, client, writes


@pytest.fixture
def served(_module_server):
    _module_server[3].calls.clear()
    _module_server[3].result = Status.Good
    return _module_server


def _utc(t):
    return t if t.tzinfo else t.replace(tzinfo=UTC)


async def _node(client: Client, path: str):
    ns = await client.get_namespace_index(NS)
    return client.get_node(ua.NodeId(f"gw/{path}", ns))


@pytest.mark.asyncio(loop_scope="module")
async def test_tree_is_browsable_with_path_derived_string_node_ids(served) -> None:
    _, _, client, _ = served
    ns = await client.get_namespace_index(NS)
    gw = await client.nodes.objects.get_child([f"{ns}:gw"])
    assert gw.nodeid == ua.NodeId("gw", ns)
    temp = await gw.get_child([f"{ns}:Devices", f"{ns}:plc", f"{ns}:temp"])
    assert temp.nodeid == ua.NodeId("gw/Devices/plc/temp", ns)
    est = await gw.get_child([f"{ns}:Assets", f"{ns}:tank", f"{ns}:temp", f"{ns}:Estimate"])
    assert est.nodeid.Identifier == "gw/Assets/tank/temp/Estimate"
    names = {(await c.read_browse_name()).Name for c in await gw.get_children()}
    assert {"Devices", "Assets"} <= names


@pytest.mark.asyncio(loop_scope="module")
async def test_initial_value_is_bad_waiting_for_initial_data(served) -> None:
    _, _, client, _ = served
    dv = await (await _node(client, "Devices/plc/run")).read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == Status.BadWaitingForInitialData and dv.Value.Value is None


@pytest.mark.asyncio(loop_scope="module")
async def test_values_carry_status_type_and_source_timestamp(served) -> None:
    reg, server, client, _ = served
    t_src = (utcnow() - timedelta(seconds=3)).replace(microsecond=0)
    reg.publish([TagSample("plc.temp", 21.5, Status.Good, t_src, t_src), TagSample("plc.count", 7, Status.Good, t_src, t_src)])
    await server.drain()
    dv = await (await _node(client, "Devices/plc/temp")).read_data_value()
    assert dv.Value.Value == 21.5 and dv.Value.VariantType == ua.VariantType.Double
    assert dv.StatusCode.is_good()
    assert _utc(dv.SourceTimestamp) == t_src and _utc(dv.ServerTimestamp) >= t_src
    count = await (await _node(client, "Devices/plc/count")).read_data_value()
    assert count.Value.Value == 7 and count.Value.VariantType == ua.VariantType.UInt32

    reg.mark_stale(["plc.temp"])
    await server.drain()
    dv = await (await _node(client, "Devices/plc/temp")).read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == Status.UncertainNoCommunicationLastUsableValue and dv.Value.Value == 21.5


@pytest.mark.asyncio(loop_scope="module")
async def test_variables_carry_data_type_units_and_range(served) -> None:
    _, _, client, _ = served
    temp = await _node(client, "Devices/plc/temp")
    assert await temp.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
    eu = await (await temp.get_child(["0:EngineeringUnits"])).read_value()
    assert eu.DisplayName.Text == "°C" and eu.UnitId == 4408652  # UNECE "CEL"
    rng = await (await temp.get_child(["0:EURange"])).read_value()
    assert (rng.Low, rng.High) == (-20.0, 150.0)
    assert (await temp.read_description()).Text == "tank temperature"
    count = await _node(client, "Devices/plc/count")
    assert await count.read_data_type() == ua.NodeId(ua.ObjectIds.UInt32)


@pytest.mark.asyncio(loop_scope="module")
async def test_subscription_sees_changes(served) -> None:
    reg, _server, client, _ = served
    got: asyncio.Queue = asyncio.Queue()

    class Handler:
        def datachange_notification(self, node, val, data):
            got.put_nowait(val)

    sub = await client.create_subscription(20, Handler())
    await sub.subscribe_data_change(await _node(client, "Assets/tank/temp/Estimate"))
    for v in (1.0, 2.0, 3.0):
        now = utcnow()
        reg.publish([TagSample("tank.temp.estimate", v, Status.Good, now, now)])
        await asyncio.sleep(0.05)
    seen = []
    async with asyncio.timeout(3):
        while 3.0 not in seen:
            seen.append(await got.get())
    await sub.delete()
    assert [v for v in seen if v is not None][-3:] == [1.0, 2.0, 3.0]


@pytest.mark.asyncio(loop_scope="module")
async def test_write_to_writable_node_goes_to_handler_and_returns_its_status(served) -> None:
    _reg, _server, client, writes = served
    sp = await _node(client, "Devices/plc/sp")
    await sp.write_value(ua.DataValue(ua.Variant(42.0, ua.VariantType.Double)))
    assert writes.calls == [("plc.sp", 42.0)]
    # the node shows the device's value after read-back, not the written one
    dv = await sp.read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == Status.BadWaitingForInitialData

    writes.result = Status.BadOutOfRange
    with pytest.raises(ua.UaStatusCodeError) as info:
        await sp.write_value(ua.DataValue(ua.Variant(420.0, ua.VariantType.Double)))
    assert info.value.code == Status.BadOutOfRange


@pytest.mark.asyncio(loop_scope="module")
async def test_write_with_wrong_type_is_refused_before_the_device(served) -> None:
    _, _, client, writes = served
    run = await _node(client, "Devices/plc/run")
    with pytest.raises(ua.UaStatusCodeError) as info:
        await run.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
    assert info.value.code == Status.BadTypeMismatch
    assert writes.calls == []


@pytest.mark.asyncio(loop_scope="module")
async def test_read_only_node_refuses_writes(served) -> None:
    _, _, client, writes = served
    temp = await _node(client, "Devices/plc/temp")
    with pytest.raises(ua.UaStatusCodeError):
        await temp.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
    assert writes.calls == []


async def _read(client: Client, path: str) -> ua.DataValue:
    return await (await _node(client, path)).read_data_value(raise_on_bad_status=False)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_sample_the_node_cannot_take_is_logged_once_and_only_that_node_goes_bad(served) -> None:
    """A string for a float64 tag is logged once (publish_failed: tag, value repr, error); its node
    shows BadTypeMismatch with a null value instead of the old Good value; samples of other tags in
    the same and later batches, and later convertible samples of that tag, still reach the address space."""
    reg, server, client, _ = served
    now = utcnow()
    reg.publish([TagSample("plc.level", 1.25, Status.Good, now, now)])
    await server.drain()
    assert (await _read(client, "Devices/plc/level")).Value.Value == 1.25

    with capture_logs() as logs:
        for i in range(3):
            now = utcnow()
            reg.publish([TagSample("plc.level", "n/a", Status.Good, now, now), TagSample("plc.temp", 30.0 + i, Status.Good, now, now)])
        await server.drain()
    failed = [e for e in logs if e["event"] == "publish_failed"]
    assert len(failed) == 1
    assert failed[0]["tag"] == "plc.level" and failed[0]["value"] == "'n/a'" and failed[0]["error"]
    level = await _read(client, "Devices/plc/level")
    assert level.StatusCode.value == Status.BadTypeMismatch and level.Value.Value is None
    assert (await _read(client, "Devices/plc/temp")).Value.Value == 32.0

    now = utcnow()
    reg.publish([TagSample("plc.level", 2.5, Status.Good, now, now)])
    await server.drain()
    level = await _read(client, "Devices/plc/level")
    assert level.StatusCode.is_good() and level.Value.Value == 2.5


@pytest.mark.asyncio(loop_scope="module")
async def test_an_integer_out_of_range_never_reaches_clients(served) -> None:
    """An integer the node's type cannot hold (70000 for a UInt16) would break every client read of
    the node; it is refused like an unconvertible value and the node goes Bad."""
    reg, server, client, _ = served
    now = utcnow()
    with capture_logs() as logs:
        reg.publish([TagSample("plc.total", 70000, Status.Good, now, now)])
        await server.drain()
    assert [e["tag"] for e in logs if e["event"] == "publish_failed"] == ["plc.total"]
    total = await _read(client, "Devices/plc/total")
    assert total.StatusCode.value == Status.BadTypeMismatch and total.Value.Value is None
    reg.publish([TagSample("plc.total", 7, Status.Good, now, now)])
    await server.drain()
    assert (await _read(client, "Devices/plc/total")).Value.Value == 7


@pytest.mark.asyncio(loop_scope="module")
async def test_a_crashed_publish_loop_is_logged_and_restarts(served, monkeypatch) -> None:
    """An unexpected error in the publish loop is logged at once (task_crashed) and the loop is
    started again (task_restarted): later samples still reach the address space."""
    reg, server, client, _ = served
    write_batch = server._write_batch
    crashes = []

    async def crash_once(batch):
        if not crashes:
            crashes.append(batch)
            raise RuntimeError("unexpected")
        await write_batch(batch)

    monkeypatch.setattr(server, "_write_batch", crash_once)
    with capture_logs() as logs:
        now = utcnow()
        reg.publish([TagSample("tank.temp.estimate", 1.0, Status.Good, now, now)])
        await server.drain()  # the crashed batch is done with: drain does not hang on it
        crashed = [e for e in logs if e["event"] == "task_crashed"]
        assert len(crashed) == 1 and crashed[0]["task"] == "opcua:publish" and "unexpected" in crashed[0]["error"]
        now = utcnow()
        reg.publish([TagSample("tank.temp.estimate", 2.0, Status.Good, now, now)])
        async with asyncio.timeout(5):
            await server.drain()
    assert [e["task"] for e in logs if e["event"] == "task_restarted"] == ["opcua:publish"]
    assert (await _read(client, "Assets/tank/temp/Estimate")).Value.Value == 2.0


@pytest.mark.asyncio(loop_scope="module")
async def test_drain_waits_for_the_batch_being_written(served, monkeypatch) -> None:
    """drain returns only once the batch the loop has already taken off the queue is written."""
    reg, server, client, _ = served
    aspace = server.ua_server.iserver.aspace
    write = aspace.write_attribute_value
    started = asyncio.Event()

    async def slow_write(*args, **kwargs):
        started.set()
        await asyncio.sleep(0.2)
        return await write(*args, **kwargs)

    monkeypatch.setattr(aspace, "write_attribute_value", slow_write)
    now = utcnow()
    reg.publish([TagSample("plc.count", 41, Status.Good, now, now)])
    await started.wait()  # the batch is off the queue and in flight
    await server.drain()
    monkeypatch.undo()
    assert (await _read(client, "Devices/plc/count")).Value.Value == 41
