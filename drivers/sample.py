"""Samples and status codes shared by every driver, the registry and the twin.

Status values are the OPC UA StatusCode numbers (identical to ``asyncua.ua.StatusCodes``) so a
status travels unchanged from a Modbus response to an OPC UA DataValue. Drivers stay free of
asyncua; ``tests/drivers/test_sample.py`` checks the numbers against asyncua.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

# the integer data types of tags and nodes: (smallest, largest) value
INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}

# a scalar, or a one-dimensional array (list) of one scalar type (OPC UA arrays)
ScalarValue: TypeAlias = bool | int | float | str | datetime | bytes
TagValue: TypeAlias = ScalarValue | list[ScalarValue] | None


class Status(enum.IntEnum):
    """OPC UA status codes used by the gateway (values identical to asyncua.ua.StatusCodes)."""

    Good = 0x00000000
    UncertainLastUsableValue = 0x40900000
    UncertainNoCommunicationLastUsableValue = 0x408F0000
    UncertainSubNormal = 0x40950000
    BadInternalError = 0x80020000
    BadCommunicationError = 0x80050000
    BadDecodingError = 0x80070000
    BadTimeout = 0x800A0000
    BadCertificateUntrusted = 0x801A0000
    BadUserAccessDenied = 0x801F0000
    BadNoCommunication = 0x80310000
    BadWaitingForInitialData = 0x80320000
    BadNodeIdUnknown = 0x80340000
    BadNotWritable = 0x803B0000
    BadOutOfRange = 0x803C0000
    BadNotSupported = 0x803D0000
    BadTypeMismatch = 0x80740000
    BadConfigurationError = 0x80890000
    BadNotConnected = 0x808A0000
    BadDeviceFailure = 0x808B0000
    BadSensorFailure = 0x808C0000
    BadOutOfService = 0x808D0000


def severity(status: int) -> int:
    """0 = Good, 1 = Uncertain, 2 = Bad (the top two bits of the StatusCode)."""
    return (int(status) >> 30) & 0b11


def is_good(status: int) -> bool:
    return severity(status) == 0


def is_uncertain(status: int) -> bool:
    return severity(status) == 1


def is_bad(status: int) -> bool:
    return severity(status) >= 2


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TagSample:
    """One observation of one tag.

    ``value`` holds the engineering value (after scaling) or None; it never holds an error text.
    With an Uncertain status it is the last usable value; with a Bad status it is None.
    """

    tag: str
    value: TagValue
    status: int
    source_time: datetime
    server_time: datetime

    @property
    def is_good(self) -> bool:
        return is_good(self.status)

    @property
    def is_bad(self) -> bool:
        return is_bad(self.status)

    @property
    def is_uncertain(self) -> bool:
        return is_uncertain(self.status)


# A frozen dataclass builds its instances with one ``object.__setattr__`` call per field, looked up
# through a global each time; a sample is built once per value read, so that cost is paid 10,000
# times a second at 10,000 tags polled every second. This ``__init__`` stores the same fields
# through the slots' own descriptors (about 40 % cheaper); the class stays a frozen dataclass
# (assignment raises FrozenInstanceError; eq, repr, hash and ``dataclasses.replace`` unchanged).
_SETTERS: tuple[Any, ...] = tuple(getattr(TagSample, f).__set__ for f in ("tag", "value", "status", "source_time", "server_time"))
_set_tag, _set_value, _set_status, _set_source_time, _set_server_time = _SETTERS


def _sample_init(self: TagSample, tag: str, value: TagValue, status: int, source_time: datetime, server_time: datetime) -> None:
    _set_tag(self, tag)
    _set_value(self, value)
    _set_status(self, status)
    _set_source_time(self, source_time)
    _set_server_time(self, server_time)


TagSample.__init__ = _sample_init  # type: ignore[method-assign]
