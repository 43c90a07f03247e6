"""DataValue <-> TagSample and Variant types <-> registry data types. Pure: asyncua's types, no I/O.

Upstream values pass through: the StatusCode (every bit) and the SourceTimestamp are kept as the
server sent them; the gateway stamps only its own ``server_time`` (when the value arrived). A
DataValue without a SourceTimestamp takes the upstream ServerTimestamp, then the arrival time.

A value is delivered as the tag's configured registry type when it fits (an integer of any width
into a wider integer or a float, a Float into float64, ...); one that does not (a String for a
float64 tag, 300 for a uint8 tag, a scalar for an array tag) becomes ``BadTypeMismatch`` or
``BadOutOfRange`` for that sample only. Writes go the other way, into the upstream node's own
DataType (``to_variant``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from drivers.opcua_client.points import FLOAT_TYPES
from drivers.sample import INT_RANGES, ScalarValue, Status, TagSample, TagValue

VT = ua.VariantType
# registry data type -> the OPC UA built-in type of its northbound node (and of a write upstream
# when the upstream DataType is abstract or unknown)
VARIANT_TYPES: dict[str, ua.VariantType] = {
    "bool": VT.Boolean,
    "int8": VT.SByte,
    "uint8": VT.Byte,
    "int16": VT.Int16,
    "uint16": VT.UInt16,
    "int32": VT.Int32,
    "uint32": VT.UInt32,
    "int64": VT.Int64,
    "uint64": VT.UInt64,
    "float32": VT.Float,
    "float64": VT.Double,
    "string": VT.String,
    "datetime": VT.DateTime,
    "bytes": VT.ByteString,
}
REGISTRY_TYPES: dict[ua.VariantType, str] = {v: k for k, v in VARIANT_TYPES.items()}
_INT_VARIANTS = {VARIANT_TYPES[t]: t for t in INT_RANGES}
# DataTypes of namespace 0 derived from a built-in type (Part 3 / Part 5), by numeric id
_DERIVED: dict[int, ua.VariantType] = {
    29: VT.Int32,  # Enumeration
    30: VT.ByteString,  # Image
    288: VT.UInt32,  # IntegerId
    289: VT.UInt32,  # Counter
    290: VT.Double,  # Duration
    291: VT.String,  # NumericRange
    292: VT.String,  # Time
    293: VT.DateTime,  # Date
    294: VT.DateTime,  # UtcTime
    295: VT.String,  # LocaleId
    17588: VT.UInt32,  # Index
    20998: VT.UInt32,  # VersionTime
}
_ACCEPTS: dict[str, frozenset[ua.VariantType]] = {
    "bool": frozenset({VT.Boolean}),
    **{t: frozenset(_INT_VARIANTS) for t in INT_RANGES},
    **{t: frozenset({*_INT_VARIANTS, VT.Float, VT.Double}) for t in FLOAT_TYPES},
    "string": frozenset({VT.String, VT.LocalizedText, VT.QualifiedName}),
    "datetime": frozenset({VT.DateTime}),
    "bytes": frozenset({VT.ByteString}),
}


class ValueProblem(ValueError):
    """A value that does not fit; ``status`` is BadTypeMismatch or BadOutOfRange."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def variant_type_of(data_type: ua.NodeId) -> ua.VariantType | None:
    """The built-in type behind a DataType NodeId, or None (abstract, structured or vendor types)."""
    if data_type.NamespaceIndex != 0 or not isinstance(data_type.Identifier, int):
        return None
    ident = data_type.Identifier
    if 1 <= ident <= 25:
        return ua.VariantType(ident)
    return _DERIVED.get(ident)


def accepts(dtype: str, upstream: ua.VariantType) -> bool:
    """Whether values of *upstream* type can be delivered as registry type *dtype*."""
    return upstream in _ACCEPTS[dtype]


def utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def coerce(value: Any, dtype: str, array: bool) -> TagValue:
    """*value* (as asyncua decoded it) as a value of registry type *dtype*; raise ValueProblem."""
    if array:
        if not isinstance(value, list | tuple):
            raise ValueProblem(Status.BadTypeMismatch, f"expected an array of {dtype}, got {type(value).__name__}")
        return [_scalar(v, dtype) for v in value]
    if isinstance(value, list | tuple):
        raise ValueProblem(Status.BadTypeMismatch, f"expected a scalar {dtype}, got an array")
    return _scalar(value, dtype)


