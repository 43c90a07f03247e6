"""Settings of Modbus devices (TCP and RTU buses) and their tags: the ``[[devices]]`` tables of
``driver = "modbus_tcp"`` and ``driver = "modbus_rtu"``.

Pure (pydantic and the pure Modbus modules; no pymodbus), so loading a config does not import the
protocol stack. Protocol limits come from ``drivers.modbus.limits``; the other limits are the
field limits below. The drivers take these values as they are (``from_settings``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from drivers.modbus.address import RegisterPoint, make_point, parse_address
from drivers.modbus.limits import MAX_GAP, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_STRING_REGISTERS, MAX_UNIT_ID
from drivers.settings import NAME_PATTERN, DeviceSettings, ExclusiveResource, Name, Strict, TagFiles

ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]


STATE_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")  # tags that may have named states
UnitId = Annotated[int, Field(ge=0, le=MAX_UNIT_ID)]


class ModbusTag(Strict):
    name: Name
    address: str
    type: str = "uint16"
    order: ByteOrder | None = None
    scale: float = 1.0
    offset: float = 0.0
    # linear scaling by ranges instead of scale/offset: raw_low..raw_high -> eng_low..eng_high
    raw_low: float | None = None
    raw_high: float | None = None
    eng_low: float | None = None
    eng_high: float | None = None
    length: int | None = Field(None, ge=1, le=MAX_STRING_REGISTERS)  # writable: at most one FC16 write (make_point)
    writable: bool = False
    low: float | None = None
    high: float | None = None
    units: str | None = None
    description: str = ""
    unit_id: int | None = Field(None, ge=0, le=MAX_UNIT_ID)
    poll_interval_s: float | None = Field(None, gt=0, le=3600)  # scan group; default: the device's
    historize: bool = False  # keep this tag's samples in the history database
    deadband: float = Field(0.0, ge=0)  # MQTT report by exception: send a change larger than this (0: any change)
    # limit alarm: active above alarm_high / below alarm_low, clears alarm_deadband inside the limit
    alarm_high: float | None = None
    alarm_low: float | None = None
    alarm_deadband: float = Field(0.0, ge=0)
    alarm_severity: int = Field(500, ge=1, le=1000)
    # coded values with names: {0 = "stopped", 1 = "running"}; served as a MultiStateValueDiscrete
    # (in a CSV cell: 0=stopped;1=running)
    states: dict[int, str] | None = Field(None, json_schema_extra={"csv_text": "0=stopped;1=running"})

    @field_validator("states", mode="before")
    @classmethod
    def _states_text(cls, v: object) -> object:
        if isinstance(v, str):  # a CSV cell
            out: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in v.split(";"))):
                code, sep, label = part.partition("=")
                if not sep:
                    raise ValueError(f"states: {part!r} is not code=name (e.g. 0=stopped;1=running)")
                out[code.strip()] = label.strip()
            return out
        return v

    @field_validator("states")
    @classmethod
    def _states(cls, v: dict[int, str] | None) -> dict[int, str] | None:
        if v is not None:
            if not v:
                raise ValueError("states: give at least one code = name")
            empty = [code for code, label in v.items() if not label.strip()]
            if empty:
                raise ValueError(f"states: code {empty[0]} has an empty name")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        parse_address(v)  # raises ValueError with the reason
        return v

    @model_validator(mode="after")
    def _alarm_limits(self) -> ModbusTag:
        if self.alarm_high is None and self.alarm_low is None:
            return self
        if self.type in ("bool", "string"):
            raise ValueError(f"alarm_high/alarm_low need a numeric tag, not type {self.type!r}")
        if self.alarm_high is not None and self.alarm_low is not None and self.alarm_low >= self.alarm_high:
            raise ValueError(f"alarm_low ({self.alarm_low:g}) must be below alarm_high ({self.alarm_high:g})")
        return self

    @model_validator(mode="after")
    def _point(self) -> ModbusTag:
        # type/area/limits consistency; the device's defaults do not change what is allowed
        point = self.to_point(unit_id=1, order="ABCD")
        if self.states is not None and point.value_type not in STATE_TYPES:
            raise ValueError(f"states need an integer tag without scaling (the device's raw codes), not one read as {point.value_type}")
        return self

    def to_point(self, *, unit_id: int, order: str) -> RegisterPoint:
        return make_point(
            name=self.name,
            unit_id=unit_id if self.unit_id is None else self.unit_id,
            address=self.address,
            type=self.type,
            order=self.order or order,
            scale=self.scale,
            offset=self.offset,
            length=self.length,
            writable=self.writable,
            low=self.low,
            high=self.high,
            units=self.units,
            raw_low=self.raw_low,
            raw_high=self.raw_high,
            eng_low=self.eng_low,
            eng_high=self.eng_high,
        )


class ModbusSettings(DeviceSettings):
    """Settings shared by Modbus TCP and RTU devices (one device = one physical bus)."""

    unit_id: int = Field(1, ge=0, le=MAX_UNIT_ID)
    timeout_s: float = Field(1.0, gt=0, le=60)
    # the adaptive timeout of each unit stays within timeout_min_s..timeout_s (drivers.modbus.rtt)
    timeout_min_s: float = Field(0.05, gt=0, le=60)
    adaptive_timeout: bool = True
    retries: int = Field(3, ge=0, le=10)
    reopen_after: int = Field(3, ge=1, le=100)  # poll cycles without any answer before the link is reopened
    poll_interval_s: float = Field(1.0, gt=0, le=3600)
    order: ByteOrder = "ABCD"
    max_registers: int = Field(MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    max_bits: int = Field(MAX_READ_BITS, ge=1, le=MAX_READ_BITS)
    max_gap: int = Field(10, ge=0, le=MAX_GAP)
    demote_after: int = Field(5, ge=1, le=100)
    demote_for_s: float = Field(10.0, gt=0, le=3600)
    stale_after_s: float = Field(30.0, gt=0, le=86400)
    write_multiple: bool = False  # device quirk: FC15/FC16 even for one coil or register
    tags_csv: str | None = None  # relative to the config file's folder
    tags_from: TagFiles = None  # tag files: .toml ([[tags]] tables) or .csv, relative to the config file
    # several identical units (same register map) on this bus: every tag is read from each unit,
    # under Devices/<device>/unit<id>/<tag>; or {pump_a = 1, pump_b = 2} to name the unit folders
    units: list[UnitId] | dict[Name, UnitId] | None = None
    description: str = ""
    tags: list[ModbusTag] = Field(default_factory=list)

    @field_validator("units", mode="before")
    @classmethod
    def _units(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, str):
            raise ValueError("units of a device are its Modbus unit ids (units = [1, 2, 3]); engineering units go on each tag")
        if isinstance(v, dict):
            items = list(v.items())
        elif isinstance(v, list):
            items = list(enumerate(v))
        else:
            raise ValueError("must be a list of unit ids (units = [1, 2, 3]) or a table naming each unit (units = {pump_a = 1, pump_b = 2})")
        if not items:
            raise ValueError("give at least one unit id")
        seen: set[int] = set()
        for key, uid in items:
            if isinstance(key, str) and not re.match(NAME_PATTERN, key):
                raise ValueError(f"unit name {key!r} must start with a letter and hold only letters, digits, '_' and '-' (at most 64)")
            if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= MAX_UNIT_ID:
                raise ValueError(f"unit id {uid!r} is not an integer in 0..{MAX_UNIT_ID}")
            if uid in seen:
                raise ValueError(f"unit id {uid} is listed twice")
            seen.add(uid)
        return v

    @model_validator(mode="after")
    def _timeouts(self) -> ModbusSettings:
        if self.timeout_min_s > self.timeout_s:
            raise ValueError(f"timeout_min_s ({self.timeout_min_s:g}) must not exceed timeout_s ({self.timeout_s:g})")
        return self

    @model_validator(mode="after")
    def _one_unit_key(self) -> ModbusSettings:
        if self.units is not None and "unit_id" in self.model_fields_set:
            raise ValueError("unit_id and units exclude each other: units lists every unit id the device's tags are read from")
        return self

    def points(self) -> list[RegisterPoint]:
        """The validated register points of this device, in tag order."""
        return [t.to_point(unit_id=self.unit_id, order=self.order) for t in self.tags]

    def poll_intervals(self) -> list[float]:
        """Each tag's poll period (its scan group), in tag order."""
        return [t.poll_interval_s or self.poll_interval_s for t in self.tags]


class ModbusTcpSettings(ModbusSettings):
    driver: Literal["modbus_tcp"]
    host: str
    port: int = Field(502, ge=1, le=65535)


class ModbusRtuSettings(ModbusSettings):
    driver: Literal["modbus_rtu"]
    port: str  # serial device, e.g. /dev/ttyUSB0 or COM3
    baud_rate: int = Field(gt=0, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    data_bits: Literal[7, 8] = 8
    stop_bits: Literal[1, 2] = 1
    frame_pause_s: float | None = Field(None, ge=0, le=1)  # default: 3.5 characters, at least 1.75 ms

    def exclusive_resource(self) -> ExclusiveResource:
        """One device per serial bus: the units of a bus share one device through their unit_id."""
        hint = "one device per bus; list its units (units = [1, 2]) or give tags their own unit_id instead"
        return ExclusiveResource("port", f"serial port {self.port!r}", hint)
