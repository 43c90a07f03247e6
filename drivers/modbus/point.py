"""The vocabulary of Modbus points: data tables, value types, byte orders and the validated point (pure).

``RegisterPoint`` is built and checked by ``drivers.modbus.address.make_point``; the other modules
of the package read it.

Byte and word order (``Order``) for values wider than one byte:

* ``ABCD``: big-endian words, big-endian bytes (Modbus default; float32 1.0 = [0x3F80, 0x0000]).
* ``CDAB``: word swap; the least significant register comes first.
* ``BADC``: byte swap inside each register; the register order stays big-endian.
* ``DCBA``: both; the value is fully little-endian.

The same rule applies to 64-bit values (CDAB reverses all four registers). A 16-bit value is only
affected by the byte swap. Strings are only affected by the byte swap (BADC/DCBA), since text has
no word order. Single bits ignore the order, so a device-wide default order applies harmlessly to
every tag.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Area(enum.Enum):
    """The four Modbus data tables."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit(self) -> bool:
        """True for the single-bit tables (coils, discrete inputs)."""
        return self in (Area.COIL, Area.DISCRETE_INPUT)

    @property
    def can_write(self) -> bool:
        """True for the tables a client may write (coils, holding registers)."""
        return self in (Area.COIL, Area.HOLDING)

    @property
    def noun(self) -> str:
        """What one address of this table is called in messages."""
        return _NOUN[self]

    @property
    def plural(self) -> str:
        return _PLURAL[self]


_NOUN = {
    Area.COIL: "coil",
    Area.DISCRETE_INPUT: "discrete input",
    Area.HOLDING: "register",
    Area.INPUT: "register",
}
_PLURAL = {
    Area.COIL: "coils",
    Area.DISCRETE_INPUT: "discrete inputs",
    Area.HOLDING: "holding registers",
    Area.INPUT: "input registers",
}


class DataType(enum.Enum):
    """Value types a point can hold; the value is the name used in configs."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"

    @property
    def registers(self) -> int:
        """Registers occupied by one value (0 for string: its length is configured)."""
        return _REGISTERS[self]

    @property
    def is_integer(self) -> bool:
        return self in _INT_RANGE

    @property
    def is_float(self) -> bool:
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    @property
    def is_numeric(self) -> bool:
        return self.is_integer or self.is_float

    @property
    def int_range(self) -> tuple[int, int]:
        """Inclusive raw range of an integer type."""
        return _INT_RANGE[self]


_REGISTERS = {
    DataType.BOOL: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.STRING: 0,
}
_INT_RANGE = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


class Order(enum.Enum):
    """Byte/word order of multi-byte values; see the module docstring."""

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def word_swap(self) -> bool:
        """True when the least significant register comes first."""
        return self is Order.CDAB or self is Order.DCBA

    @property
    def byte_swap(self) -> bool:
        """True when the low byte of each register comes first."""
        return self is Order.BADC or self is Order.DCBA


@dataclass(frozen=True, slots=True)
class RegisterPoint:
    """One validated tag of a Modbus device; build it with ``make_point``.

    ``count`` is the number of registers the value occupies (1 for a coil or discrete input).
    ``bit`` is set only for a single bit inside a register (``hr:100.3``). ``length`` is the
    string length in registers (None for other types). Decoded values are
    ``raw * scale + offset``.
    """

    name: str
    unit_id: int
    area: Area
    address: int
    data_type: DataType
    order: Order
    count: int
    bit: int | None
    length: int | None
    scale: float
    offset: float
    writable: bool
    low: float | None
    high: float | None
    units: str | None

    @property
    def end(self) -> int:
        """First address after this point."""
        return self.address + self.count

    @property
    def is_scaled(self) -> bool:
        return self.scale != 1.0 or self.offset != 0.0

    @property
    def value_type(self) -> str:
        """The type of the values read delivers: a scaled number is a float64 (its engineering values
        are not integers), anything else its data type."""
        if self.is_scaled and self.data_type not in (DataType.BOOL, DataType.STRING):
            return "float64"
        return self.data_type.value
