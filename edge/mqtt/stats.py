"""Counters and link state of the MQTT sink, published as Diagnostics/Gateway/Mqtt* tags.

``MqttStats`` keeps plain attributes; ``FIELDS`` lists them with their diagnostics leaf, data
type and meaning, so a metrics exporter registers them all in one loop over ``FIELDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.sample import Status, TagSample, utcnow
from edge.core.names import MQTT_DIAGNOSTICS, gateway_diag_key, gateway_diag_path
from edge.core.registry import TagInfo

# (attribute, diagnostics leaf, data type, description); the leaves are edge.core.names.MQTT_DIAGNOSTICS
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("link_state", "MqttLinkState", "string", "disconnected | connecting | connected (births and spool on the way) | waiting_for_host | online"),
    ("broker", "MqttBroker", "string", "the broker of the current or last session"),
    ("last_error", "MqttLastError", "string", "the error of the current or most recent outage"),
    ("messages_published", "MqttMessagesPublished", "uint64", "messages the broker accepted"),
    ("metrics_published", "MqttMetricsPublished", "uint64", "metric values the broker accepted (historical included)"),
    ("metrics_buffered", "MqttMetricsBuffered", "uint64", "metric values waiting in the store-and-forward spool"),
    ("metrics_dropped", "MqttMetricsDropped", "uint64", "metric values dropped by the spool's size or age bound"),
    ("reconnects", "MqttReconnects", "uint64", "sessions started after an outage"),
)


@dataclass(slots=True)
class MqttStats:
    link_state: str = "disconnected"
    broker: str = ""
    last_error: str = ""
    messages_published: int = 0
    metrics_published: int = 0
    metrics_buffered: int = 0
    metrics_dropped: int = 0
    reconnects: int = 0
    _published: dict[str, object] = field(default_factory=dict, repr=False)

    @staticmethod
    def infos() -> list[TagInfo]:
        return [TagInfo(gateway_diag_key(leaf), gateway_diag_path(leaf), dtype, description=desc) for _, leaf, dtype, desc in FIELDS]

    def changed_samples(self) -> list[TagSample]:
        """Samples of the fields that changed since the last call (all, the first time)."""
        now = utcnow()
        out = []
        for attr, leaf, _, _ in FIELDS:
            value = getattr(self, attr)
            if self._published.get(leaf, self) != value:
                self._published[leaf] = value
                out.append(TagSample(gateway_diag_key(leaf), value, Status.Good, now, now))
        return out


assert tuple(leaf for _, leaf, _, _ in FIELDS) == MQTT_DIAGNOSTICS
