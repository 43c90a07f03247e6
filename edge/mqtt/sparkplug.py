"""The Sparkplug B 3.0 payload schema, built at import from a descriptor written here, and the
mapping between the gateway's data types and values and Sparkplug metrics.

The schema follows the Eclipse Sparkplug 3.0 specification (``org.eclipse.tahu.protobuf`` is the
package name hosts expect, but only field numbers and types travel on the wire):

* ``Payload``: ``timestamp`` (1, uint64, ms since the epoch), ``metrics`` (2, repeated Metric),
  ``seq`` (3, uint64), ``uuid`` (4, string), ``body`` (5, bytes)
* ``Metric``: ``name`` (1), ``alias`` (2, uint64), ``timestamp`` (3), ``datatype`` (4, uint32),
  ``is_historical`` (5), ``is_transient`` (6), ``is_null`` (7), ``metadata`` (8),
  ``properties`` (9, PropertySet), and the value oneof: ``int_value`` (10, uint32),
  ``long_value`` (11, uint64), ``float_value`` (12), ``double_value`` (13), ``boolean_value``
  (14), ``string_value`` (15), ``bytes_value`` (16)
* ``PropertySet``: ``keys`` (1, repeated string), ``values`` (2, repeated PropertyValue)
* ``PropertyValue``: ``type`` (1), ``is_null`` (2), value oneof ``int_value`` (3) ..
  ``string_value`` (8), ``propertyset_value`` (9), ``propertysets_value`` (10)

DataSet, Template and extension fields are not used by the gateway; a payload that carries them
still parses (protobuf keeps unknown fields). Signed integers travel two's complement in the
unsigned fields (Int8/16/32 in ``int_value``, Int64 in ``long_value``); arrays are packed
little-endian in ``bytes_value``; DateTime is ms since the epoch in ``long_value``.
"""

from __future__ import annotations

import enum
import struct
from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from drivers.sample import TagValue, is_bad, is_good

PACKAGE = "org.eclipse.tahu.protobuf"


