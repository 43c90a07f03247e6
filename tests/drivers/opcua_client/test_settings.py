"""Settings of opcua devices, validated at config load; node id and browse path syntax; the sample."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import drivers.opcua_client
from drivers import load_driver
from drivers.base import DriverContext
from drivers.opcua_client.driver import OpcUaDriver, OpcUaSubscriptionDriver
from drivers.opcua_client.points import NodeRef, parse_browse_path, parse_node_id
from drivers.opcua_client.settings import OpcUaSettings, OpcUaTag
from edge.config import ConfigError, load_config, parse_config

SAMPLE = Path(drivers.opcua_client.__file__).with_name("sample.toml")
NODE = "nsu=urn:vendor:plant;s=Boiler.Temperature"


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("nsu=urn:vendor:plant;s=Boiler.Temperature", NodeRef("urn:vendor:plant", "s", "Boiler.Temperature")),
        ("ns=2;i=1001", NodeRef(2, "i", 1001)),
        ("i=2258", NodeRef(0, "i", 2258)),
        ("s=a;b=c", NodeRef(0, "s", "a;b=c")),
        ("ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a", NodeRef(1, "g", "09087e75-8e5e-499b-954f-f2a9603db28a")),
        ("ns=4;b=AAEC", NodeRef(4, "b", b"\x00\x01\x02")),
        ("nsu=http://x.org/UA/;i=7", NodeRef("http://x.org/UA/", "i", 7)),
    ],
)
def test_node_ids_parse_and_print_back(text: str, ref: NodeRef) -> None:
    assert parse_node_id(text) == ref
    assert parse_node_id(ref.text()) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Boiler.Temperature", "expected i=<number>, s=<string>"),
        ("ns=x;i=1", "needs a namespace index"),
        ("ns=70000;i=1", "above 65535"),
        ("nsu=urn:x", "must be followed by an identifier"),
        ("ns=2;i=-1", "0..4294967295"),
        ("ns=2;i=4294967296", "0..4294967295"),
        ("ns=2;s=", "empty string identifier"),
        ("ns=2;g=nope", "not a GUID"),
        ("ns=2;b=***", "not base64"),
        ("ns=2;x=1", "expected i=<number>"),
    ],
)
def test_bad_node_ids_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_node_id(text)


def test_browse_paths() -> None:
    assert parse_browse_path("/Objects/2:Boiler/2:Temperature") == ((0, "Objects"), (2, "Boiler"), (2, "Temperature"))
    for bad, message in (("Objects/2:Boiler", "must start with '/'"), ("/Objects//x", "empty element"), ("/", "empty element")):
        with pytest.raises(ValueError, match=message):
            parse_browse_path(bad)


def _device(tags: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return {"name": "boiler", "driver": "opcua", "endpoint": "opc.tcp://plc:4840", "tags": tags or [{"name": "t", "node": NODE, "type": "float64"}], **kw}


def _tag(**kw: Any) -> dict[str, Any]:
    return {"name": "t", "node": NODE, "type": "float64", **kw}


ERRORS = [
    (_device(endpoint="http://plc:4840"), "endpoint"),
    (_device(endpoint="opc.tcp://plc:99999"), "port 99999 is not 1..65535"),
    (_device(security_policy="Basic128Rsa15"), "security_policy"),
    (_device(security_mode="None"), "security_mode"),
    (_device(username="alice"), "username and password_file go together"),
    (_device(password_file="pw"), "username and password_file go together"),
    (_device(server_certificate="plc.der"), "need a security_policy other than 'None'"),
    (_device(security_policy="Basic256Sha256", server_certificate="a.der", trust_on_first_use=True), "not both"),
    (_device(mode="push"), "mode"),
    (_device(mode="poll", publishing_interval_s=0.5), "publishing_interval_s: not used in mode 'poll'"),
    (_device(mode="poll", deadband_type="absolute", deadband_value=1.0), "deadband_type, deadband_value: not used in mode 'poll'"),
    (_device([_tag(sampling_interval_s=0.1)], mode="poll"), "tags\\[0\\].sampling_interval_s: not used in mode 'poll'"),
    (_device(poll_interval_s=2.0), "poll_interval_s: not used in mode 'subscription'"),
    (_device([_tag(poll_interval_s=2.0)]), "tags\\[0\\].poll_interval_s: not used in mode 'subscription'"),
    (_device(publishing_interval_s=0), "greater than 0"),
    (_device(queue_size=0), "greater than or equal to 1"),
    (_device(timeout_s=0), "greater than 0"),
    (_device(deadband_type="percent", deadband_value=150.0), "percent deadband is 0..100"),
    (_device(deadband_value=1.0), "deadband_value needs deadband_type"),
    (_device([_tag(node=None)]), "exactly one of node and browse_path"),
    (_device([_tag(browse_path="/Objects/2:Boiler")]), "exactly one of node and browse_path"),
    (_device([_tag(node="Boiler.Temperature")]), "expected i=<number>"),
    (_device([_tag(node=None, browse_path="Objects")]), "must start with '/'"),
    (_device([{"name": "t", "node": NODE}]), "type"),
    (_device([_tag(type="double")]), "type"),
    (_device([_tag(deadband_type="absolute", deadband_value=-1.0)]), "greater than or equal to 0"),
    (_device([_tag(type="bool", deadband_type="absolute", deadband_value=1.0)]), "a deadband needs a numeric scalar tag"),
    (_device([_tag(array=True, deadband_type="percent", deadband_value=5.0)]), "a deadband needs a numeric scalar tag"),
    (_device([_tag(deadband_type="percent", deadband_value=101.0)]), "percent deadband is 0..100"),
    (_device([_tag(type="string", alarm_high=5.0)]), "alarm_high/alarm_low need a numeric scalar tag"),
    (_device([_tag(array=True, alarm_low=5.0)]), "alarm_high/alarm_low need a numeric scalar tag"),
    (_device([_tag(alarm_low=5.0, alarm_high=1.0)]), "alarm_low \\(5\\) must be below alarm_high"),
    (_device([_tag(type="datetime", low=0.0)]), "low/high need a numeric tag"),
    (_device([_tag(low=2.0, high=1.0)]), "low \\(2\\) must be below high"),
    (_device([_tag(type="datetime", historize=True)]), "history database keeps scalars"),
    (_device([_tag(array=True, historize=True)]), "history database keeps scalars"),
    (_device([_tag(unknown=1)]), "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("data", "message"), ERRORS)
def test_settings_refuse_with_a_reason(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpcUaSettings.model_validate(data)


def test_settings_accept_and_build_points() -> None:
    s = OpcUaSettings.model_validate(
        _device(
            [
                _tag(),
                _tag(name="u", browse_path="/Objects/2:Boiler/2:U", node=None, deadband_type="none", sampling_interval_s=0.1, queue_size=4),
                _tag(name="v", type="bytes", historize=True),
                _tag(name="w", type="int8", array=True, writable=True),
            ],
            deadband_type="percent",
            deadband_value=2.0,
            security_policy="Aes256_Sha256_RsaPss",
            security_mode="Sign",
            username="alice",
            password_file="pw",
        )
    )
    t, u, v, w = s.points()
    assert (t.node, t.deadband_type, t.deadband_value, t.sampling_interval_s) == (parse_node_id(NODE), "percent", 2.0, 0.5)
    assert (u.browse_path, u.deadband_type, u.deadband_value, u.sampling_interval_s, u.queue_size) == (
        ((0, "Objects"), (2, "Boiler"), (2, "U")),
        "none",
        0.0,
        0.1,
        4,
    )
    assert (v.value_type, w.value_type, w.array, w.writable) == ("bytes", "int8", True, True)
    assert (v.deadband_type, w.deadband_type) == ("none", "none")  # the device's deadband is for numeric scalars
    assert s.poll_intervals() == [1.0] * 4


def test_config_errors_are_located(tmp_path: Path) -> None:
    text = '[[devices]]\nname = "b"\ndriver = "opcua"\nendpoint = "opc.tcp://plc:4840"\n\n[[devices.tags]]\nname = "t"\nnode = "ns=2;q=1"\ntype = "float64"\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, str(tmp_path / "gw.toml"))
    (problem,) = info.value.problems
    assert problem.startswith(f"{tmp_path / 'gw.toml'}:8: devices[0].tags[0].node: ") and "expected i=<number>" in problem


def _commented_defaults() -> list[tuple[str, dict[str, object]]]:
    sections: list[tuple[str, dict[str, object]]] = []
    for raw in SAMPLE.read_text().splitlines():
        line = raw.strip()
        if line in ("[[devices]]", "[[devices.tags]]"):
            sections.append(("device" if line == "[[devices]]" else "tag", {}))
        elif line.startswith("# ") and " = " in line:
            sections[-1][1].update(tomllib.loads(line[2:]))
    return sections


def test_sample_loads_and_builds_drivers(tmp_path: Path) -> None:
    cfg = load_config(SAMPLE)
    assert [d.driver for d in cfg.devices] == ["opcua", "opcua"]
    context = DriverContext(state_dir=tmp_path, config_dir=SAMPLE.parent)
    boiler, panel = (load_driver("opcua").from_settings(d, context=context) for d in cfg.devices)
    assert isinstance(boiler, OpcUaSubscriptionDriver) and type(panel) is OpcUaDriver
    assert boiler.pki_dir == tmp_path / "pki" / "client"
    assert [p.array for p in cfg.devices[0].points()] == [False, False, False, True]
    assert cfg.devices[1].poll_intervals() == [0.5, 5.0]
    with pytest.raises(ValueError, match="needs a state folder"):
        OpcUaDriver.from_settings(cfg.devices[0])


def test_commented_keys_are_known_and_match_code_defaults() -> None:
    for kind, values in _commented_defaults():
        model = OpcUaTag if kind == "tag" else OpcUaSettings
        for key, value in values.items():
            assert key in model.model_fields, f"{kind}: unknown key {key!r}"
            default = model.model_fields[key].default
            if default is not None and kind == "device":  # tag keys without a default show an example
                assert value == default, f"{kind}.{key}: sample says {value!r}, model default is {default!r}"


def test_driver_and_model_defaults_agree() -> None:
    params = inspect.signature(OpcUaDriver).parameters
    for key in ("security_policy", "security_mode", "trust_on_first_use", "timeout_s", "watchdog_s", "session_timeout_s", "publishing_interval_s"):
        assert params[key].default == OpcUaSettings.model_fields[key].default, key


def test_an_array_tag_cannot_feed_a_twin_signal(tmp_path: Path) -> None:
    text = f"""
[[devices]]
name = "boiler"
driver = "opcua"
endpoint = "opc.tcp://plc:4840"
  [[devices.tags]]
  name = "profile"
  node = "{NODE}"
  type = "float64"
  array = true
  [[devices.tags]]
  name = "level"
  node = "{NODE}"
  type = "uint8"

[[assets]]
name = "tank"
tick_s = 0.5
  [[assets.signals]]
  name = "profile"
  tag = "boiler.profile"
  [[assets.signals]]
  name = "level"
  tag = "boiler.level"
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, str(tmp_path / "gw.toml"))
    (problem,) = info.value.problems
    assert "assets[0].signals[0].tag: tag 'boiler.profile' has type 'float64' (an array); a twin signal needs a numeric tag" in problem
