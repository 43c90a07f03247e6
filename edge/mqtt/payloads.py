"""The Sparkplug B edge node's messages: births, deaths and data, with ``bdSeq`` and ``seq`` (pure).

* ``bdSeq`` (0-255) counts MQTT sessions: the NDEATH registered as the Will at CONNECT and the
  NBIRTH that follows carry the same value; it is persisted so a restart continues the count.
* ``seq`` (0-255, wrapping) is 0 in NBIRTH and increments by one in every later message of the
  session (DBIRTH, NDATA, DDATA, DDEATH); a rebirth starts again at 0. NDEATH has no ``seq``.
* Births carry every metric with name, alias, datatype, value and properties; data messages carry
  the alias only. Properties: ``Quality`` (Int32: 192 GOOD, 500 STALE, 0 BAD, from the OPC UA
  status), ``StatusCode`` (UInt32, the OPC UA status, present unless Good), ``engUnit``,
  ``engLow``, ``engHigh``, ``description`` and ``writable`` where the tag has them. A data metric
  carries ``Quality`` (and ``StatusCode``) whenever its status is not Good or has just changed.

Stored (store-and-forward) metrics keep their name instead of the alias, so they can be sent after
a restart with a different configuration; ``for_session`` maps names back to the current aliases
and flags them historical.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from drivers.sample import Status, TagSample, is_good
from edge.mqtt import topics
from edge.mqtt.catalog import Catalog, MetricDef
from edge.mqtt.sparkplug import DataType, Payload, from_ms, get_value, properties, quality, set_property, set_value, to_ms

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"

Message = tuple[str, bytes]  # (topic, payload)


def add_metric(payload: Any, d: MetricDef, s: TagSample, *, birth: bool = False, named: bool = False, with_quality: bool = True) -> Any:
    """Append the metric of sample *s* of *d* to *payload*."""
    m = payload.metrics.add()
    if birth or named:
        m.name = d.name
    if birth or not named:
        m.alias = d.alias
    m.timestamp = to_ms(s.source_time)
    m.datatype = d.datatype
    set_value(m, d.datatype, s.value)
    if birth or with_quality or not is_good(s.status):
        props = m.properties
        set_property(props, "Quality", DataType.Int32, quality(s.status))
        if s.status != Status.Good:
            set_property(props, "StatusCode", DataType.UInt32, s.status)
        if birth:
            info = d.info
            if info.units:
                set_property(props, "engUnit", DataType.String, info.units)
            if info.low is not None:
                set_property(props, "engLow", DataType.Double, float(info.low))
            if info.high is not None:
                set_property(props, "engHigh", DataType.Double, float(info.high))
            if info.description:
                set_property(props, "description", DataType.String, info.description)
            set_property(props, "writable", DataType.Boolean, info.writable)
    return m


class EdgeNode:
    """Sequence numbers and message building of one Sparkplug edge node."""

    def __init__(self, catalog: Catalog, group: str, node: str, *, bd_seq: int = 0) -> None:
        self.catalog = catalog
        self.group = group
        self.node = node
        self.bd_seq = bd_seq % 256
        self.seq = 0

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (seq + 1) % 256
        return seq

    def _payload(self, now_ms: int) -> Any:
        return Payload(timestamp=now_ms, seq=self._next_seq())

    def node_topic(self, kind: str) -> str:
        return topics.node_topic(self.group, kind, self.node)

    def device_topic(self, kind: str, device: str) -> str:
        return topics.device_topic(self.group, kind, self.node, device)

    def data_topic(self, device: str | None) -> str:
        return self.node_topic("NDATA") if device is None else self.device_topic("DDATA", device)

    # -- session ---------------------------------------------------------------------------------
    def ndeath(self) -> Message:
        p = Payload(timestamp=to_ms_now())
        p.metrics.add(name=BDSEQ, datatype=DataType.Int64, long_value=self.bd_seq)
        return self.node_topic("NDEATH"), p.SerializeToString()

    def nbirth(self, latest: Sequence[TagSample], now_ms: int) -> Message:
        """NBIRTH (seq 0) with bdSeq, Node Control/Rebirth and every node metric (*latest* in ``node_metrics`` order)."""
        self.seq = 0
        p = self._payload(now_ms)
        p.metrics.add(name=BDSEQ, timestamp=now_ms, datatype=DataType.Int64, long_value=self.bd_seq)
        p.metrics.add(name=REBIRTH, timestamp=now_ms, datatype=DataType.Boolean, boolean_value=False)
        for d, s in zip(self.catalog.node_metrics, latest, strict=True):
            add_metric(p, d, s, birth=True)
        return self.node_topic("NBIRTH"), p.SerializeToString()

    def dbirth(self, device: str, latest: Sequence[TagSample], now_ms: int) -> Message:
        p = self._payload(now_ms)
        for d, s in zip(self.catalog.devices[device], latest, strict=True):
            add_metric(p, d, s, birth=True)
        return self.device_topic("DBIRTH", device), p.SerializeToString()

    def ddeath(self, device: str, now_ms: int) -> Message:
        return self.device_topic("DDEATH", device), self._payload(now_ms).SerializeToString()

    def data(self, device: str | None, metrics: Any, now_ms: int) -> Message:
        """NDATA/DDATA of already built *metrics* (a Payload's metrics, or a list of Metric)."""
        p = self._payload(now_ms)
        p.metrics.extend(metrics)
        return self.data_topic(device), p.SerializeToString()

    def for_session(self, stored: bytes) -> tuple[Any, int]:
        """A stored payload's metrics with the current aliases, flagged historical, and the count of
        metrics no longer known (dropped)."""
        p = Payload.FromString(stored)
        out = []
        unknown = 0
        for m in p.metrics:
            d = self.catalog.by_name.get((_device_of(p), m.name))
            if d is None:
                unknown += 1
                continue
            m.ClearField("name")
            m.alias = d.alias
            m.is_historical = True
            out.append(m)
        return out, unknown


def _device_of(p: Any) -> str | None:
    return p.uuid or None  # stored payloads keep their Sparkplug device in uuid (never sent)


def stored_payload(device: str | None, pairs: Iterable[tuple[MetricDef, TagSample, bool]]) -> bytes:
    """The store-and-forward form of samples of one device: named metrics, device in ``uuid``."""
    p = Payload(uuid=device or "")
    for d, s, changed in pairs:
        add_metric(p, d, s, named=True, with_quality=changed)
    return p.SerializeToString()


def stored_samples(catalog: Catalog, stored: bytes) -> tuple[list[tuple[MetricDef, TagSample]], int]:
    """A stored payload as (metric, sample) pairs of the current catalog, and the count of metrics
    no longer known (for the plain JSON mode)."""
    p = Payload.FromString(stored)
    out = []
    unknown = 0
    for m in p.metrics:
        d = catalog.by_name.get((_device_of(p), m.name))
        if d is None:
            unknown += 1
            continue
        props = properties(m)
        status = props.get("StatusCode", Status.Good)
        t = from_ms(m.timestamp)
        out.append((d, TagSample(d.key, get_value(m, d.datatype), status, t, t)))
    return out, unknown


def to_ms_now() -> int:
    return int(time.time() * 1000)