class DataType(enum.IntEnum):
    """Sparkplug B data types (the numbers of the specification)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21
    Int8Array = 22
    Int16Array = 23
    Int32Array = 24
    Int64Array = 25
    UInt8Array = 26
    UInt16Array = 27
    UInt32Array = 28
    UInt64Array = 29
    FloatArray = 30
    DoubleArray = 31
    BooleanArray = 32
    StringArray = 33
    DateTimeArray = 34


# Sparkplug's Quality property (Int32): 0 BAD, 192 GOOD, 500 STALE
QUALITY_BAD = 0
QUALITY_GOOD = 192
QUALITY_STALE = 500

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED


def _message(name: str, fields: list[tuple[str, int, int, int, str | None, int | None]]) -> descriptor_pb2.DescriptorProto:
    """(name, number, type, label, message type name, oneof index) per field."""
    msg = descriptor_pb2.DescriptorProto(name=name)
    for fname, number, ftype, label, type_name, oneof in fields:
        field = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name is not None:
            field.type_name = f".{PACKAGE}.Payload.{type_name}"
        if oneof is not None:
            field.oneof_index = oneof
    return msg


def _build() -> Any:
    T = _F
    fd = descriptor_pb2.FileDescriptorProto(name="edgetwin/sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    payload = _message(
        "Payload",
        [
            ("timestamp", 1, T.TYPE_UINT64, _OPT, None, None),
            ("metrics", 2, T.TYPE_MESSAGE, _REP, "Metric", None),
            ("seq", 3, T.TYPE_UINT64, _OPT, None, None),
            ("uuid", 4, T.TYPE_STRING, _OPT, None, None),
            ("body", 5, T.TYPE_BYTES, _OPT, None, None),
        ],
    )
    prop_value = _message(
        "PropertyValue",
        [
            ("type", 1, T.TYPE_UINT32, _OPT, None, None),
            ("is_null", 2, T.TYPE_BOOL, _OPT, None, None),
            ("int_value", 3, T.TYPE_UINT32, _OPT, None, 0),
            ("long_value", 4, T.TYPE_UINT64, _OPT, None, 0),
            ("float_value", 5, T.TYPE_FLOAT, _OPT, None, 0),
            ("double_value", 6, T.TYPE_DOUBLE, _OPT, None, 0),
            ("boolean_value", 7, T.TYPE_BOOL, _OPT, None, 0),
            ("string_value", 8, T.TYPE_STRING, _OPT, None, 0),
            ("propertyset_value", 9, T.TYPE_MESSAGE, _OPT, "PropertySet", 0),
            ("propertysets_value", 10, T.TYPE_MESSAGE, _OPT, "PropertySetList", 0),
        ],
    )
    prop_value.oneof_decl.add(name="value")
    prop_set = _message(
        "PropertySet",
        [("keys", 1, T.TYPE_STRING, _REP, None, None), ("values", 2, T.TYPE_MESSAGE, _REP, "PropertyValue", None)],
    )
    prop_list = _message("PropertySetList", [("propertyset", 1, T.TYPE_MESSAGE, _REP, "PropertySet", None)])
    metadata = _message(
        "MetaData",
        [
            ("is_multi_part", 1, T.TYPE_BOOL, _OPT, None, None),
            ("content_type", 2, T.TYPE_STRING, _OPT, None, None),
            ("size", 3, T.TYPE_UINT64, _OPT, None, None),
            ("seq", 4, T.TYPE_UINT64, _OPT, None, None),
            ("file_name", 5, T.TYPE_STRING, _OPT, None, None),
            ("file_type", 6, T.TYPE_STRING, _OPT, None, None),
            ("md5", 7, T.TYPE_STRING, _OPT, None, None),
            ("description", 8, T.TYPE_STRING, _OPT, None, None),
        ],
    )
    metric = _message(
        "Metric",
        [
            ("name", 1, T.TYPE_STRING, _OPT, None, None),
            ("alias", 2, T.TYPE_UINT64, _OPT, None, None),
            ("timestamp", 3, T.TYPE_UINT64, _OPT, None, None),
            ("datatype", 4, T.TYPE_UINT32, _OPT, None, None),
            ("is_historical", 5, T.TYPE_BOOL, _OPT, None, None),
            ("is_transient", 6, T.TYPE_BOOL, _OPT, None, None),
            ("is_null", 7, T.TYPE_BOOL, _OPT, None, None),
            ("metadata", 8, T.TYPE_MESSAGE, _OPT, "MetaData", None),
            ("properties", 9, T.TYPE_MESSAGE, _OPT, "PropertySet", None),
            ("int_value", 10, T.TYPE_UINT32, _OPT, None, 0),
            ("long_value", 11, T.TYPE_UINT64, _OPT, None, 0),
            ("float_value", 12, T.TYPE_FLOAT, _OPT, None, 0),
            ("double_value", 13, T.TYPE_DOUBLE, _OPT, None, 0),
            ("boolean_value", 14, T.TYPE_BOOL, _OPT, None, 0),
            ("string_value", 15, T.TYPE_STRING, _OPT, None, 0),
            ("bytes_value", 16, T.TYPE_BYTES, _OPT, None, 0),
        ],
    )
    metric.oneof_decl.add(name="value")
    payload.nested_type.extend([prop_value, prop_set, prop_list, metadata, metric])
    fd.message_type.append(payload)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))


Payload: Any = _build()
Metric: Any = Payload.Metric
PropertySet: Any = Payload.PropertySet

# gateway data type -> Sparkplug scalar type
SCALAR_TYPES: dict[str, DataType] = {
    "bool": DataType.Boolean,
    "int8": DataType.Int8,
    "uint8": DataType.UInt8,
    "int16": DataType.Int16,
    "uint16": DataType.UInt16,
    "int32": DataType.Int32,
    "uint32": DataType.UInt32,
    "int64": DataType.Int64,
    "uint64": DataType.UInt64,
    "float32": DataType.Float,
    "float64": DataType.Double,
    "string": DataType.String,
    "datetime": DataType.DateTime,
    "bytes": DataType.Bytes,
}
# array type -> (element scalar type, struct code of one little-endian element; None for strings)
ARRAY_TYPES: dict[DataType, tuple[DataType, str | None]] = {
    DataType.Int8Array: (DataType.Int8, "b"),
    DataType.Int16Array: (DataType.Int16, "h"),
    DataType.Int32Array: (DataType.Int32, "i"),
    DataType.Int64Array: (DataType.Int64, "q"),
    DataType.UInt8Array: (DataType.UInt8, "B"),
    DataType.UInt16Array: (DataType.UInt16, "H"),
    DataType.UInt32Array: (DataType.UInt32, "I"),
    DataType.UInt64Array: (DataType.UInt64, "Q"),
    DataType.FloatArray: (DataType.Float, "f"),
    DataType.DoubleArray: (DataType.Double, "d"),
    DataType.BooleanArray: (DataType.Boolean, None),
    DataType.StringArray: (DataType.String, None),
    DataType.DateTimeArray: (DataType.DateTime, "q"),
}
_ARRAY_OF = {scalar: array for array, (scalar, _) in ARRAY_TYPES.items()}
_INT_FIELD = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.UInt8: 0, DataType.UInt16: 0}
_LONG_FIELD = {DataType.Int64: 64, DataType.UInt32: 0, DataType.UInt64: 0, DataType.DateTime: 0}


def datatype_of(data_type: str, array: bool = False) -> DataType:
    """The Sparkplug type of a gateway data type (``edge.core.registry.DATA_TYPES``)."""
    scalar = SCALAR_TYPES[data_type]
    if not array:
        return scalar
    if scalar not in _ARRAY_OF:
        raise ValueError(f"no Sparkplug array type for {data_type}")
    return _ARRAY_OF[scalar]


def to_ms(t: datetime) -> int:
    """Milliseconds since the epoch (UTC) of a timezone-aware datetime."""
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def quality(status: int) -> int:
    """The Sparkplug Quality of an OPC UA status: GOOD, STALE (Uncertain, e.g. a last usable value) or BAD."""
    if is_good(status):
        return QUALITY_GOOD
    return QUALITY_BAD if is_bad(status) else QUALITY_STALE


def _scalar_to_wire(dt: DataType, value: Any) -> Any:
    if dt == DataType.DateTime:
        return to_ms(value)
    return value


def set_value(metric: Any, dt: DataType, value: TagValue) -> None:
    """Put *value* into *metric*'s value field for type *dt* (``is_null`` for None)."""
    if value is None:
        metric.is_null = True
        return
    if dt in ARRAY_TYPES:
        metric.bytes_value = pack_array(dt, value)  # type: ignore[arg-type]
    elif dt in _INT_FIELD:
        metric.int_value = int(value) & 0xFFFFFFFF  # type: ignore[arg-type]
    elif dt in _LONG_FIELD:
        metric.long_value = int(_scalar_to_wire(dt, value)) & 0xFFFFFFFFFFFFFFFF
    elif dt == DataType.Float:
        metric.float_value = value
    elif dt == DataType.Double:
        metric.double_value = value
    elif dt == DataType.Boolean:
        metric.boolean_value = value
    elif dt in (DataType.String, DataType.Text, DataType.UUID):
        metric.string_value = value
    elif dt in (DataType.Bytes, DataType.File):
        metric.bytes_value = value
    else:
        raise ValueError(f"cannot encode a value of Sparkplug type {dt.name}")


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def get_value(metric: Any, dt: DataType | None = None) -> TagValue:
    """The Python value of *metric*, read as type *dt* (default: the metric's own datatype)."""
    dt = DataType(metric.datatype if dt is None else dt)
    if metric.is_null:
        return None
    field = metric.WhichOneof("value")
    if dt in ARRAY_TYPES:
        return unpack_array(dt, metric.bytes_value)
    if dt in _INT_FIELD:
        raw = metric.int_value if field == "int_value" else metric.long_value
        return _signed(raw, _INT_FIELD[dt]) if _INT_FIELD[dt] else raw
    if dt in _LONG_FIELD:
        raw = metric.long_value if field == "long_value" else metric.int_value
        if dt == DataType.DateTime:
            return from_ms(raw)
        return _signed(raw, 64) if _LONG_FIELD[dt] else raw
    if field is None:
        return None
    value = getattr(metric, field)
    return value


