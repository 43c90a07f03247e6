"""GatewayCollector (edge/metrics/collector.py): sources, isolation of a failing one, exposition."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from edge.core.stats import Histogram
from edge.metrics.collector import GatewayCollector
from edge.metrics.endpoint import metrics_registry
from edge.metrics.sources import histogram_buckets


def _families(collector: GatewayCollector) -> dict[str, list]:
    text = generate_latest(metrics_registry(collector)).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_a_component_adds_itself_with_one_call_and_appears_in_the_exposition() -> None:
    c = GatewayCollector()
    sent = {"n": 3}
    c.register("sink", lambda: [CounterMetricFamily("edgetwin_sink_messages", "messages", value=sent["n"])])
    assert _families(c)["edgetwin_sink_messages"][0].value == 3
    sent["n"] = 5  # read at scrape time, not at registration
    fams = _families(c)
    assert fams["edgetwin_sink_messages"][0].value == 5
    assert "process_resident_memory_bytes" in fams and "process_open_fds" in fams  # our registry has the process figures
    with pytest.raises(ValueError, match="registered already"):
        c.register("sink", list)


def test_a_failing_source_is_left_out_counted_and_logged_once() -> None:
    c = GatewayCollector()
    state = {"broken": True}

    def flaky():
        if state["broken"]:
            raise RuntimeError("boom")
        return [CounterMetricFamily("edgetwin_flaky", "x", value=1)]

    c.register("flaky", flaky)
    c.register("fine", lambda: [CounterMetricFamily("edgetwin_fine", "x", value=1)])
    with capture_logs() as logs:
        for _ in range(3):
            fams = _families(c)
        state["broken"] = False
        fams_after = _families(c)
    assert "edgetwin_fine" in fams and "edgetwin_flaky" not in fams
    errors = {s.labels["source"]: s.value for s in fams_after["edgetwin_metrics_source_errors"] if s.name.endswith("_total")}
    assert errors == {"flaky": 3.0, "fine": 0.0}
    assert [e["event"] for e in logs] == ["metrics_source_failed", "metrics_source_recovered"]
    assert "edgetwin_flaky" in fams_after


def test_histogram_buckets_are_cumulative_with_inf_last() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 2.0):
        h.observe(v)
    assert histogram_buckets(h) == [("0.1", 1.0), ("1.0", 3.0), ("+Inf", 4.0)]


def test_the_mqtt_publisher_figures_are_exported_with_prometheus_names() -> None:
    from edge.metrics.sources import MQTT_LINK_STATES, mqtt_source
    from edge.mqtt.stats import FIELDS, MqttStats

    stats = MqttStats()
    stats.link_state, stats.messages_published, stats.metrics_published = "online", 12, 340
    stats.metrics_buffered, stats.metrics_dropped, stats.reconnects = 5, 2, 1
    collector = GatewayCollector()
    collector.register("mqtt", mqtt_source(stats))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics_registry(collector)).decode())}
    value = {name: families[name].samples[0].value for name in families if len(families[name].samples) == 1}
    assert value["edgetwin_mqtt_link_up"] == 1.0
    assert {s.labels["state"]: s.value for s in families["edgetwin_mqtt_link_state"].samples} == {s: float(s == "online") for s in MQTT_LINK_STATES}
    assert (value["edgetwin_mqtt_messages_published"], value["edgetwin_mqtt_metrics_published"]) == (12, 340)
    assert (value["edgetwin_mqtt_metrics_buffered"], value["edgetwin_mqtt_metrics_dropped"], value["edgetwin_mqtt_reconnects"]) == (5, 2, 1)
    # every counted figure of the publisher is exported (the last error is a Diagnostics node only)
    exported = {"link_state", "messages_published", "metrics_published", "metrics_buffered", "metrics_dropped", "reconnects"}
    assert {attr for attr, *_ in FIELDS} - exported == {"broker", "last_error"}
