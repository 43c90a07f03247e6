"""Register map of the simulated plant, and its encoding with ``struct``.

Pure: no pymodbus, no I/O. This encoding is written independently of ``drivers.modbus`` so
that the gateway's codec can be tested against it.

Addresses are zero-based (the address on the wire). Multi-register values:

* ``ABCD``: big-endian bytes, high word first (the Modbus default).
* ``CDAB``: big-endian bytes inside each word, low word first ("word swapped").

Reserved addresses inside the blocks (input 5..9, holding 3..9 and 11..19, coils and
discrete inputs 2..15) read as 0; writes to reserved holding registers or coils are
rejected with ILLEGAL_DATA_ADDRESS.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .plant import Fault, Plant, Setpoints

__all__ = [
    "COIL_COUNT",
    "DEFAULT_TEMP_ALARM_LIMIT_C",
    "DISCRETE_COUNT",
    "HOLDING_COUNT",
    "INPUT_COUNT",
    "REGISTER_MAP",
    "UNIT_ID",
    "Area",
    "Field",
    "HoldingImage",
    "StatusBit",
    "WriteRejection",
    "check_coil_write",
    "check_holding_write",
    "decode_holding",
    "encode_discrete",
    "encode_holding",
    "encode_inputs",
    "status_word",
]

UNIT_ID = 1
INPUT_COUNT = 20  # input registers 0..19
HOLDING_COUNT = 22  # holding registers 0..21
COIL_COUNT = 2
DISCRETE_COUNT = 2
DEFAULT_TEMP_ALARM_LIMIT_C = 60.0

# Holding register addresses.
HR_HEATER = 0
HR_PUMP_SPEED = 1
HR_VALVE = 2
HR_FAULT = 10
HR_TEMP_ALARM = 20  # 20..21
_PCT_REGISTERS = (HR_HEATER, HR_PUMP_SPEED, HR_VALVE)
_PCT_RAW_MAX = 1000  # 100.0 % at x0.1

# Coil addresses.
COIL_PUMP_ENABLE = 0
COIL_HEATER_ENABLE = 1


class Area(enum.Enum):
    INPUT = "input register"
    HOLDING = "holding register"
    COIL = "coil"
    DISCRETE = "discrete input"


class StatusBit(enum.IntFlag):
    """Bits of the status word (input register 4)."""

    PUMP_RUNNING = 1 << 0
    HEATER_ON = 1 << 1
    FAULT_ACTIVE = 1 << 2
    HIGH_LEVEL = 1 << 3
    LOW_LEVEL = 1 << 4


class WriteRejection(enum.IntEnum):
    """Why a write was refused; the values are the Modbus exception codes."""

    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3


@dataclass(frozen=True, slots=True)
class Field:
    """One entry of the register map (used by the docs table and the tests)."""

    area: Area
    address: int
    name: str
    data_type: str  # int16 | uint16 | uint32 | float32 | bool
    order: str  # ABCD | CDAB | "-" for single registers and bits
    scale: float
    unit: str
    access: str  # r | rw
    meaning: str

    @property
    def count(self) -> int:
        return 2 if self.data_type in ("uint32", "float32") else 1


REGISTER_MAP: tuple[Field, ...] = (
    Field(Area.INPUT, 0, "tank_temp_c", "int16", "-", 0.1, "degC", "r", "tank temperature"),
    Field(Area.INPUT, 1, "ambient_temp_c", "int16", "-", 0.1, "degC", "r", "ambient temperature"),
    Field(Area.INPUT, 2, "level_pct", "int16", "-", 0.1, "%", "r", "tank level"),
    Field(Area.INPUT, 3, "pump_speed_rpm", "int16", "-", 1.0, "rpm", "r", "pump speed feedback"),
    Field(
        Area.INPUT,
        4,
        "status",
        "uint16",
        "-",
        1.0,
        "-",
        "r",
        "status word: bit0 pump running, bit1 heater on, bit2 fault active, bit3 high level, bit4 low level",
    ),
    Field(Area.INPUT, 10, "flow_l_min", "float32", "ABCD", 1.0, "l/min", "r", "pump flow (inflow)"),
    Field(Area.INPUT, 12, "motor_current_a", "float32", "CDAB", 1.0, "A", "r", "pump motor current"),
    Field(Area.INPUT, 14, "vibration_mm_s", "float32", "ABCD", 1.0, "mm/s", "r", "pump vibration RMS"),
    Field(Area.INPUT, 16, "pump_runtime_s", "uint32", "ABCD", 1.0, "s", "r", "pump runtime counter"),
    Field(Area.INPUT, 18, "pumped_volume_l", "uint32", "CDAB", 1.0, "l", "r", "pumped volume totaliser"),
    Field(Area.HOLDING, 0, "heater_pct", "int16", "-", 0.1, "%", "rw", "heater power setpoint, 0..1000 raw"),
    Field(Area.HOLDING, 1, "pump_speed_pct", "int16", "-", 0.1, "%", "rw", "pump speed setpoint, 0..1000 raw"),
    Field(Area.HOLDING, 2, "valve_pct", "int16", "-", 0.1, "%", "rw", "outlet valve opening, 0..1000 raw"),
    Field(Area.HOLDING, 10, "fault", "uint16", "-", 1.0, "-", "rw", "fault select: 0 none, 1 bearing, 2 drift, 3 stuck, 4 flow sensor, 5 spikes"),
    Field(Area.HOLDING, 20, "temp_alarm_limit_c", "float32", "ABCD", 1.0, "degC", "rw", "temperature alarm limit (stored only)"),
    Field(Area.COIL, 0, "pump_enable", "bool", "-", 1.0, "-", "rw", "pump enable"),
    Field(Area.COIL, 1, "heater_enable", "bool", "-", 1.0, "-", "rw", "heater enable"),
    Field(Area.DISCRETE, 0, "high_level", "bool", "-", 1.0, "-", "r", "high level alarm (level > 90 %)"),
    Field(Area.DISCRETE, 1, "low_level", "bool", "-", 1.0, "-", "r", "low level alarm (level < 10 %)"),
)


# ------------------------------------------------------------------ primitives
def _int16(name: str, value: float, scale: float) -> int:
    """Scaled value -> one register holding a two's complement int16."""
    raw = round(value / scale)
    if not -32768 <= raw <= 32767:
        raise ValueError(f"{name}={value!r} does not fit int16 at scale {scale}")
    return struct.unpack(">H", struct.pack(">h", raw))[0]


