"""What one poll or write produced for one point, and the checks made before a write (pure; no I/O)."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from drivers.modbus.address import DataType, RegisterPoint
from drivers.modbus.codec import decode, decode_block
from drivers.modbus.plan import ReadRequest
from drivers.sample import Status, TagValue


class Reason(enum.Enum):
    """Why a point is not Good; the value is the log event name."""

    EXCEPTION = "modbus_exception"
    DECODE = "modbus_decode_error"
    NO_ANSWER = "modbus_no_answer"  # the unit did not answer or is demoted: logged per unit, not per point


class Outcome(NamedTuple):
    value: TagValue
    status: Status
    arrived: datetime
    reason: Reason | None = None
    detail: str = ""


def decode_point(values: Sequence[int] | Sequence[bool], req: ReadRequest, point: RegisterPoint, arrived: datetime) -> Outcome:
    """Outcome of *point* from the response *values* of *req* (short responses decode as errors)."""
    first = req.offset_of(point)
    chunk = values[first : first + point.count]  # short if the device answered fewer than asked
    try:
        return Outcome(decode(chunk, point), Status.Good, arrived)
    except ValueError as exc:
        return Outcome(None, Status.BadDecodingError, arrived, Reason.DECODE, str(exc))


def decode_request(values: Sequence[int] | Sequence[bool], req: ReadRequest, arrived: datetime) -> list[Outcome]:
    """Outcomes of ``req.points``, in order, from the response *values* of *req*."""
    if req.area.is_bit:
        return [decode_point(values, req, p, arrived) for p in req.points]
    good = Status.Good
    return [
        Outcome(None, Status.BadDecodingError, arrived, Reason.DECODE, str(v)) if isinstance(v, ValueError) else Outcome(v, good, arrived)
        for v in decode_block(values, req.start, req.points)
    ]


def check_write(point: RegisterPoint, value: TagValue) -> Status | None:
    """The status that refuses this write before encoding, or None.

    Not writable: BadNotWritable. Wrong kind: BadTypeMismatch. Outside [low, high] (NaN included
    when a limit is set): BadOutOfRange. Raw-range overflow is found by ``encode``.
    """
    if not point.writable:
        return Status.BadNotWritable
    if point.data_type.is_numeric:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return Status.BadTypeMismatch
        limited = point.low is not None or point.high is not None
        if limited and isinstance(value, float) and math.isnan(value):
            return Status.BadOutOfRange
        if point.low is not None and value < point.low:
            return Status.BadOutOfRange
        if point.high is not None and value > point.high:
            return Status.BadOutOfRange
    elif point.data_type is DataType.STRING and not isinstance(value, str):
        return Status.BadTypeMismatch
    return None
