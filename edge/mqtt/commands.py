"""NCMD and DCMD: rebirth requests and writes from host applications.

``Node Control/Rebirth`` (NCMD, Boolean true) asks for a new NBIRTH and every DBIRTH; it is always
honoured. A DCMD metric is a write to a device tag, taken only with ``allow_commands = true``, and
then checked like an OPC UA write (``edge.core.writes.check_write``: type, shape, NaN/inf, the
tag's low..high; never clamped) before the supervisor sends it to the device. Every DCMD metric,
done or refused, is logged once as ``write_done`` or ``write_rejected`` with the topic and metric.
A refused write leaves the tag as it is; the sink republishes the tag's current value so the host
sees that nothing changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from drivers.sample import Status, TagValue
from edge.core.registry import TagRegistry
from edge.core.writes import audit, check_write
from edge.mqtt.catalog import Catalog, MetricDef
from edge.mqtt.payloads import REBIRTH
from edge.mqtt.sparkplug import DataType, Payload, get_value

log = structlog.get_logger("edge.mqtt.commands")

WriteHandler = Callable[[str, TagValue], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class CommandResult:
    metric: str
    key: str | None
    status: int
    reason: str


def decode(data: bytes) -> Any | None:
    """The Payload of a command, or None (logged) when it does not parse."""
    try:
        return Payload.FromString(data)
    except Exception as exc:  # protobuf raises DecodeError (a subclass of Exception) for bad bytes
        log.warning("command_undecodable", error=str(exc), size=len(data))
        return None


def wants_rebirth(payload: Any) -> bool:
    """Whether an NCMD payload asks for a rebirth."""
    return any(m.name == REBIRTH and m.WhichOneof("value") == "boolean_value" and m.boolean_value for m in payload.metrics)


def _resolve(catalog: Catalog, device: str, m: Any) -> MetricDef | None:
    if m.HasField("alias"):
        d = catalog.by_alias.get(m.alias)
        return d if d is not None and d.device == device else None
    return catalog.by_name.get((device, m.name))


async def device_command(
    payload: Any,
    device: str,
    *,
    topic: str,
    catalog: Catalog,
    registry: TagRegistry,
    write: WriteHandler | None,
    allow: bool,
) -> list[CommandResult]:
    """Validate and carry out each metric of a DCMD for *device*; one result per metric, in order."""
    out = []
    for m in payload.metrics:
        d = _resolve(catalog, device, m)
        label = m.name or f"alias {m.alias}"
        key = d.key if d is not None else None
        old = registry.latest(key).value if key is not None else None
        value: TagValue = None
        if d is not None:
            try:
                value = get_value(m, d.datatype)
            except Exception:  # a malformed value field (e.g. truncated array bytes)
                value = None
        status, reason = await _one(m, d, label, device, value, allow=allow, write=write)
        audit(log, tag=key, old=old, new=value, status=status, reason=reason, protocol="mqtt", node=topic, metric=label)
        out.append(CommandResult(label, key, status, reason))
    return out


async def _one(m: Any, d: MetricDef | None, label: str, device: str, value: TagValue, *, allow: bool, write: WriteHandler | None) -> tuple[int, str]:
    """The status of one DCMD metric (the first failing check, else the device's answer)."""
    if not allow:
        return Status.BadUserAccessDenied, "commands are disabled (mqtt.allow_commands = false)"
    if d is None:
        return Status.BadNodeIdUnknown, f"no metric {label} on device {device!r}"
    if m.HasField("datatype") and m.datatype != d.datatype:
        return Status.BadTypeMismatch, f"expected datatype {d.datatype.name}, got {_type_name(m.datatype)}"
    status, reason = check_write(d.info, value)
    if status != Status.Good:
        return status, reason
    if write is None or d.info.device is None:
        return Status.BadNotWritable, "no device behind this tag"
    try:
        return int(await write(d.key, value)), "device answer"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a driver bug must not end the MQTT session
        log.exception("write_failed", tag=d.key, error=str(exc))
        return Status.BadInternalError, "device answer"


def _type_name(code: int) -> str:
    try:
        return DataType(code).name
    except ValueError:
        return str(code)