def _uint32(name: str, value: float, order: str) -> list[int]:
    raw = math.floor(value)
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ValueError(f"{name}={value!r} does not fit uint32")
    return _words(struct.pack(">I", raw), order)


def _float32(value: float, order: str) -> list[int]:
    return _words(struct.pack(">f", value), order)


def _words(data: bytes, order: str) -> list[int]:
    hi, lo = struct.unpack(">HH", data)
    if order == "ABCD":
        return [hi, lo]
    if order == "CDAB":
        return [lo, hi]
    raise ValueError(f"unsupported word order {order!r}")


def _to_int16(register: int) -> int:
    return struct.unpack(">h", struct.pack(">H", register))[0]


def _float32_from(words: Sequence[int], order: str) -> float:
    hi, lo = (words[0], words[1]) if order == "ABCD" else (words[1], words[0])
    return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]


# ---------------------------------------------------------------- input image
def status_word(plant: Plant) -> int:
    """Build the status word (input register 4) from the plant state."""
    word = StatusBit(0)
    if plant.pump_running:
        word |= StatusBit.PUMP_RUNNING
    if plant.heater_on:
        word |= StatusBit.HEATER_ON
    if plant.fault_active:
        word |= StatusBit.FAULT_ACTIVE
    if plant.high_level:
        word |= StatusBit.HIGH_LEVEL
    if plant.low_level:
        word |= StatusBit.LOW_LEVEL
    return int(word)


def encode_inputs(m: Mapping[str, float], status: int) -> list[int]:
    """Encode measurements (``Plant.measurements()`` keys) into input registers 0..19."""
    if not 0 <= status <= 0xFFFF:
        raise ValueError(f"status={status!r} does not fit uint16")
    regs = [0] * INPUT_COUNT
    regs[0] = _int16("tank_temp_c", m["tank_temp_c"], 0.1)
    regs[1] = _int16("ambient_temp_c", m["ambient_temp_c"], 0.1)
    regs[2] = _int16("level_pct", m["level_pct"], 0.1)
    regs[3] = _int16("pump_speed_rpm", m["pump_speed_rpm"], 1.0)
    regs[4] = status
    regs[10:12] = _float32(m["flow_l_min"], "ABCD")
    regs[12:14] = _float32(m["motor_current_a"], "CDAB")
    regs[14:16] = _float32(m["vibration_mm_s"], "ABCD")
    regs[16:18] = _uint32("pump_runtime_s", m["pump_runtime_s"], "ABCD")
    regs[18:20] = _uint32("pumped_volume_l", m["pumped_volume_l"], "CDAB")
    return regs