def pack_array(dt: DataType, values: list[Any]) -> bytes:
    """The little-endian packed bytes of an array metric (strings NUL-terminated, booleans as a
    4-byte count then bits packed MSB first, as Sparkplug 3.0 defines)."""
    _, code = ARRAY_TYPES[dt]
    if dt == DataType.StringArray:
        return b"".join(s.encode() + b"\x00" for s in values)
    if dt == DataType.BooleanArray:
        out = bytearray(struct.pack("<I", len(values)))
        out += bytes((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v:
                out[4 + i // 8] |= 0x80 >> (i % 8)
        return bytes(out)
    if dt == DataType.DateTimeArray:
        values = [to_ms(v) for v in values]
    return struct.pack(f"<{len(values)}{code}", *values)


def unpack_array(dt: DataType, data: bytes) -> list[Any]:
    _, code = ARRAY_TYPES[dt]
    if dt == DataType.StringArray:
        return [s.decode() for s in data.split(b"\x00")[:-1]]
    if dt == DataType.BooleanArray:
        (n,) = struct.unpack_from("<I", data)
        return [bool(data[4 + i // 8] & (0x80 >> (i % 8))) for i in range(n)]
    assert code is not None
    size = struct.calcsize(code)
    values = list(struct.unpack(f"<{len(data) // size}{code}", data))
    return [from_ms(v) for v in values] if dt == DataType.DateTimeArray else values


def set_property(props: Any, key: str, dt: DataType, value: Any) -> None:
    """Append one property to a PropertySet."""
    props.keys.append(key)
    pv = props.values.add(type=int(dt))
    if value is None:
        pv.is_null = True
    elif dt in (DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16):
        pv.int_value = int(value) & 0xFFFFFFFF
    elif dt in (DataType.Int64, DataType.UInt32, DataType.UInt64, DataType.DateTime):
        pv.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif dt == DataType.Float:
        pv.float_value = value
    elif dt == DataType.Double:
        pv.double_value = value
    elif dt == DataType.Boolean:
        pv.boolean_value = value
    else:
        pv.string_value = str(value)


def properties(metric: Any) -> dict[str, Any]:
    """A metric's properties as a dict (signed types read back as signed). For tests and hosts."""
    out = {}
    for key, pv in zip(metric.properties.keys, metric.properties.values, strict=True):
        field = pv.WhichOneof("value")
        value = None if pv.is_null or field is None else getattr(pv, field)
        if value is not None and pv.type in (DataType.Int8, DataType.Int16, DataType.Int32):
            value = _signed(value, {1: 8, 2: 16, 3: 32}[pv.type])
        out[key] = value
    return out
