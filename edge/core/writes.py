"""Write validation and the write audit log, shared by every northbound protocol.

A value a client wants written to a device tag is checked here before it reaches the
supervisor's ``write``: the shape and type against the tag's data type, then NaN/inf and the
tag's configured ``low``..``high`` (each element of an array). A value out of range is refused
with ``BadOutOfRange``, never clamped. The OPC UA server checks the variant type itself
(``edge.opcua.writes.check_value``) and the limits here; MQTT commands (``edge.mqtt.commands``)
use ``check_write`` on plain Python values.

Every write by a client, allowed or not, is logged once by ``audit`` as ``write_done`` or
``write_rejected``, with the tag, old value, new value, result and the protocol's own context
(user and role for OPC UA, topic and host for MQTT).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from drivers.sample import INT_RANGES, Status, TagValue
from edge.core.registry import TagInfo

NUMERIC = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"})
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {"bool": (bool,), "string": (str,), "datetime": (datetime,), "bytes": (bytes,)}


def status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"0x{int(code):08X}"


def check_limits(info: TagInfo, values: Iterable[Any]) -> tuple[int, str]:
    """(Status.Good, "") when each of *values* is finite, inside the tag's low..high and, for a tag
    with named states, one of their codes. Pure."""
    for value in values:
        if isinstance(value, float) and not math.isfinite(value):
            return Status.BadOutOfRange, f"{value} is not a finite number"
        if info.data_type in NUMERIC:
            if info.low is not None and value < info.low:
                return Status.BadOutOfRange, f"{value} is below the low limit {info.low:g}"
            if info.high is not None and value > info.high:
                return Status.BadOutOfRange, f"{value} is above the high limit {info.high:g}"
        if info.states is not None and value not in dict(info.states):
            known = ", ".join(f"{code} ({name})" for code, name in info.states)
            return Status.BadOutOfRange, f"{value} is not one of the states {known}"
    return Status.Good, ""


def _check_type(data_type: str, value: object) -> tuple[int, str]:
    if data_type in INT_RANGES:
        if not isinstance(value, int) or isinstance(value, bool):
            return Status.BadTypeMismatch, f"expected an integer for {data_type}, got {type(value).__name__}"
        lo, hi = INT_RANGES[data_type]
        if not lo <= value <= hi:
            return Status.BadOutOfRange, f"{value} does not fit {data_type} ({lo}..{hi})"
        return Status.Good, ""
    if data_type in ("float32", "float64"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return Status.BadTypeMismatch, f"expected a number for {data_type}, got {type(value).__name__}"
        return Status.Good, ""
    expected = _SCALAR_TYPES[data_type]
    if not isinstance(value, expected) or (data_type != "bool" and isinstance(value, bool)):
        return Status.BadTypeMismatch, f"expected {data_type}, got {type(value).__name__}"
    return Status.Good, ""


def check_write(info: TagInfo, value: TagValue) -> tuple[int, str]:
    """(Status.Good, "") when the plain Python *value* may be written to *info*, else (status, reason). Pure.

    The order of checks: null, then scalar/array shape, then each element's type (an integer that
    does not fit the tag's type is out of range), then finiteness and the tag's limits.
    """
    if not info.writable:
        return Status.BadNotWritable, "read-only tag"
    if value is None:
        return Status.BadTypeMismatch, "a null value cannot be written"
    if isinstance(value, list) != info.array:
        return Status.BadTypeMismatch, f"expected {'an array' if info.array else 'a scalar'} of {info.data_type}"
    values = value if isinstance(value, list) else [value]
    for v in values:
        status, reason = _check_type(info.data_type, v)
        if status != Status.Good:
            return status, reason
    return check_limits(info, values)


LOG_VALUE_CHARS = 200


def loggable(value: Any) -> Any:
    """*value* for the audit log: a string or array longer than LOG_VALUE_CHARS characters (as text) is
    cut there and says its full length, so a client cannot fill the log with one write."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= LOG_VALUE_CHARS:
        return value
    return f"{text[:LOG_VALUE_CHARS]}... ({len(text)} characters)"


def audit(
    log: Any,
    *,
    tag: str | None,
    old: object,
    new: object,
    status: int,
    reason: str,
    name_of: Callable[[int], str] = status_name,
    **context: object,
) -> int:
    """Log one client write (``write_done`` or ``write_rejected``) and return *status*."""
    fields = dict(context, tag=tag, old=loggable(old), new=loggable(new), status=name_of(status), reason=reason)
    if status == Status.Good:
        log.info("write_done", **fields)
    else:
        log.warning("write_rejected", **fields)
    return status
