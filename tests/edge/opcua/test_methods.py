"""Simulate and ResetModel on asset objects, called by a real asyncua client, against a real TwinRunner
whose model was identified on the simulated plant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from asyncua import Client, ua

from drivers.sample import Status, TagSample
from edge.config import AssetConfig, SignalConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.methods import AssetMethods
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory
from edge.sim.params import PlantParams
from edge.sim.plant import Plant, Setpoints
from edge.twin.runner import TwinRunner, signal_infos

NS = "urn:edgetwin:test-methods"
TICK_S = 0.5
PERIOD_S = 10.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _identified_twin() -> tuple[TwinRunner, TagRegistry]:
    """A tank whose heater->temperature model is identified from a few heater steps (simulated time)."""
    reg = TagRegistry()
    reg.add(TagInfo("plc.temperature", ("Devices", "plc", "temperature"), "float64", "degC", -20.0, 150.0, device="plc"))
    reg.add(TagInfo("plc.heater", ("Devices", "plc", "heater"), "float64", "%", 0.0, 100.0, device="plc"))
    sig = SignalConfig(name="temperature", tag="plc.temperature", model="constant_velocity", input="plc.heater", model_period_s=PERIOD_S)
    asset = AssetConfig(name="tank", tick_s=TICK_S, signals=[sig])
    for info in signal_infos(asset, reg):
        reg.add(info)
    twin = TwinRunner([asset], reg, TICK_S)
    plant = Plant(PlantParams(ambient_amplitude_c=0.0), setpoints=Setpoints(heater_pct=40.0, pump_enable=False), seed=1)
    for heater in (60.0, 30.0, 70.0):
        plant.heater_pct = heater
        for _ in range(round(600.0 / TICK_S)):
            plant.step(TICK_S)
            ts = T0 + timedelta(seconds=plant.t_s)
            reg.publish([
                TagSample("plc.temperature", round(plant.measurements()["tank_temp_c"], 1), Status.Good, ts, ts),
                TagSample("plc.heater", plant.heater_pct, Status.Good, ts, ts),
            ])  # fmt: skip
            twin.tick()
    return twin, reg


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(free_port_factory):
    """An admin server (anonymous login is admin) and an operator server over the same twin."""
    twin, reg = _identified_twin()
    admin_url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    op_url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    common = {"namespace_uri": NS, "gateway_name": "gw"}
    async with (
        OpcUaServer(reg, endpoint=admin_url, extensions=[AssetMethods({"tank": twin})], users=UserDirectory(anonymous_role=Role.ADMIN), **common) as server,
        OpcUaServer(reg, endpoint=op_url, extensions=[AssetMethods({"tank": twin})], users=UserDirectory(anonymous_role=Role.OPERATOR), **common),
        Client(admin_url, timeout=5) as admin,
        Client(op_url, timeout=5) as operator,
    ):
        yield twin, server, admin, operator


async def _nodes(client: Client):
    ns = await client.get_namespace_index(NS)
    tank = client.get_node(ua.NodeId("gw/Assets/tank", ns))
    return tank, client.get_node(ua.NodeId("gw/Assets/tank/Simulate", ns)), client.get_node(ua.NodeId("gw/Assets/tank/ResetModel", ns))


async def _call(client: Client, method, *args: ua.Variant) -> ua.CallMethodResult:
    tank, _, _ = await _nodes(client)
    request = ua.CallMethodRequest(ObjectId=tank.nodeid, MethodId=method.nodeid, InputArguments=list(args))
    return (await client.uaclient.call([request]))[0]


def _doubles(values) -> ua.Variant:
    return ua.Variant([float(v) for v in values], ua.VariantType.Double, is_array=True)


@pytest.mark.asyncio(loop_scope="module")
async def test_simulate_over_opcua_equals_the_twin_called_directly(served) -> None:
    twin, _, admin, _ = served
    tank, simulate, _ = await _nodes(admin)
    inputs = [65.0, 65.0, 50.0]
    got = await tank.call_method(simulate, _doubles(inputs), ua.Variant(60, ua.VariantType.UInt32))
    assert got == twin.simulate("tank", inputs, 60)
    assert len(got) == 60 and got[-1] != got[0]


@pytest.mark.asyncio(loop_scope="module")
async def test_simulate_declares_its_arguments(served) -> None:
    _, _, admin, _ = served
    _, simulate, _ = await _nodes(admin)
    args = await (await simulate.get_child(["0:InputArguments"])).read_value()
    assert [(a.Name, a.DataType, a.ValueRank) for a in args] == [
        ("inputs", ua.NodeId(ua.ObjectIds.Double), ua.ValueRank.OneDimension),
        ("horizon", ua.NodeId(ua.ObjectIds.UInt32), ua.ValueRank.Scalar),
    ]
    out = await (await simulate.get_child(["0:OutputArguments"])).read_value()
    assert [(a.Name, a.DataType, a.ValueRank) for a in out] == [("outputs", ua.NodeId(ua.ObjectIds.Double), ua.ValueRank.OneDimension)]


@pytest.mark.parametrize(
    ("args", "status", "arg_results"),
    [
        pytest.param([_doubles([50.0])], ua.StatusCodes.BadArgumentsMissing, None, id="missing-horizon"),
        pytest.param(
            [_doubles([50.0]), ua.Variant(5, ua.VariantType.UInt32), ua.Variant(1, ua.VariantType.UInt32)], ua.StatusCodes.BadTooManyArguments, None, id="extra"
        ),
        pytest.param(
            [ua.Variant([50.0], ua.VariantType.Float, is_array=True), ua.Variant(5, ua.VariantType.UInt32)],
            ua.StatusCodes.BadInvalidArgument,
            [ua.StatusCodes.BadTypeMismatch, ua.StatusCodes.Good],
            id="float-inputs",
        ),
        pytest.param(
            [ua.Variant(50.0, ua.VariantType.Double), ua.Variant(5, ua.VariantType.Int32)],
            ua.StatusCodes.BadInvalidArgument,
            [ua.StatusCodes.BadTypeMismatch, ua.StatusCodes.BadTypeMismatch],
            id="scalar-inputs-int-horizon",
        ),
        pytest.param([_doubles([]), ua.Variant(5, ua.VariantType.UInt32)], ua.StatusCodes.BadInvalidArgument, None, id="empty-inputs"),
        pytest.param([_doubles([50.0]), ua.Variant(0, ua.VariantType.UInt32)], ua.StatusCodes.BadInvalidArgument, None, id="zero-horizon"),
        pytest.param([_doubles([50.0] * 6), ua.Variant(5, ua.VariantType.UInt32)], ua.StatusCodes.BadInvalidArgument, None, id="more-inputs-than-steps"),
        pytest.param([_doubles([50.0, 150.0]), ua.Variant(5, ua.VariantType.UInt32)], ua.StatusCodes.BadInvalidArgument, None, id="input-above-tag-high"),
        pytest.param([_doubles([float("nan")]), ua.Variant(5, ua.VariantType.UInt32)], ua.StatusCodes.BadInvalidArgument, None, id="nan-input"),
    ],
)
@pytest.mark.asyncio(loop_scope="module")
async def test_simulate_refuses_bad_arguments(served, args, status, arg_results) -> None:
    _, _, admin, _ = served
    _, simulate, _ = await _nodes(admin)
    result = await _call(admin, simulate, *args)
    assert result.StatusCode.value == status
    if arg_results is not None:
        assert [r.value for r in result.InputArgumentResults] == arg_results
    assert not result.OutputArguments


@pytest.mark.parametrize("on", ["gw/Assets", "gw/Devices", "gw", "i=85"])
@pytest.mark.asyncio(loop_scope="module")
async def test_a_method_called_on_another_object_is_bad_method_invalid(served, on: str) -> None:
    """Simulate and ResetModel belong to their asset: called on any other object they do not run."""
    _, _, admin, _ = served
    ns = await admin.get_namespace_index(NS)
    _, simulate, reset = await _nodes(admin)
    other = ua.NodeId.from_string(on) if on.startswith("i=") else ua.NodeId(on, ns)
    for method, args in ((simulate, [_doubles([55.0]), ua.Variant(10, ua.VariantType.UInt32)]), (reset, [])):
        request = ua.CallMethodRequest(ObjectId=other, MethodId=method.nodeid, InputArguments=args)
        (result,) = await admin.uaclient.call([request])
        assert result.StatusCode.value == ua.StatusCodes.BadMethodInvalid
        assert not result.OutputArguments


@pytest.mark.asyncio(loop_scope="module")
async def test_operator_may_simulate_but_not_reset(served) -> None:
    twin, _, _, operator = served
    tank, simulate, reset = await _nodes(operator)
    assert await tank.call_method(simulate, _doubles([55.0]), ua.Variant(10, ua.VariantType.UInt32)) == twin.simulate("tank", [55.0], 10)
    result = await _call(operator, reset)
    assert result.StatusCode.value == ua.StatusCodes.BadUserAccessDenied
    twin.simulate("tank", [55.0], 10)  # the model is still identified


@pytest.mark.asyncio(loop_scope="module")
async def test_reset_model_restarts_identification(served) -> None:
    """Last in the module: after ResetModel the model must be identified again before Simulate works."""
    twin, _, admin, _ = served
    tank, simulate, reset = await _nodes(admin)
    assert await tank.call_method(reset) is None
    with pytest.raises(ValueError, match="not identified yet"):
        twin.simulate("tank", [50.0], 10)
    result = await _call(admin, simulate, _doubles([50.0]), ua.Variant(10, ua.VariantType.UInt32))
    assert result.StatusCode.value == ua.StatusCodes.BadInvalidArgument
    result = await _call(admin, reset, ua.Variant(1, ua.VariantType.UInt32))
    assert result.StatusCode.value == ua.StatusCodes.BadTooManyArguments
