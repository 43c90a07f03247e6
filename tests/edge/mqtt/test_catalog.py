"""Tags to metrics, aliases, report by exception, topics and the [mqtt] settings (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from drivers.sample import Status, TagSample
from edge.core.registry import TagInfo
from edge.mqtt import topics
from edge.mqtt.catalog import Catalog, ReportFilter, metric_name
from edge.mqtt.settings import MqttSection, parse_broker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def s(key: str, value: object, status: int = Status.Good, dt: float = 0.0) -> TagSample:
    t = T0 + timedelta(seconds=dt)
    return TagSample(key, value, status, t, t)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("Devices", "plc1", "temp"), ("plc1", "temp")),
        (("Assets", "tank1", "temp", "Estimate"), ("tank1", "temp/Estimate")),
        (("Assets", "tank1", "AnomalyScore"), ("tank1", "AnomalyScore")),
        (("Diagnostics", "plc1", "LinkState"), (None, "Diagnostics/plc1/LinkState")),
        (("Diagnostics", "Gateway", "Version"), (None, "Diagnostics/Gateway/Version")),
    ],
)
def test_metric_names(path: tuple[str, ...], expected: tuple[str | None, str]) -> None:
    assert metric_name(path) == expected


def test_catalog_aliases_devices_and_link_keys() -> None:
    c = Catalog(
        [
            TagInfo("plc1.temp", ("Devices", "plc1", "temp"), device="plc1"),
            TagInfo("_diag.plc1.LinkState", ("Diagnostics", "plc1", "LinkState"), "string"),
            TagInfo("tank1.temp.estimate", ("Assets", "tank1", "temp", "Estimate")),
        ]
    )
    assert [d.alias for d in c.by_key.values()] == [1, 2, 3]
    assert set(c.devices) == {"plc1", "tank1"} and [d.name for d in c.node_metrics] == ["Diagnostics/plc1/LinkState"]
    assert c.link_keys == {"_diag.plc1.LinkState": "plc1"}
    assert c.by_name[("tank1", "temp/Estimate")].key == "tank1.temp.estimate"


def test_catalog_refuses_two_tags_on_one_metric() -> None:
    with pytest.raises(ValueError, match="both become metric 'x' of Sparkplug device 'a'"):
        Catalog([TagInfo("a.x", ("Devices", "a", "x")), TagInfo("a.x2", ("Assets", "a", "x"))])


def test_report_by_exception_with_deadband() -> None:
    """Same value and status: not sent; a move within the deadband: not sent; beyond it, or a status change: sent."""
    f = ReportFilter({"t": 0.5})
    assert f.report(s("t", 10.0)) == (True, True)
    assert f.report(s("t", 10.0, dt=1)) == (False, False)
    assert f.report(s("t", 10.4, dt=2)) == (False, False)
    assert f.report(s("t", 10.6, dt=3)) == (True, False)
    assert f.report(s("t", 10.6, Status.UncertainNoCommunicationLastUsableValue, dt=4)) == (True, True)
    assert f.report(s("u", "a")) == (True, True)
    assert f.report(s("u", "a")) == (False, False)
    assert f.report(s("u", "b")) == (True, False)
    assert f.report(s("v", 1)) == (True, True)
    assert f.report(s("v", 2)) == (True, False)  # deadband 0: any change


def test_topics() -> None:
    assert topics.node_topic("g", "NBIRTH", "n") == "spBv1.0/g/NBIRTH/n"
    assert topics.device_topic("g", "DCMD", "n", "d") == "spBv1.0/g/DCMD/n/d"
    assert topics.parse_topic("spBv1.0/g/DCMD/n/d") == topics.Topic("g", "DCMD", "n", "d")
    assert topics.parse_topic("spBv1.0/g/DCMD/n") is None
    assert topics.parse_topic("spBv1.0/STATE/host") is None
    assert topics.parse_state(b'{"online": true, "timestamp": 5}') == (True, 5)
    assert topics.parse_state(b"ONLINE") is None  # the Sparkplug 2.2 text form is not a 3.0 STATE
    with pytest.raises(ValueError):
        topics.node_topic("g", "DDATA", "n")


@pytest.mark.parametrize(
    ("url", "expected"),
    [("mqtt://h", ("mqtt", "h", 1883)), ("mqtts://h", ("mqtts", "h", 8883)), ("mqtt://127.0.0.1:1999", ("mqtt", "127.0.0.1", 1999))],
)
def test_parse_broker(url: str, expected: tuple[str, str, int]) -> None:
    assert parse_broker(url) == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"broker": "tcp://h"}, "must start with mqtt:// or mqtts://"),
        ({"broker": "mqtt://u:p@h"}, "credentials go in username/password_file"),
        ({"password_file": "pw"}, "password_file needs username"),
        ({"ca_file": "ca.pem"}, "ca_file/cert_file need an mqtts:// broker"),
        ({"cert_file": "c.pem", "broker": "mqtts://h"}, "cert_file and key_file go together"),
        ({"sparkplug_node": "a/b"}, "a Sparkplug id must not contain"),
        ({"json_topic": "x/{metric}"}, "json_topic must contain {device}"),
        ({"json_topic": "x/{device}/{tag}"}, "unknown placeholder"),
        ({"mode": "json", "primary_host": "h"}, "primary_host is a Sparkplug feature"),
        ({"buffer_max_mb": 0}, "greater than 0"),
    ],
)
def test_settings_errors(changes: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"broker": "mqtt://h", "client_id": "c", "sparkplug_node": "n"}
    with pytest.raises(ValidationError, match=message):
        MqttSection(**(base | changes))


def test_settings_one_broker_or_several() -> None:
    assert MqttSection(broker="mqtt://a", client_id="c", sparkplug_node="n").broker == ["mqtt://a"]
    assert MqttSection(broker=["mqtt://a", "mqtts://b"], client_id="c", sparkplug_node="n").broker == ["mqtt://a", "mqtts://b"]
