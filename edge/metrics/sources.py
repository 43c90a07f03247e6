"""What each component of the gateway contributes to ``/metrics``, and ``gateway_collector``.

Every function here returns a source (``collector.Source``): a callable that builds metric
families from the counters its component keeps as plain numbers, at scrape time. Names follow the
Prometheus conventions (``edgetwin_`` prefix, ``_total`` counters, ``_seconds`` and ``_bytes`` in
base units); docs/metrics.md lists them with the matching Diagnostics nodes.

Adding a component (a northbound sink, say) is one source function and one ``register`` line in
``gateway_collector``. ``gateway_metrics`` builds the endpoint the gateway enters (``edge.app``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

import kernels
from drivers.base import LinkState
from edge import __version__
from edge.core.stats import Histogram
from edge.metrics.collector import GatewayCollector, Source
from edge.metrics.endpoint import MetricsEndpoint, metrics_registry
from edge.metrics.listen import parse_listen


def histogram_buckets(h: Histogram) -> list[tuple[str, float]]:
    """The cumulative buckets of *h* in the form ``HistogramMetricFamily.add_metric`` takes."""
    return [(le, float(n)) for le, (_, n) in zip(_le_labels(h.bounds), h.cumulative(), strict=True)]


@functools.cache
def _le_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    return tuple(floatToGoString(b) for b in (*bounds, float("inf")))


def build_source() -> Source:
    """``edgetwin_build_info{version, kernels}``: always 1; which build and kernel implementation run."""

    def collect() -> Iterator[Metric]:
        info = GaugeMetricFamily("edgetwin_build_info", "the running edgetwin build (value 1)", labels=["version", "kernels"])
        info.add_metric([__version__, kernels.IMPLEMENTATION], 1)
        yield info

    return collect


def device_source(runners: Sequence[Any]) -> Source:
    """Per device (``edge.core.supervisor.DeviceRunner``, label ``device``): poll cycle durations,
    requests, errors, reconnects and whether the link is up."""

    def collect() -> Iterator[Metric]:
        cycles = HistogramMetricFamily("edgetwin_poll_cycle_seconds", "duration of each poll cycle (one driver read of the due scan groups)", labels=["device"])
        requests = CounterMetricFamily("edgetwin_device_requests", "requests sent to the device (Modbus frames, OPC UA service calls)", labels=["device"])
        errors = CounterMetricFamily("edgetwin_device_errors", "failed connection attempts and poll cycles lost to a transport failure", labels=["device"])
        reconnects = CounterMetricFamily("edgetwin_device_reconnects", "successful connects after an outage", labels=["device"])
        up = GaugeMetricFamily("edgetwin_device_up", "1 while the link to the device is connected, else 0", labels=["device"])
        for r in runners:
            h, name = r.health, [r.name]
            cycles.add_metric(name, histogram_buckets(h.poll_cycles), h.poll_cycles.sum)
            requests.add_metric(name, h.requests)
            errors.add_metric(name, h.reads_failed)
            reconnects.add_metric(name, h.reconnects)
            up.add_metric(name, 1 if h.link_state is LinkState.CONNECTED else 0)
        yield from (cycles, requests, errors, reconnects, up)

    return collect


def twin_source(twins: Sequence[Any]) -> Source:
    """Per asset (label ``asset``): the twin tick durations of the ``TwinRunner`` that ticks it
    (assets with the same ``tick_s`` share one tick, so they show the same histogram)."""

    def collect() -> Iterator[Metric]:
        ticks = HistogramMetricFamily("edgetwin_twin_tick_seconds", "duration of each twin tick that computes the asset", labels=["asset"])
        for twin in twins:
            buckets = histogram_buckets(twin.ticks)
            for asset in twin.assets:
                ticks.add_metric([asset.name], buckets, twin.ticks.sum)
        yield ticks

    return collect


def opcua_source(gw: Any) -> Source:
    """The northbound OPC UA server (``gw.server``, an ``edge.opcua.server.OpcUaServer``; nothing
    until it exists): sessions, subscriptions, monitored items, notifications sent, values the
    address space refused."""

    def collect() -> Iterator[Metric]:
        server = gw.server
        if server is None:
            return
        figures = dict(server.diagnostics())
        sessions = server.sessions.count if server.sessions is not None else 0
        yield GaugeMetricFamily("edgetwin_opcua_sessions", "activated client sessions", value=sessions)
        yield GaugeMetricFamily("edgetwin_opcua_subscriptions", "client subscriptions", value=figures["Subscriptions"])
        yield GaugeMetricFamily("edgetwin_opcua_monitored_items", "monitored items of all client subscriptions", value=figures["MonitoredItems"])
        yield CounterMetricFamily("edgetwin_opcua_notifications_sent", "notifications and events sent to clients", value=figures["NotificationsSent"])
        yield CounterMetricFamily("edgetwin_opcua_publish_failures", "samples the address space could not take (node left Bad)", value=server.publish_failures)

    return collect


GC_GENERATIONS = ("0", "1", "2")


def gc_source(gw: Any) -> Source:
    """The garbage collector under the daemon's policy (``gw.gc``, an ``edge.core.gcpolicy.GcPolicy``;
    nothing until the gateway is ready): collections and pauses per generation, the full-pause
    histogram, full pauses over the budget, sweeps, frozen objects."""

    def collect() -> Iterator[Metric]:
        policy = gw.gc
        if policy is None:
            return
        st = policy.stats
        runs = CounterMetricFamily("edgetwin_gc_collections", "garbage collections since the gateway was ready", labels=["generation"])
        paused = CounterMetricFamily("edgetwin_gc_pause_seconds", "time the event loop stood still in garbage collections", labels=["generation"])
        longest = GaugeMetricFamily("edgetwin_gc_longest_pause_seconds", "longest garbage-collection pause since the gateway was ready", labels=["generation"])
        for g, name in enumerate(GC_GENERATIONS):
            runs.add_metric([name], st.collections[g])
            paused.add_metric([name], st.pause_s[g])
            longest.add_metric([name], st.longest_s[g])
        yield from (runs, paused, longest)
        full = HistogramMetricFamily("edgetwin_gc_full_pause_seconds", "duration of each full (generation 2) collection, sweeps included")
        full.add_metric([], histogram_buckets(st.full_pauses), st.full_pauses.sum)
        yield full
        yield CounterMetricFamily(
            "edgetwin_gc_full_pauses_over_budget", f"full collections longer than {policy.settings.pause_budget_s * 1e3:g} ms", value=st.over_budget
        )
        yield CounterMetricFamily("edgetwin_gc_sweeps", "full collections over the frozen objects too (to free leaked reference cycles)", value=st.sweeps)
        yield GaugeMetricFamily("edgetwin_gc_frozen_objects", "objects in the permanent generation at ready and after the last sweep", value=st.frozen)
        yield GaugeMetricFamily("edgetwin_gc_allocated_blocks", "the interpreter's allocated memory blocks when last read (once a minute)", value=st.blocks)

    return collect


def history_source(recorder: Any) -> Source:
    """The history recorder (``edge.history.recorder.HistoryRecorder``): queue depth, rows written
    and dropped, database size."""

    def collect() -> Iterator[Metric]:
        yield GaugeMetricFamily("edgetwin_history_queue_depth", "samples accepted but not yet written to the history database", value=recorder.pending)
        yield CounterMetricFamily("edgetwin_history_rows_written", "rows written to the history database", value=recorder.written)
        yield CounterMetricFamily("edgetwin_history_rows_dropped", "samples dropped because the history writer fell behind", value=recorder.dropped)
        yield GaugeMetricFamily("edgetwin_history_database_bytes", "size of the history database", value=recorder.db_bytes)

    return collect


MQTT_LINK_STATES = ("disconnected", "connecting", "connected", "waiting_for_host", "online")


def mqtt_source(stats: Any) -> Source:
    """The MQTT publisher (``edge.mqtt.stats.MqttStats``): link state, messages and metrics
    published, metrics buffered and dropped, reconnects; the last error is a Diagnostics node only."""

    def collect() -> Iterator[Metric]:
        state = GaugeMetricFamily("edgetwin_mqtt_link_state", "1 for the MQTT link's current state", labels=["state"])
        for name in MQTT_LINK_STATES:
            state.add_metric([name], 1.0 if stats.link_state == name else 0.0)
        yield state
        yield GaugeMetricFamily("edgetwin_mqtt_link_up", "1 while the MQTT session publishes (online)", value=1.0 if stats.link_state == "online" else 0.0)
        yield CounterMetricFamily("edgetwin_mqtt_messages_published", "MQTT messages the broker accepted", value=stats.messages_published)
        yield CounterMetricFamily("edgetwin_mqtt_metrics_published", "metric values the broker accepted (historical included)", value=stats.metrics_published)
        yield GaugeMetricFamily("edgetwin_mqtt_metrics_buffered", "metric values waiting in the store-and-forward spool", value=stats.metrics_buffered)
        yield CounterMetricFamily("edgetwin_mqtt_metrics_dropped", "metric values dropped by the spool's size or age bound", value=stats.metrics_dropped)
        yield CounterMetricFamily("edgetwin_mqtt_reconnects", "MQTT sessions started after an outage", value=stats.reconnects)

    return collect


def gateway_collector(gw: Any, extensions: Sequence[Any] = ()) -> GatewayCollector:
    """The collector of a running ``edge.app.Gateway``: one source per component it has.
    *extensions* are the server extensions (``northbound_extensions``); history is among them when
    it runs."""
    collector = GatewayCollector()
    collector.register("build", build_source())
    collector.register("devices", device_source(gw.supervisor.runners))
    collector.register("twin", twin_source(gw.twins))
    collector.register("opcua", opcua_source(gw))
    collector.register("gc", gc_source(gw))
    recorder = next((ext.recorder for ext in extensions if hasattr(ext, "recorder")), None)
    if recorder is not None:
        collector.register("history", history_source(recorder))
    mqtt = getattr(gw, "mqtt", None)
    if mqtt is not None:
        collector.register("mqtt", mqtt_source(mqtt.stats))
    return collector


def gateway_metrics(section: Any, gw: Any, extensions: Sequence[Any] = ()) -> MetricsEndpoint:
    """The endpoint of ``[metrics]`` *section* for *gw* (enter it to listen): ``gateway_collector``
    and the process figures in a registry of their own."""
    host, port = parse_listen(section.listen)
    return MetricsEndpoint(host, port, metrics_registry(gateway_collector(gw, extensions)))
