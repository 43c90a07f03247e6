"""Modbus exception codes and transport failures map to documented OPC UA statuses (one test per row)."""

from __future__ import annotations

import pytest
from pymodbus.constants import ExcCodes

from drivers.modbus.status import (
    EXCEPTION_STATUS,
    TRANSPORT_STATUS,
    ExceptionCode,
    TransportFailure,
    exception_name,
    exception_status,
    transport_status,
)
from drivers.sample import Status, is_bad

EXCEPTION_ROWS = [
    (0x01, Status.BadConfigurationError),
    (0x02, Status.BadConfigurationError),
    (0x03, Status.BadOutOfRange),
    (0x04, Status.BadDeviceFailure),
    (0x05, Status.BadTimeout),
    (0x06, Status.BadTimeout),
    (0x07, Status.BadDeviceFailure),
    (0x08, Status.BadDeviceFailure),
    (0x0A, Status.BadNoCommunication),
    (0x0B, Status.BadTimeout),
]


@pytest.mark.parametrize(("code", "status"), EXCEPTION_ROWS, ids=lambda v: f"{v:#04x}" if isinstance(v, int) and v < 256 else None)
def test_exception_row(code: int, status: Status) -> None:
    assert exception_status(code) is status
    assert is_bad(status)


def test_table_has_exactly_these_rows() -> None:
    assert {int(k): v for k, v in EXCEPTION_STATUS.items()} == dict(EXCEPTION_ROWS)


@pytest.mark.parametrize("code", [0x00, 0x09, 0x0C, 0x7F, 0xFF, -1])
def test_unknown_codes_are_communication_errors(code: int) -> None:
    assert exception_status(code) is Status.BadCommunicationError


def test_codes_match_pymodbus() -> None:
    """Our code numbers are pymodbus's ExcCodes (pymodbus spells 0x0A GATEWAY_PATH_UNAVIABLE)."""
    assert sorted(int(c) for c in ExceptionCode) == sorted(int(c) for c in ExcCodes)
    renamed = {"GATEWAY_PATH_UNAVIABLE": "GATEWAY_PATH_UNAVAILABLE", "GATEWAY_NO_RESPONSE": "GATEWAY_TARGET_NO_RESPONSE"}
    for c in ExcCodes:
        assert ExceptionCode(int(c)).name == renamed.get(c.name, c.name)


def test_exception_names() -> None:
    assert exception_name(2) == "ILLEGAL_ADDRESS"
    assert exception_name(0x0C) == "0x0C"


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (TransportFailure.NOT_CONNECTED, Status.BadNotConnected),
        (TransportFailure.CONNECTION_LOST, Status.BadNoCommunication),
        (TransportFailure.TIMEOUT, Status.BadTimeout),
        (TransportFailure.PROTOCOL_ERROR, Status.BadCommunicationError),
    ],
)
def test_transport_row(failure: TransportFailure, status: Status) -> None:
    assert transport_status(failure) is status


def test_every_transport_failure_is_mapped() -> None:
    assert set(TRANSPORT_STATUS) == set(TransportFailure)
