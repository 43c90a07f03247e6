"""Plain MQTT for consumers that do not speak Sparkplug (Telegraf, Node-RED): JSON messages (pure).

With ``{metric}`` in the topic template, one message per tag change::

    edgetwin/line3/tank1_plc/temperature  {"value": 21.5, "status": "Good", "status_code": 0,
        "quality": 192, "source_time": "2026-...Z", "server_time": "2026-...Z", "timestamp": 1764..., "historical": false}

Without it, one message per device and publish interval whose ``metrics`` object holds the latest
change of each tag in that form. Metrics of the gateway itself use the device name ``_gateway``.
Values: datetimes as ISO 8601 text, bytes as base64 text, NaN and infinities as null with
``"value_text": "nan"``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from drivers.sample import Status, TagSample, TagValue
from edge.mqtt.catalog import MetricDef
from edge.mqtt.sparkplug import quality, to_ms

NODE_DEVICE = "_gateway"


def _status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"0x{code:08X}"


def _value(v: TagValue) -> tuple[Any, str | None]:
    if isinstance(v, float) and not math.isfinite(v):
        return None, str(v)
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z"), None
    if isinstance(v, bytes):
        return base64.b64encode(v).decode(), None
    if isinstance(v, list):
        return [_value(x)[0] for x in v], None
    return v, None


def record(s: TagSample, *, historical: bool, units: str | None = None) -> dict[str, Any]:
    value, text = _value(s.value)
    out: dict[str, Any] = {
        "value": value,
        "status": _status_name(s.status),
        "status_code": int(s.status),
        "quality": quality(s.status),
        "source_time": s.source_time.isoformat().replace("+00:00", "Z"),
        "server_time": s.server_time.isoformat().replace("+00:00", "Z"),
        "timestamp": to_ms(s.source_time),
        "historical": historical,
    }
    if text is not None:
        out["value_text"] = text
    if units:
        out["units"] = units
    return out


def messages(
    template: str, node: str, device: str | None, items: Sequence[tuple[MetricDef, TagSample]], *, historical: bool, now_ms: int
) -> list[tuple[str, bytes]]:
    """The JSON messages of *items* (samples of one Sparkplug device, or the node for None)."""
    dev = device or NODE_DEVICE
    if "{metric}" in template:
        return [
            (template.format(node=node, device=dev, metric=d.name), json.dumps(record(s, historical=historical, units=d.info.units)).encode()) for d, s in items
        ]
    metrics = {d.name: record(s, historical=historical, units=d.info.units) for d, s in items}
    doc = {"timestamp": now_ms, "historical": historical, "metrics": metrics}
    return [(template.format(node=node, device=dev, metric=""), json.dumps(doc).encode())]