def _scalar(value: Any, dtype: str) -> ScalarValue:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if dtype == "bool" and isinstance(value, bool):
        return value
    if dtype in INT_RANGES and number and isinstance(value, int):
        lo, hi = INT_RANGES[dtype]
        if not lo <= value <= hi:
            raise ValueProblem(Status.BadOutOfRange, f"{value} does not fit {dtype}")
        return value
    if dtype in FLOAT_TYPES and number:
        return float(value)
    if dtype == "string" and isinstance(value, str | ua.LocalizedText | ua.QualifiedName):
        if isinstance(value, str):
            return value
        return (value.Text if isinstance(value, ua.LocalizedText) else value.Name) or ""
    if dtype == "datetime" and isinstance(value, datetime):
        return utc(value)
    if dtype == "bytes" and isinstance(value, bytes | bytearray):
        return bytes(value)
    raise ValueProblem(Status.BadTypeMismatch, f"expected {dtype}, got {type(value).__name__} {value!r:.40}")


def to_sample(key: str, dv: ua.DataValue, dtype: str, array: bool, received: datetime) -> TagSample:
    """The sample of one upstream DataValue: its status and source time unchanged, *received* as server time."""
    status = int(dv.StatusCode.value) if dv.StatusCode is not None else int(Status.Good)
    source = dv.SourceTimestamp or dv.ServerTimestamp
    source_time = utc(source) if source is not None else received
    raw = dv.Value.Value if dv.Value is not None else None
    if status >= 0x80000000 or raw is None:
        return TagSample(key, None, status, source_time, received)
    try:
        value = coerce(raw, dtype, array)
    except ValueProblem as exc:
        return TagSample(key, None, exc.status, source_time, received)
    return TagSample(key, value, status, source_time, received)


def bad_samples(keys: Sequence[str], status: int, at: datetime) -> list[TagSample]:
    return [TagSample(k, None, status, at, at) for k in keys]


def to_variant(value: TagValue, vtype: ua.VariantType, array: bool) -> ua.Variant:
    """*value* as a Variant of the upstream built-in type *vtype*; raise ValueProblem if it cannot be."""
    if array:
        if not isinstance(value, list | tuple):
            raise ValueProblem(Status.BadTypeMismatch, f"expected an array of {vtype.name}")
        return ua.Variant([_to_builtin(v, vtype) for v in value], vtype, is_array=True)
    if isinstance(value, list | tuple) or value is None:
        raise ValueProblem(Status.BadTypeMismatch, f"expected a scalar {vtype.name}")
    return ua.Variant(_to_builtin(value, vtype), vtype)


def _to_builtin(value: Any, vtype: ua.VariantType) -> Any:
    if vtype in _INT_VARIANTS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueProblem(Status.BadTypeMismatch, f"{value!r:.40} is not an integer for {vtype.name}")
        lo, hi = INT_RANGES[_INT_VARIANTS[vtype]]
        if not lo <= value <= hi:
            raise ValueProblem(Status.BadOutOfRange, f"{value} does not fit {vtype.name}")
        return value
    if vtype in (VT.Float, VT.Double):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueProblem(Status.BadTypeMismatch, f"{value!r:.40} is not a number for {vtype.name}")
        value = float(value)
        if vtype == VT.Float and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise ValueProblem(Status.BadOutOfRange, f"{value} does not fit Float")
        return value
    if vtype == VT.LocalizedText and isinstance(value, str):
        return ua.LocalizedText(value)
    expected = {VT.Boolean: bool, VT.String: str, VT.DateTime: datetime, VT.ByteString: bytes}.get(vtype)
    if expected is None:
        raise ValueProblem(Status.BadTypeMismatch, f"writing {vtype.name} values is not supported")
    if not isinstance(value, expected):
        raise ValueProblem(Status.BadTypeMismatch, f"{value!r:.40} is not a {vtype.name}")
    return value
