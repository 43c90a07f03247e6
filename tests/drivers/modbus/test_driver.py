"""ModbusTcpDriver against real in-process servers: pymodbus's own and pyModbusTCP's (independent).

Tests that take ``modbus_server`` run once per implementation: the contract, reads and writes. The
link (connect, outages, timeouts, the shared lock) is in ``test_link.py``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from drivers import load_driver, settings_model
from drivers.base import Driver, LinkState
from drivers.modbus import ModbusTcpDriver
from drivers.modbus.address import Area, RegisterPoint
from drivers.modbus.plan import plan_reads
from drivers.modbus.settings import ModbusTcpSettings
from drivers.sample import Status
from tests.drivers.modbus.reading import TIMEOUT_S, by_name, pt, read_all
from tests.drivers.modbus_servers import ModbusTestServer, PymodbusServer

# -- contract --------------------------------------------------------------------------------------


def tcp_settings(**kw) -> ModbusTcpSettings:
    return ModbusTcpSettings.model_validate({"name": "x", "driver": "modbus_tcp", "host": "127.0.0.1", **kw})


def test_registered_and_satisfies_protocol() -> None:
    """DRIVER_KINDS registers this class and its settings model, and it satisfies the Driver protocol."""
    assert load_driver("modbus_tcp") is ModbusTcpDriver
    assert settings_model("modbus_tcp") is ModbusTcpDriver.Settings is ModbusTcpSettings
    d = ModbusTcpDriver.from_settings(tcp_settings())
    assert isinstance(d, Driver)
    assert d.state is LinkState.DISCONNECTED
    assert (d.port, d.timeout_s, d.max_registers, d.max_bits, d.max_gap) == (502, 1.0, 125, 2000, 10)


def test_from_settings_passes_every_setting() -> None:
    s = tcp_settings(port=1502, timeout_s=2.5, retries=3, max_registers=60, max_bits=800, max_gap=0, demote_after=4, demote_for_s=7.5, write_multiple=True)
    d = ModbusTcpDriver.from_settings(s)
    assert (d.name, d.host, d.port, d.timeout_s, d.retries, d.write_multiple) == ("x", "127.0.0.1", 1502, 2.5, 3, True)
    assert (d.max_registers, d.max_bits, d.max_gap, d.units.demote_after, d.units.demote_for_s) == (60, 800, 0, 4, 7.5)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("port", 0, "Input should be greater than or equal to 1"),
        ("timeout_s", 0, "Input should be greater than 0"),
        ("timeout_s", 61, "Input should be less than or equal to 60"),
        ("retries", 11, "Input should be less than or equal to 10"),
        ("max_registers", 200, "Input should be less than or equal to 125"),
        ("max_bits", 2001, "Input should be less than or equal to 2000"),
        ("max_gap", -1, "Input should be greater than or equal to 0"),
        ("max_gap", 125, "Input should be less than or equal to 124"),
    ],
)
def test_settings_refuse_values_out_of_range(key: str, value: object, message: str) -> None:
    """Limits are checked by the settings model (the driver takes validated settings as they are)."""
    with pytest.raises(ValidationError) as info:
        tcp_settings(**{key: value})
    assert [(e["loc"], e["msg"]) for e in info.value.errors()] == [((key,), message)]


# -- reading -----------------------------------------------------------------------------------------

EVERY_TYPE = [
    # (point, registers to put at its address (or bits), expected value)
    (pt("i16", "hr:0", "int16"), [0xFFFB], -5),
    (pt("u16", "hr:1", "uint16"), [54321], 54321),
    (pt("i32", "hr:2", "int32"), [0xFFFF, 0xFFFE], -2),
    (pt("u32", "hr:4", "uint32"), [0x0001, 0x0000], 65536),
    (pt("i64", "hr:6", "int64"), [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFD], -3),
    (pt("u64", "hr:10", "uint64"), [0x0001, 0x0000, 0x0000, 0x0000], 2**48),
    (pt("f32", "hr:14", "float32"), [0x3F80, 0x0000], 1.0),
    (pt("f32_cdab", "hr:16", "float32", order="CDAB"), [0x0000, 0x4049], 3.140625),
    (pt("f64", "hr:18", "float64"), [0x4009, 0x21FB, 0x5444, 0x2D18], math.pi),
    (pt("f64_dcba", "hr:40", "float64", order="DCBA"), [0x182D, 0x4454, 0xFB21, 0x0940], math.pi),
    (pt("text", "hr:22", "string", length=3), [0x4142, 0x4300, 0x0000], "ABC"),
    (pt("text_badc", "hr:30", "string", length=2, order="BADC"), [0x4241, 0x0043], "ABC"),
    (pt("bit0", "hr:25.0", "bool"), [0x8001], True),
    (pt("i16_scaled", "ir:0", "int16", scale=0.1, offset=-40.0), [650], 25.0),
    (pt("u32_ir", "ir:2", "uint32", order="CDAB"), [0x5678, 0x1234], 0x12345678),
    (pt("coil3", "coil:3", "bool"), [True], True),
    (pt("di5", "di:5", "bool"), [True], True),
]
# more tags on registers/bits already set above
EXTRA = [
    (pt("bit1", "hr:25.1", "bool"), False),
    (pt("bit15", "hr:25.15", "bool"), True),
    (pt("coil4", "coil:4", "bool"), False),
    (pt("di6", "di:6", "bool"), False),
]


async def test_read_every_type(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """One sample per point, in order, Good, with decoded values of every type and order."""
    for p, values, _ in EVERY_TYPE:
        await modbus_server.set(p.area, p.address, values)
    points = [p for p, _, _ in EVERY_TYPE] + [p for p, _ in EXTRA]
    expected = [v for _, _, v in EVERY_TYPE] + [v for _, v in EXTRA]
    before = datetime.now(UTC)
    samples = await read_all(driver, points)
    after = datetime.now(UTC)
    assert [s.tag for s in samples] == [p.name for p in points]
    assert [s.status for s in samples] == [Status.Good] * len(points)
    for s, want in zip(samples, expected):
        if isinstance(want, float):
            assert s.value == pytest.approx(want), s.tag
        else:
            assert s.value == want and type(s.value) is type(want), s.tag
        assert s.source_time.tzinfo is not None and s.source_time.utcoffset().total_seconds() == 0
        assert before <= s.source_time <= after
        assert s.server_time == s.source_time
    assert driver.state is LinkState.CONNECTED


async def test_read_sends_one_request_per_planned_block(pymodbus_server: PymodbusServer, pm_driver: ModbusTcpDriver) -> None:
    """Neighbouring tags are coalesced: a read sends exactly the planned requests, again on the next poll."""
    points = [p for p, _, _ in EVERY_TYPE] + [p for p, _ in EXTRA]
    plan = plan_reads(points)
    assert len(plan) == 4  # holding, input, coils, discrete inputs
    pymodbus_server.pdus.clear()
    await read_all(pm_driver, points)
    await read_all(pm_driver, points)
    assert sorted(pymodbus_server.pdus) == sorted([1, 2, 3, 4] * 2)


async def test_empty_read(driver: ModbusTcpDriver) -> None:
    assert await read_all(driver, []) == []


async def test_repeated_point_gets_one_sample_per_position(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    p = pt("u16", "hr:7")
    await modbus_server.set(Area.HOLDING, 7, [77])
    samples = await read_all(driver, [p, p])
    assert [s.value for s in samples] == [77, 77]


async def test_exception_response_makes_only_that_block_bad(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """ILLEGAL_ADDRESS gives BadConfigurationError (value None) to that block; other blocks stay Good."""
    await modbus_server.set(Area.HOLDING, 0, [11])
    await modbus_server.set(Area.INPUT, 0, [22])
    good_hr, missing, good_ir = pt("good_hr", "hr:0"), pt("missing", "hr:500"), pt("good_ir", "ir:0")
    with capture_logs() as logs:
        samples = by_name(await read_all(driver, [good_hr, missing, good_ir]))
        await read_all(driver, [good_hr, missing, good_ir])  # same status again: not logged again
    assert (samples["good_hr"].value, samples["good_hr"].status) == (11, Status.Good)
    assert (samples["good_ir"].value, samples["good_ir"].status) == (22, Status.Good)
    assert (samples["missing"].value, samples["missing"].status) == (None, Status.BadConfigurationError)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["event"] == "modbus_exception"
    assert warnings[0]["tag"] == "missing"
    assert warnings[0]["status"] == "BadConfigurationError"
    assert warnings[0]["detail"] == "ILLEGAL_ADDRESS"
    assert (warnings[0]["device"], warnings[0]["driver"], warnings[0]["address"]) == ("plc1", "modbus_tcp", 500)
    assert driver.state is LinkState.CONNECTED


async def test_exception_for_bits_and_inputs(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """Reading past the end of coils, discrete inputs and input registers is Bad per block, too."""
    pts = [pt("c", "coil:100", "bool"), pt("d", "di:100", "bool"), pt("i", "ir:300", "float32"), pt("ok", "coil:0", "bool")]
    samples = by_name(await read_all(driver, pts))
    assert [samples[n].status for n in ("c", "d", "i")] == [Status.BadConfigurationError] * 3
    assert samples["ok"].status == Status.Good


async def test_decode_error_is_bad_for_that_point_only(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """A string register holding non-ASCII bytes gives BadDecodingError; its block neighbours stay Good."""
    await modbus_server.set(Area.HOLDING, 60, [0xC3A4, 0x0000, 1234])
    text, num = pt("text", "hr:60", "string", length=2), pt("num", "hr:62")
    with capture_logs() as logs:
        samples = by_name(await read_all(driver, [text, num]))
    assert (samples["text"].value, samples["text"].status) == (None, Status.BadDecodingError)
    assert (samples["num"].value, samples["num"].status) == (1234, Status.Good)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["modbus_decode_error"]


async def test_recovery_is_logged_once(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """A point that was Bad logs once when it reads Good again."""
    text = pt("text", "hr:60", "string", length=1)
    await modbus_server.set(Area.HOLDING, 60, [0xC3A4])
    with capture_logs() as logs:
        await read_all(driver, [text])
        await modbus_server.set(Area.HOLDING, 60, [0x4F4B])
        assert (await read_all(driver, [text]))[0].value == "OK"
        await read_all(driver, [text])
    assert [e["event"] for e in logs] == ["modbus_decode_error", "modbus_point_recovered"]


# -- writing -----------------------------------------------------------------------------------------


async def test_write_and_read_back(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """Coil, single register, float and scaled int32 writes land on the server and read back."""
    coil = pt("pump", "coil:7", "bool", writable=True)
    reg = pt("mode", "hr:50", "uint16", writable=True)
    flt = pt("sp", "hr:52", "float32", writable=True, low=0, high=10)
    scaled = pt("flow", "hr:54", "int32", order="CDAB", scale=0.01, writable=True)
    text = pt("label", "hr:56", "string", length=2, writable=True)
    assert await driver.write(coil, True) == Status.Good
    assert await driver.write(reg, 4321) == Status.Good
    assert await driver.write(flt, 2.5) == Status.Good
    assert await driver.write(scaled, -12.34) == Status.Good
    assert await driver.write(text, "Hi!") == Status.Good
    assert await modbus_server.get(Area.COIL, 7, 1) == [True]
    assert await modbus_server.get(Area.HOLDING, 50, 1) == [4321]
    assert await modbus_server.get(Area.HOLDING, 52, 2) == [0x4020, 0x0000]
    assert await modbus_server.get(Area.HOLDING, 54, 2) == [0xFB2E, 0xFFFF]  # raw -1234, word swapped
    samples = await read_all(driver, [coil, reg, flt, scaled, text])
    assert [s.value for s in samples] == [True, 4321, 2.5, pytest.approx(-12.34), "Hi!"]
    assert await driver.write(coil, False) == Status.Good
    assert (await read_all(driver, [coil]))[0].value is False


async def test_write_function_codes(pymodbus_server: PymodbusServer, pm_driver: ModbusTcpDriver) -> None:
    """FC5 for a coil, FC6 for one register, FC16 for several."""
    pymodbus_server.pdus.clear()
    assert await pm_driver.write(pt("c", "coil:1", "bool", writable=True), True) == Status.Good
    assert await pm_driver.write(pt("r", "hr:1", "int16", writable=True), -1) == Status.Good
    assert await pm_driver.write(pt("f", "hr:2", "float64", writable=True), 1.5) == Status.Good
    assert pymodbus_server.pdus == [5, 6, 16]


async def test_write_multiple_uses_fc15_and_fc16(pymodbus_server: PymodbusServer) -> None:
    """The write_multiple quirk writes one coil with FC15 and one register with FC16."""
    d = ModbusTcpDriver(name="plc1", host="127.0.0.1", port=pymodbus_server.port, timeout_s=TIMEOUT_S, write_multiple=True)
    await d.connect()
    pymodbus_server.pdus.clear()
    assert await d.write(pt("c", "coil:2", "bool", writable=True), True) == Status.Good
    assert await d.write(pt("r", "hr:3", "int16", writable=True), -7) == Status.Good
    assert pymodbus_server.pdus == [15, 16]
    assert await pymodbus_server.get(Area.COIL, 2, 1) == [True]
    assert await pymodbus_server.get(Area.HOLDING, 3, 1) == [0xFFF9]
    await d.close()


@pytest.mark.parametrize(
    ("point", "value", "status"),
    [
        (pt("ro", "hr:40"), 1, Status.BadNotWritable),
        (pt("ro_coil", "coil:2", "bool"), True, Status.BadNotWritable),
        (pt("sp", "hr:40", "float32", writable=True, low=0, high=100), 150.0, Status.BadOutOfRange),
        (pt("sp", "hr:40", "float32", writable=True, low=0, high=100), -0.5, Status.BadOutOfRange),
        (pt("sp", "hr:40", "float32", writable=True, low=0, high=100), float("nan"), Status.BadOutOfRange),
        (pt("raw", "hr:40", "uint16", writable=True), 70000, Status.BadOutOfRange),
        (pt("raw", "hr:40", "int16", writable=True, scale=0.1), 5000.0, Status.BadOutOfRange),
        (pt("txt", "hr:40", "string", length=1, writable=True), "toolong", Status.BadOutOfRange),
        (pt("num", "hr:40", "uint16", writable=True), "12", Status.BadTypeMismatch),
        (pt("num", "hr:40", "uint16", writable=True), True, Status.BadTypeMismatch),
        (pt("c", "coil:2", "bool", writable=True), 2.5, Status.BadTypeMismatch),
        (pt("txt", "hr:40", "string", length=1, writable=True), 5, Status.BadTypeMismatch),
    ],
    ids=lambda v: None,
)
async def test_refused_writes_send_nothing(
    pymodbus_server: PymodbusServer, pm_driver: ModbusTcpDriver, point: RegisterPoint, value: object, status: Status
) -> None:
    """Not writable, out of [low, high], out of the raw range or the wrong kind: refused before sending."""
    await pymodbus_server.set(point.area, point.address, [True] if point.area.is_bit else [999])
    pymodbus_server.pdus.clear()
    with capture_logs() as logs:
        assert await pm_driver.write(point, value) == status
    assert pymodbus_server.pdus == []
    assert await pymodbus_server.get(point.area, point.address, 1) == ([True] if point.area.is_bit else [999])
    assert [(e["event"], e["status"]) for e in logs] == [("modbus_write_refused", status.name)]


async def test_out_of_range_write_refused_on_both_servers(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    sp = pt("sp", "hr:45", "uint16", writable=True, low=10, high=20)
    await modbus_server.set(Area.HOLDING, 45, [15])
    assert await driver.write(sp, 21) == Status.BadOutOfRange
    assert await modbus_server.get(Area.HOLDING, 45, 1) == [15]
    assert await driver.write(sp, 20) == Status.Good
    assert await modbus_server.get(Area.HOLDING, 45, 1) == [20]


async def test_write_exception_maps_to_status(modbus_server: ModbusTestServer, driver: ModbusTcpDriver) -> None:
    """A write to a missing register answers ILLEGAL_ADDRESS -> BadConfigurationError; the link stays up."""
    with capture_logs() as logs:
        assert await driver.write(pt("far", "hr:1000", writable=True), 1) == Status.BadConfigurationError
        assert await driver.write(pt("far32", "hr:1000", "uint32", writable=True), 1) == Status.BadConfigurationError
        assert await driver.write(pt("farcoil", "coil:1000", "bool", writable=True), True) == Status.BadConfigurationError
    assert {e["event"] for e in logs} == {"modbus_write_failed"}
    assert driver.state is LinkState.CONNECTED
    assert (await read_all(driver, [pt("x", "hr:0")]))[0].status == Status.Good


async def test_write_without_connection(free_port: int) -> None:
    d = ModbusTcpDriver(name="plc1", host="127.0.0.1", port=free_port, timeout_s=TIMEOUT_S)
    assert await d.write(pt("w", "hr:0", writable=True), 1) == Status.BadNotConnected
    await d.close()