def encode_discrete(plant: Plant) -> list[bool]:
    """Discrete inputs 0..1: high level alarm, low level alarm."""
    return [plant.high_level, plant.low_level]


# -------------------------------------------------------------- holding image
@dataclass(frozen=True, slots=True)
class HoldingImage:
    """Decoded holding registers and coils: everything a client can write."""

    setpoints: Setpoints
    fault: Fault
    temp_alarm_limit_c: float


def encode_holding(setpoints: Setpoints, fault: Fault, temp_alarm_limit_c: float = DEFAULT_TEMP_ALARM_LIMIT_C) -> tuple[list[int], list[bool]]:
    """Encode setpoints into holding registers 0..21 and coils 0..1."""
    regs = [0] * HOLDING_COUNT
    regs[HR_HEATER] = _int16("heater_pct", setpoints.heater_pct, 0.1)
    regs[HR_PUMP_SPEED] = _int16("pump_speed_pct", setpoints.pump_speed_pct, 0.1)
    regs[HR_VALVE] = _int16("valve_pct", setpoints.valve_pct, 0.1)
    regs[HR_FAULT] = int(Fault(fault))
    regs[HR_TEMP_ALARM : HR_TEMP_ALARM + 2] = _float32(temp_alarm_limit_c, "ABCD")
    coils = [bool(setpoints.pump_enable), bool(setpoints.heater_enable)]
    return regs, coils


def decode_holding(regs: Sequence[int], coils: Sequence[bool]) -> HoldingImage:
    """Decode holding registers 0..21 and coils 0..1 (already validated on write)."""
    if len(regs) < HOLDING_COUNT or len(coils) < COIL_COUNT:
        raise ValueError(f"need {HOLDING_COUNT} holding registers and {COIL_COUNT} coils")
    setpoints = Setpoints(
        heater_pct=_to_int16(regs[HR_HEATER]) / 10.0,
        pump_speed_pct=_to_int16(regs[HR_PUMP_SPEED]) / 10.0,
        valve_pct=_to_int16(regs[HR_VALVE]) / 10.0,
        pump_enable=bool(coils[COIL_PUMP_ENABLE]),
        heater_enable=bool(coils[COIL_HEATER_ENABLE]),
    )
    return HoldingImage(
        setpoints=setpoints,
        fault=Fault(regs[HR_FAULT]),
        temp_alarm_limit_c=_float32_from(regs[HR_TEMP_ALARM : HR_TEMP_ALARM + 2], "ABCD"),
    )


def check_holding_write(address: int, values: Sequence[int]) -> tuple[WriteRejection, str] | None:
    """Validate a client write of *values* starting at holding register *address*.

    Return ``None`` to accept, or the rejection and a reason. The whole write is refused if
    any register in it is refused (nothing is stored, nothing is clamped).
    """
    fault_values = {int(f) for f in Fault}
    for i, raw in enumerate(values):
        addr = address + i
        if addr in _PCT_REGISTERS:
            if not 0 <= _to_int16(raw) <= _PCT_RAW_MAX:
                reason = f"hr{addr}={_to_int16(raw)} outside 0..{_PCT_RAW_MAX}"
                return WriteRejection.ILLEGAL_DATA_VALUE, reason
        elif addr == HR_FAULT:
            if raw not in fault_values:
                return WriteRejection.ILLEGAL_DATA_VALUE, f"hr{addr}={raw} is not a fault code 0..3"
        elif addr in (HR_TEMP_ALARM, HR_TEMP_ALARM + 1):
            pass
        else:
            return WriteRejection.ILLEGAL_DATA_ADDRESS, f"hr{addr} is reserved"
    # A write covering both words of the alarm limit must be a finite float.
    start, end = address, address + len(values)
    if start <= HR_TEMP_ALARM and end >= HR_TEMP_ALARM + 2:
        k = HR_TEMP_ALARM - start
        limit = _float32_from(values[k : k + 2], "ABCD")
        if not math.isfinite(limit):
            return WriteRejection.ILLEGAL_DATA_VALUE, f"temperature alarm limit {limit!r} is not finite"
    return None


def check_coil_write(address: int, values: Sequence[bool]) -> tuple[WriteRejection, str] | None:
    """Validate a client write of coils starting at *address*."""
    if address < 0 or address + len(values) > COIL_COUNT:
        last = address + len(values) - 1
        return WriteRejection.ILLEGAL_DATA_ADDRESS, f"coils {address}..{last} outside 0..{COIL_COUNT - 1}"
    return None
