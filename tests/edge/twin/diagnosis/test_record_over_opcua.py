"""Record then recognise, end to end: an operator records a bearing-wear episode from history with
RecordFaultPattern over a real asyncua client; a second episode of the same fault, at another
strength and operating point, is then named by the live diagnoser. A viewer may not record and an
operator may not remove."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from asyncua import Client, ua

from edge.config import load_config
from edge.core import names
from edge.history.store import HistoryStore
from edge.opcua.pattern_methods import PatternMethods
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory
from edge.sim.drive import PlantDrive
from edge.sim.plant import Fault, Plant, Setpoints
from edge.twin.diagnosis.library import UNKNOWN, Library, PatternFile, load, save

ROOT = Path(__file__).resolve().parents[4]
NS = "urn:edgetwin:test-patterns"


def _asset():
    return load_config(ROOT / "config" / "demo.toml").assets[0]


def _episode(rig: PlantDrive, store: HistoryStore | None, seconds: float) -> list[str]:
    measured = [names.signal_output_key("tank1", s.name, "measured") for s in rig.twin.assets[0].signals]
    seen = []
    for _ in range(round(seconds / rig.tick_s)):
        rig.run(1)
        if store is not None:
            store.append([rig.registry.latest(k) for k in measured])
        fault = rig.latest(names.diagnosis_key("tank1", "fault"))
        if fault:
            seen.append(fault)
    return seen


async def _call(client: Client, method: str, *args: ua.Variant) -> ua.CallMethodResult:
    ns = await client.get_namespace_index(NS)
    request = ua.CallMethodRequest(ObjectId=ua.NodeId("gw/Assets/tank1", ns), MethodId=ua.NodeId(f"gw/Assets/tank1/{method}", ns), InputArguments=list(args))
    return (await client.uaclient.call([request]))[0]


def _s(text: str) -> ua.Variant:
    return ua.Variant(text, ua.VariantType.String)


@pytest.mark.asyncio
async def test_record_then_recognise_over_the_opcua_method(tmp_path: Path, free_port_factory) -> None:
    lib_path = tmp_path / "patterns" / "heated_tank.json"
    save(Library("heated_tank"), lib_path)  # an empty library: bearing wear is unknown at first
    asset = _asset()
    files = PatternFile(lib_path, "heated_tank")
    store = HistoryStore(tmp_path / "history.sqlite", retention_days=7, max_db_mb=64)
    store.open()
    rig = PlantDrive.build(asset, [Plant(seed=5)], lambda a: files)
    diag = rig.twin.diagnosers[0][1]
    _episode(rig, store, 480.0)
    onset = rig.t
    rig.plant.fault = Fault.BEARING_WEAR
    assert set(_episode(rig, store, 180.0)) == {UNKNOWN}
    end = rig.t

    op_url, viewer_url = (f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin" for _ in range(2))
    common = {"namespace_uri": NS, "gateway_name": "gw"}

    def methods() -> list[PatternMethods]:
        return [PatternMethods([asset], lambda a: diag, store)]

    try:
        async with (
            OpcUaServer(rig.registry, endpoint=op_url, extensions=methods(), users=UserDirectory(anonymous_role=Role.OPERATOR), **common),
            OpcUaServer(rig.registry, endpoint=viewer_url, extensions=methods(), users=UserDirectory(anonymous_role=Role.VIEWER), **common),
            Client(op_url, timeout=10) as operator,
            Client(viewer_url, timeout=10) as viewer,
        ):  # fmt: skip
            args = (_s("bearing"), ua.Variant(onset, ua.VariantType.DateTime), ua.Variant(end, ua.VariantType.DateTime), _s("worn bearing"), _s("change it"))
            refused = await _call(viewer, names.RECORD_FAULT_PATTERN, *args)
            assert refused.StatusCode.value == ua.StatusCodes.BadUserAccessDenied
            assert load(lib_path).patterns == ()

            result = await _call(operator, names.RECORD_FAULT_PATTERN, *args)
            assert result.StatusCode.is_good(), result.StatusCode
            assert "'bearing' now has 1 episode(s)" in result.OutputArguments[0].Value
            assert "vibration" in result.OutputArguments[0].Value
            assert [p.name for p in load(lib_path).patterns] == ["bearing"]

            empty = await _call(
                operator,
                names.RECORD_FAULT_PATTERN,
                _s("calm"),
                *(ua.Variant(onset - timedelta(seconds=s), ua.VariantType.DateTime) for s in (200, 100)),
                _s(""),
                _s(""),
            )
            assert empty.StatusCode.value == ua.StatusCodes.BadInvalidArgument  # nothing differed from normal in that window
            wrong_type = await _call(operator, names.RECORD_FAULT_PATTERN, _s("x"), _s("yesterday"), args[2], _s(""), _s(""))
            assert wrong_type.StatusCode.value == ua.StatusCodes.BadInvalidArgument
            assert wrong_type.InputArgumentResults[1].value == ua.StatusCodes.BadTypeMismatch
            not_admin = await _call(operator, names.REMOVE_FAULT_PATTERN, _s("bearing"))
            assert not_admin.StatusCode.value == ua.StatusCodes.BadUserAccessDenied
    finally:
        store.close()

    # a second episode, weaker and at another operating point, on a fresh twin using the same library
    second = PlantDrive.build(asset, [Plant(seed=9, setpoints=Setpoints(heater_pct=55.0, pump_speed_pct=65.0, valve_pct=60.0))], lambda a: files)
    _episode(second, None, 480.0)
    second.plant.fault_strength = 0.7
    second.plant.fault = Fault.BEARING_WEAR
    seen = _episode(second, None, 180.0)
    assert seen and max(set(seen), key=seen.count) == "bearing"
    assert second.latest(names.diagnosis_key("tank1", "action")) == "change it"
