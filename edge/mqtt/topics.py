"""Sparkplug B topic namespace (pure).

``spBv1.0/<group>/<NBIRTH|NDEATH|NDATA|NCMD>/<node>``,
``spBv1.0/<group>/<DBIRTH|DDEATH|DDATA|DCMD>/<node>/<device>`` and the primary host's
``spBv1.0/STATE/<host_id>`` (Sparkplug 3.0; the payload is JSON ``{"online": bool, "timestamp": ms}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NAMESPACE = "spBv1.0"
NODE_TYPES = ("NBIRTH", "NDEATH", "NDATA", "NCMD")
DEVICE_TYPES = ("DBIRTH", "DDEATH", "DDATA", "DCMD")


def node_topic(group: str, message_type: str, node: str) -> str:
    if message_type not in NODE_TYPES:
        raise ValueError(f"not a node message type: {message_type}")
    return f"{NAMESPACE}/{group}/{message_type}/{node}"


def device_topic(group: str, message_type: str, node: str, device: str) -> str:
    if message_type not in DEVICE_TYPES:
        raise ValueError(f"not a device message type: {message_type}")
    return f"{NAMESPACE}/{group}/{message_type}/{node}/{device}"


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


@dataclass(frozen=True, slots=True)
class Topic:
    group: str
    message_type: str
    node: str
    device: str | None = None


def parse_topic(topic: str) -> Topic | None:
    """The parts of a Sparkplug edge topic, or None for anything else (STATE included)."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[1] == "STATE":
        return None
    types = NODE_TYPES if len(parts) == 4 else DEVICE_TYPES
    if parts[2] not in types:
        return None
    return Topic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None)


def parse_state(payload: bytes) -> tuple[bool, int] | None:
    """(online, timestamp ms) of a Sparkplug 3.0 STATE payload; None if it is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("online"), bool):
        return None
    ts = doc.get("timestamp", 0)
    return doc["online"], ts if isinstance(ts, int) else 0
