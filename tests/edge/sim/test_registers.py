"""Register map and struct encoding of the simulated plant (edge.sim.registers)."""

from __future__ import annotations

import pathlib
import re
import struct

import pytest

from edge.sim import registers as rm
from edge.sim.plant import Fault, Plant, Setpoints

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "plant.md"

SAMPLE = {
    "tank_temp_c": -12.34,
    "ambient_temp_c": 21.96,
    "level_pct": 64.0,
    "pump_speed_rpm": 725.4,
    "flow_l_min": 1.0,
    "motor_current_a": 1.0,
    "vibration_mm_s": -2.0,
    "pump_runtime_s": 0x12345678 + 0.9,
    "pumped_volume_l": 0x12345678,
}


def test_input_image_uses_the_documented_types_and_word_orders() -> None:
    regs = rm.encode_inputs(SAMPLE, status=0b10011)
    assert len(regs) == 20
    assert regs[0] == 0xFF85  # -123 as int16: -12.3 degC at x0.1
    assert regs[1] == 220
    assert regs[2] == 640
    assert regs[3] == 725
    assert regs[4] == 0b10011
    assert regs[5:10] == [0] * 5  # reserved
    assert regs[10:12] == [0x3F80, 0x0000]  # 1.0f ABCD
    assert regs[12:14] == [0x0000, 0x3F80]  # 1.0f CDAB
    assert regs[14:16] == [0xC000, 0x0000]  # -2.0f ABCD
    assert regs[16:18] == [0x1234, 0x5678]  # uint32 ABCD, floor of the counter
    assert regs[18:20] == [0x5678, 0x1234]  # uint32 CDAB


def test_values_that_do_not_fit_raise_instead_of_wrapping() -> None:
    with pytest.raises(ValueError, match="tank_temp_c"):
        rm.encode_inputs({**SAMPLE, "tank_temp_c": 4000.0}, status=0)
    with pytest.raises(ValueError, match="pumped_volume_l"):
        rm.encode_inputs({**SAMPLE, "pumped_volume_l": -1.0}, status=0)


def test_status_word_bits() -> None:
    plant = Plant(fault=Fault.SENSOR_DRIFT)
    assert rm.status_word(plant) == 0b00111
    plant = Plant(setpoints=Setpoints(pump_speed_pct=100.0, valve_pct=0.0, heater_enable=False), level_pct=95.0)
    assert rm.status_word(plant) == 0b01001
    plant = Plant(setpoints=Setpoints(pump_enable=False, heater_pct=0.0), level_pct=5.0)
    assert rm.status_word(plant) == 0b10000
    assert rm.encode_discrete(plant) == [False, True]


def test_holding_image_round_trips() -> None:
    sp = Setpoints(heater_pct=12.3, pump_speed_pct=100.0, valve_pct=0.0, pump_enable=False, heater_enable=True)
    regs, coils = rm.encode_holding(sp, Fault.STUCK_SENSOR, temp_alarm_limit_c=75.5)
    assert regs[0:3] == [123, 1000, 0]
    assert regs[10] == 3
    assert regs[20:22] == list(struct.unpack(">HH", struct.pack(">f", 75.5)))
    assert coils == [False, True]
    image = rm.decode_holding(regs, coils)
    assert image == rm.HoldingImage(setpoints=sp, fault=Fault.STUCK_SENSOR, temp_alarm_limit_c=75.5)


@pytest.mark.parametrize(
    ("address", "values", "expected"),
    [
        (0, [0], None),
        (0, [1000, 500, 1], None),
        (0, [1001], rm.WriteRejection.ILLEGAL_DATA_VALUE),
        (1, [0xFFFF], rm.WriteRejection.ILLEGAL_DATA_VALUE),  # -1 as int16
        (2, [999, 0], rm.WriteRejection.ILLEGAL_DATA_ADDRESS),  # runs into reserved hr3
        (10, [3], None),
        (10, [5], None),
        (10, [6], rm.WriteRejection.ILLEGAL_DATA_VALUE),
        (20, list(struct.unpack(">HH", struct.pack(">f", 80.0))), None),
        (20, [0x7FC0, 0x0000], rm.WriteRejection.ILLEGAL_DATA_VALUE),  # NaN
        (21, [0x1234], None),  # half a float: stored as written
        (15, [0], rm.WriteRejection.ILLEGAL_DATA_ADDRESS),
    ],
)
def test_holding_writes_are_checked_whole(address, values, expected) -> None:
    verdict = rm.check_holding_write(address, values)
    assert (verdict[0] if verdict else None) == expected


def test_coil_writes_outside_0_1_are_refused() -> None:
    assert rm.check_coil_write(0, [True, False]) is None
    assert rm.check_coil_write(1, [True]) is None
    assert rm.check_coil_write(1, [True, True])[0] is rm.WriteRejection.ILLEGAL_DATA_ADDRESS
    assert rm.check_coil_write(2, [True])[0] is rm.WriteRejection.ILLEGAL_DATA_ADDRESS


def test_docs_table_matches_the_register_map() -> None:
    """Every entry of REGISTER_MAP appears in docs/plant.md with the same type, order and scale."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and re.fullmatch(r"\d+(-\d+)?", cells[0]):
            rows[(cells[1], int(cells[0].split("-")[0]))] = cells
    for f in rm.REGISTER_MAP:
        cells = rows.get((f.area.value, f.address))
        assert cells is not None, f"{f.area.value} {f.address} missing from {DOC.name}"
        assert cells[2] == f.data_type, f.name
        assert cells[3] == f.order, f.name
        assert float(cells[4]) == f.scale, f.name
        assert cells[6] == f.access, f.name
    assert len(rows) == len(rm.REGISTER_MAP)
