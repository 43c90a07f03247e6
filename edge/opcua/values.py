"""How registry values, types and units become OPC UA values: the variant type of each data type,
a sample as a DataValue (status and both timestamps kept), EUInformation from a unit text, the
access level of a variable, and each type's zero. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from asyncua import ua

from drivers.sample import TagSample
from edge.opcua import units

VARIANT_TYPES: dict[str, ua.VariantType] = {
    "bool": ua.VariantType.Boolean,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "int64": ua.VariantType.Int64,
    "uint64": ua.VariantType.UInt64,
    "float32": ua.VariantType.Float,
    "float64": ua.VariantType.Double,
    "string": ua.VariantType.String,
    "int8": ua.VariantType.SByte,
    "uint8": ua.VariantType.Byte,
    "datetime": ua.VariantType.DateTime,
    "bytes": ua.VariantType.ByteString,
}
NUMERIC = frozenset(VARIANT_TYPES) - {"bool", "string", "datetime", "bytes"}


def to_datavalue(sample: TagSample, vtype: ua.VariantType) -> ua.DataValue:
    value = sample.value
    if value is not None and vtype in (ua.VariantType.Float, ua.VariantType.Double):
        value = [float(v) for v in value] if isinstance(value, list) else float(value)
    variant = ua.Variant(value, vtype) if value is not None else ua.Variant(None, ua.VariantType.Null)
    return ua.DataValue(
        Value=variant,
        StatusCode=ua.StatusCode(int(sample.status)),
        SourceTimestamp=sample.source_time,
        ServerTimestamp=sample.server_time,
    )


def eu_information(text: str) -> ua.EUInformation:
    unit = units.lookup(text)
    if unit is None:
        return ua.EUInformation(NamespaceUri=units.UNECE_NAMESPACE, UnitId=-1, DisplayName=ua.LocalizedText(text), Description=ua.LocalizedText(text))
    return ua.EUInformation(
        NamespaceUri=units.UNECE_NAMESPACE,
        UnitId=units.unit_id(unit.code),
        DisplayName=ua.LocalizedText(unit.symbol),
        Description=ua.LocalizedText(unit.description),
    )


def access_level(writable: bool) -> int:
    mask = ua.AccessLevel.CurrentRead.mask
    return mask | ua.AccessLevel.CurrentWrite.mask if writable else mask


ZERO: dict[str, object] = (
    {"bool": False, "string": "", "datetime": datetime(1601, 1, 1, tzinfo=UTC), "bytes": b""}
    | {t: 0.0 for t in ("float32", "float64")}
    | {t: 0 for t in NUMERIC - {"float32", "float64"}}
)
