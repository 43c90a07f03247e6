"""Modbus exception codes and transport failures map to documented OPC UA statuses (one test per row)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes

from drivers.modbus.status import (
    EXCEPTION_STATUS,
    TRANSPORT_STATUS,
    UNKNOWN_EXCEPTION_STATUS,
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
        (TransportFailure.UNIT_DEMOTED, Status.BadNoCommunication),
    ],
)
def test_transport_row(failure: TransportFailure, status: Status) -> None:
    assert transport_status(failure) is status


def test_every_transport_failure_is_mapped() -> None:
    assert set(TRANSPORT_STATUS) == set(TransportFailure)


# -- the documented tables agree with the code, row by row ----------------------------------------------

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "modbus.md"


def _table_after(text: str, heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first Markdown table after *heading*."""
    lines = text[text.index(heading) :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _exception_rows(rows: list[list[str]]) -> dict[str, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.parametrize("source", ["docs/modbus.md", "drivers/modbus/status.py"])
def test_documented_exception_table_matches_the_code(source: str) -> None:
    """Every row of the exception table names the code's status, and every code has a row."""
    text = (ROOT / source).read_text()
    heading = "### Modbus exception responses" if source.endswith(".md") else "| code |"
    rows = _table_after(text, heading) if source.endswith(".md") else _table_after(text, "are those of the Modbus")
    table = _exception_rows(rows)
    expected = {f"0x{int(code):02X}": (code.name, status.name) for code, status in EXCEPTION_STATUS.items()}
    other = table.pop("other", None) or table.pop("else")
    assert other[1] == UNKNOWN_EXCEPTION_STATUS.name
    assert table == expected


def test_documented_transport_table_matches_the_code() -> None:
    rows = _table_after(DOC.read_text(), "### Transport failures")
    assert {r[0]: r[1] for r in rows} == {f.value: s.name for f, s in TRANSPORT_STATUS.items()}


def test_documented_write_refusals_are_real_statuses() -> None:
    rows = _table_after(DOC.read_text(), "## Writes")
    assert {r[1] for r in rows} <= set(Status.__members__)
    assert {"BadNotWritable", "BadTypeMismatch", "BadOutOfRange", "BadNoCommunication", "BadNotConnected"} == {r[1] for r in rows}
