"""Protocol-neutral write validation (MQTT commands use it; the OPC UA gate uses its limit check)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from drivers.sample import Status
from edge.core.registry import TagInfo
from edge.core.writes import audit, check_write

TEMP = TagInfo("p.t", ("Devices", "p", "t"), "float64", low=0.0, high=100.0, writable=True)
COUNT = TagInfo("p.c", ("Devices", "p", "c"), "int16", writable=True)
FLAG = TagInfo("p.f", ("Devices", "p", "f"), "bool", writable=True)
WHEN = TagInfo("p.w", ("Devices", "p", "w"), "datetime", writable=True)
ARR = TagInfo("p.a", ("Devices", "p", "a"), "uint8", high=10, writable=True, array=True)
RO = TagInfo("p.r", ("Devices", "p", "r"), "float64")


@pytest.mark.parametrize(
    ("info", "value", "status", "reason"),
    [
        (TEMP, 50.0, Status.Good, ""),
        (TEMP, 50, Status.Good, ""),  # an integer is a number for a float tag
        (TEMP, 100.5, Status.BadOutOfRange, "above the high limit 100"),
        (TEMP, -1.0, Status.BadOutOfRange, "below the low limit 0"),
        (TEMP, math.nan, Status.BadOutOfRange, "not a finite number"),
        (TEMP, math.inf, Status.BadOutOfRange, "not a finite number"),
        (TEMP, "50", Status.BadTypeMismatch, "expected a number for float64, got str"),
        (TEMP, True, Status.BadTypeMismatch, "got bool"),
        (TEMP, None, Status.BadTypeMismatch, "null"),
        (COUNT, 40000, Status.BadOutOfRange, "40000 does not fit int16"),
        (COUNT, 1.5, Status.BadTypeMismatch, "expected an integer for int16, got float"),
        (FLAG, 1, Status.BadTypeMismatch, "expected bool, got int"),
        (FLAG, False, Status.Good, ""),
        (WHEN, datetime(2026, 1, 1, tzinfo=UTC), Status.Good, ""),
        (ARR, [1, 2, 3], Status.Good, ""),
        (ARR, [1, 20], Status.BadOutOfRange, "20 is above the high limit 10"),
        (ARR, 1, Status.BadTypeMismatch, "expected an array of uint8"),
        (ARR, [1, 256], Status.BadOutOfRange, "does not fit uint8"),
        (RO, 1.0, Status.BadNotWritable, "read-only tag"),
    ],
)
def test_check_write(info: TagInfo, value: object, status: int, reason: str) -> None:
    got_status, got_reason = check_write(info, value)  # type: ignore[arg-type]
    assert got_status == status
    assert reason in got_reason


def test_audit_logs_done_and_rejected() -> None:
    import structlog

    log = structlog.get_logger("t")
    with capture_logs() as logs:
        audit(log, tag="p.t", old=1.0, new=2.0, status=Status.Good, reason="device answer", protocol="mqtt")
        audit(log, tag="p.t", old=1.0, new=200.0, status=Status.BadOutOfRange, reason="above")
    assert [(e["event"], e["status"]) for e in logs] == [("write_done", "Good"), ("write_rejected", "BadOutOfRange")]
    assert logs[0]["protocol"] == "mqtt" and logs[1]["new"] == 200.0
