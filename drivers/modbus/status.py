"""Modbus exception codes and transport failures -> OPC UA status (pure table).

docs/modbus.md carries the same table for users; a test checks the two agree row by row.

The exception codes are those of the Modbus application protocol (the same numbers as
``pymodbus.constants.ExcCodes``, checked by a test); this module does not import pymodbus.

| code | name                      | status                 | why                                              |
| ---- | ------------------------- | ---------------------- | ------------------------------------------------ |
| 0x01 | ILLEGAL_FUNCTION          | BadConfigurationError  | the device lacks this table: fix the tag         |
| 0x02 | ILLEGAL_ADDRESS           | BadConfigurationError  | the address does not exist: fix the tag          |
| 0x03 | ILLEGAL_VALUE             | BadOutOfRange          | the device refused the value or the count        |
| 0x04 | DEVICE_FAILURE            | BadDeviceFailure       | unrecoverable error inside the device            |
| 0x05 | ACKNOWLEDGE               | BadTimeout             | accepted but no data yet ("ask again later")     |
| 0x06 | DEVICE_BUSY               | BadTimeout             | busy with a long command ("ask again later")     |
| 0x07 | NEGATIVE_ACKNOWLEDGE      | BadDeviceFailure       | the device cannot perform the function           |
| 0x08 | MEMORY_PARITY_ERROR       | BadDeviceFailure       | the device's memory is inconsistent              |
| 0x0A | GATEWAY_PATH_UNAVAILABLE  | BadNoCommunication     | the gateway has no path to the target unit       |
| 0x0B | GATEWAY_TARGET_NO_RESPONSE| BadTimeout             | the target behind the gateway did not answer     |
| else | (unknown)                 | BadCommunicationError  |                                                  |
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from drivers.sample import Status


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes (Modbus Application Protocol v1.1b3, section 7)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02
    ILLEGAL_VALUE = 0x03
    DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_NO_RESPONSE = 0x0B


EXCEPTION_STATUS: Final[Mapping[ExceptionCode, Status]] = MappingProxyType(
    {
        ExceptionCode.ILLEGAL_FUNCTION: Status.BadConfigurationError,
        ExceptionCode.ILLEGAL_ADDRESS: Status.BadConfigurationError,
        ExceptionCode.ILLEGAL_VALUE: Status.BadOutOfRange,
        ExceptionCode.DEVICE_FAILURE: Status.BadDeviceFailure,
        ExceptionCode.ACKNOWLEDGE: Status.BadTimeout,
        ExceptionCode.DEVICE_BUSY: Status.BadTimeout,
        ExceptionCode.NEGATIVE_ACKNOWLEDGE: Status.BadDeviceFailure,
        ExceptionCode.MEMORY_PARITY_ERROR: Status.BadDeviceFailure,
        ExceptionCode.GATEWAY_PATH_UNAVAILABLE: Status.BadNoCommunication,
        ExceptionCode.GATEWAY_TARGET_NO_RESPONSE: Status.BadTimeout,
    }
)

UNKNOWN_EXCEPTION_STATUS: Final = Status.BadCommunicationError


class TransportFailure(enum.Enum):
    """Ways a request can fail below the Modbus application layer."""

    NOT_CONNECTED = "not_connected"  # no transport when the request was made
    CONNECTION_LOST = "connection_lost"  # the peer closed or reset the connection
    TIMEOUT = "timeout"  # no response within timeout_s
    PROTOCOL_ERROR = "protocol_error"  # a response that does not decode: re-sent, then a miss like a timeout
    UNIT_DEMOTED = "unit_demoted"  # the unit stopped answering and is not polled for demote_for_s


TRANSPORT_STATUS: Final[Mapping[TransportFailure, Status]] = MappingProxyType(
    {
        TransportFailure.NOT_CONNECTED: Status.BadNotConnected,
        TransportFailure.CONNECTION_LOST: Status.BadNoCommunication,
        TransportFailure.TIMEOUT: Status.BadTimeout,
        TransportFailure.PROTOCOL_ERROR: Status.BadCommunicationError,
        TransportFailure.UNIT_DEMOTED: Status.BadNoCommunication,
    }
)

# Exceptions by which a gateway says the unit behind it did not answer: counted like a timeout of
# that unit (towards its demotion), not as an answer.
NO_ANSWER_CODES: Final = frozenset({ExceptionCode.GATEWAY_PATH_UNAVAILABLE, ExceptionCode.GATEWAY_TARGET_NO_RESPONSE})

# Statuses of a point that was not fetched in this cycle although the link is up: its unit did not
# answer, is demoted, or said "ask again later" (busy, acknowledge). The point goes to
# ReadResult.not_fetched: it keeps its last usable value (Uncertain) until that expires, and only
# then takes this status.
NOT_FETCHED: Final = frozenset({Status.BadTimeout, Status.BadNoCommunication})

# Exceptions to a block read that may come from one address inside the block (or from an unmapped
# address the block reads across): the block is split to isolate the point the device rejects.
ISOLATE_CODES: Final = frozenset({ExceptionCode.ILLEGAL_ADDRESS, ExceptionCode.ILLEGAL_VALUE})


def exception_status(code: int) -> Status:
    """Status for a Modbus exception response carrying *code*."""
    try:
        return EXCEPTION_STATUS[ExceptionCode(code)]
    except ValueError:
        return UNKNOWN_EXCEPTION_STATUS


def exception_name(code: int) -> str:
    """Name of *code* for log events (``0x0C`` for codes outside the specification)."""
    try:
        return ExceptionCode(code).name
    except ValueError:
        return f"0x{code:02X}"


def transport_status(failure: TransportFailure) -> Status:
    """Status for a request that failed in the transport."""
    return TRANSPORT_STATUS[failure]
