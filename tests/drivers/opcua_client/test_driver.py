"""The driver in poll mode against a real upstream server: types, status and time, writes, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from drivers.base import DriverUnavailable, LinkState
from drivers.sample import Status
from tests.drivers.opcua_client.conftest import make_driver, settings, tag
from tests.drivers.opcua_client.upstream import PLANT, Upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

TYPES = [
    ("Temperature", "float64", 21.5),
    ("Flag", "bool", True),
    ("Small", "int8", -5),
    ("Octet", "uint8", 200),
    ("Int16", "int16", -300),
    ("UInt16", "uint16", 60000),
    ("Int32", "int32", -70000),
    ("UInt32", "uint32", 4000000000),
    ("Int64", "int64", -(2**40)),
    ("UInt64", "uint64", 2**63 + 5),
    ("Float", "float32", 1.5),
    ("Name", "string", "boiler one"),
    ("When", "datetime", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
    ("Blob", "bytes", b"\x00\x01\xfe"),
]


async def _read(upstream: Upstream, tmp_path: Path, tags: list[dict], **kw: object) -> dict:
    s = settings(upstream.endpoint, tags, mode="poll", **kw)
    d = make_driver(s, tmp_path)
    await d.connect()
    try:
        result = await d.read(s.points())
    finally:
        await d.close()
    assert result.not_fetched == {}
    return {x.tag: x for x in result.samples}


async def test_every_builtin_type_and_arrays(shared_upstream: Upstream, tmp_path: Path) -> None:
    tags = [tag(n, t) for n, t, _ in TYPES] + [tag("Vector", "float64", array=True), tag("Counts", "int32", array=True)]
    got = await _read(shared_upstream, tmp_path, tags)
    for name, _, value in TYPES:
        assert got[name.lower()].status == Status.Good, name
        assert got[name.lower()].value == value and type(got[name.lower()].value) is type(value), name
    assert got["vector"].value == [1.0, 2.0, 3.0]
    assert got["counts"].value == [1, 2, 3]


async def test_status_and_source_time_pass_through(shared_upstream: Upstream, tmp_path: Path) -> None:
    then = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    await shared_upstream.set("Temperature", status=Status.BadSensorFailure, source_time=then)
    await shared_upstream.set("Setpoint", 12.5, status=Status.UncertainSubNormal, source_time=then + timedelta(seconds=1))
    await shared_upstream.set("Int32", 7, status=0x80AB0000, source_time=then)  # BadInvalidState: not in drivers.sample.Status
    got = await _read(shared_upstream, tmp_path, [tag("Temperature"), tag("Setpoint"), tag("Int32", "int32")])
    assert (got["temperature"].status, got["temperature"].value, got["temperature"].source_time) == (Status.BadSensorFailure, None, then)
    assert (got["setpoint"].status, got["setpoint"].value) == (Status.UncertainSubNormal, 12.5)
    assert got["setpoint"].source_time == then + timedelta(seconds=1)
    assert got["setpoint"].server_time > then + timedelta(days=1)  # the gateway's own stamp
    assert got["int32"].status == 0x80AB0000


async def test_browse_path_and_namespace_index(shared_upstream: Upstream, tmp_path: Path) -> None:
    got = await _read(
        shared_upstream,
        tmp_path,
        [
            tag("Temperature", browse_path=f"/Objects/{shared_upstream.ns}:Boiler/{shared_upstream.ns}:Temperature"),
            tag("Flag", "bool", node=f"ns={shared_upstream.ns};s=Boiler.Flag"),
            {"name": "state", "type": "int32", "node": "i=2259"},  # Server_ServerStatus_State, namespace 0
        ],
    )
    assert (got["temperature"].value, got["flag"].value, got["state"].value) == (21.5, True, 0)


async def test_unknown_namespace_missing_node_and_type_mismatch_are_bad_with_a_log_line(shared_upstream: Upstream, tmp_path: Path) -> None:
    tags = [
        tag("Temperature"),
        tag("Ghost", node="nsu=urn:nobody;s=Boiler.Ghost"),
        tag("Missing", node=f"nsu={PLANT};s=Boiler.Missing"),
        tag("Name", "float64"),  # a String node
        tag("Vector", "float64"),  # an array node for a scalar tag
        tag("Nowhere", browse_path="/Objects/2:Boiler/2:Nowhere"),
    ]
    with capture_logs() as logs:
        got = await _read(shared_upstream, tmp_path, tags)
    assert got["temperature"].status == Status.Good
    assert got["ghost"].status == Status.BadNodeIdUnknown
    assert got["missing"].status == Status.BadNodeIdUnknown
    assert got["name"].status == Status.BadTypeMismatch
    assert got["vector"].status == Status.BadTypeMismatch
    assert got["nowhere"].status == 0x806F0000  # BadNoMatch
    events = {(e["event"], e["node"]) for e in logs if e["log_level"] == "warning"}
    assert ("opcua_node_unresolved", "nsu=urn:nobody;s=Boiler.Ghost") in events
    assert ("opcua_node_unresolved", f"nsu={PLANT};s=Boiler.Missing") in events
    assert ("opcua_type_mismatch", f"nsu={PLANT};s=Boiler.Name") in events
    assert ("opcua_node_unresolved", "/Objects/2:Boiler/2:Nowhere") in events
    ghost = next(e for e in logs if e.get("node") == "nsu=urn:nobody;s=Boiler.Ghost")
    assert "urn:nobody" in ghost["reason"] and ghost["status"] == "BadNodeIdUnknown"


async def test_integer_widening_and_range(shared_upstream: Upstream, tmp_path: Path) -> None:
    """An Int16 node may feed an int32 or float64 tag; a value that does not fit a narrower tag is BadOutOfRange."""
    got = await _read(shared_upstream, tmp_path, [tag("Int16", "int32"), tag("Float", "float64"), tag("Octet", "int8")])
    assert (got["int16"].value, got["float"].value) == (-300, 1.5)
    assert got["octet"].status == Status.BadOutOfRange  # 200 does not fit int8


async def test_write_passes_the_upstream_type_and_status(shared_upstream: Upstream, tmp_path: Path) -> None:
    s = settings(shared_upstream.endpoint, [tag("Setpoint", writable=True), tag("Small", "int8", writable=True), tag("Float", writable=True)], mode="poll")
    d = make_driver(s, tmp_path)
    await d.connect()
    try:
        setpoint, small, flt = s.points()
        assert await d.write(setpoint, 75.0) == Status.Good
        assert await shared_upstream.get("Setpoint") == 75.0
        assert await d.write(setpoint, 250.0) == Status.BadOutOfRange  # the upstream server's refusal
        assert await shared_upstream.get("Setpoint") == 75.0
        assert await d.write(small, -7) == Status.Good  # written as SByte, the node's DataType
        assert await shared_upstream.get("Small") == -7
        assert await d.write(small, 300) == Status.BadOutOfRange  # does not fit SByte: refused here
        assert await d.write(flt, 2.25) == Status.Good  # a float64 tag on a Float node
        assert await shared_upstream.get("Float") == 2.25
        assert await d.write(setpoint, "x") == Status.BadTypeMismatch
    finally:
        await d.close()
    assert await d.write(setpoint, 1.0) == Status.BadNotConnected


async def test_closed_port_and_wrong_endpoint_raise_driver_unavailable(free_port: int, tmp_path: Path) -> None:
    d = make_driver(settings(f"opc.tcp://127.0.0.1:{free_port}", [tag("Temperature")]), tmp_path)
    with pytest.raises(DriverUnavailable, match="cannot connect"):
        await d.connect()
    assert d.state is LinkState.DISCONNECTED
    await d.close()


async def test_requests_sent_counts_every_service_call(shared_upstream: Upstream, tmp_path: Path) -> None:
    """``requests_sent`` (the device's request counter in Diagnostics and metrics): the first read
    of a session also reads the namespace array (the tags name their namespace by URI) and the
    nodes' DataType and ValueRank before the values; later reads are one Read each."""
    s = settings(shared_upstream.endpoint, [tag("Temperature"), tag("Setpoint")], mode="poll")
    d = make_driver(s, tmp_path)
    assert d.requests_sent == 0
    await d.connect()
    try:
        await d.read(s.points())
        first = d.requests_sent
        await d.read(s.points())
        await d.read(s.points())
    finally:
        await d.close()
    assert first == 3 and d.requests_sent == first + 2
