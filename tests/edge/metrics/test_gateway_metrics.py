"""The Prometheus endpoint of a running gateway, against its OPC UA Diagnostics.

A gateway with the built-in plant (a real pymodbus server on loopback), a second device that
nothing answers, a twin and history; ``[metrics]`` on a free port. ``/metrics`` is scraped over
HTTP and parsed with prometheus_client's own parser; the Diagnostics nodes are read with a real
asyncua client.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from asyncua import Client, ua
from prometheus_client.parser import text_string_to_metric_families

from edge.app import run_gateway
from edge.config import ConfigError, parse_config
from edge.metrics.endpoint import MetricsEndpointError
from tests.gateway_task import running_gateway

ROOT = Path(__file__).resolve().parents[3]

CONFIG = """
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{opcua}/gw"
namespace_uri = "urn:edgetwin:metrics-test"
state_dir = "{state}"
backoff_initial_s = 0.2
backoff_max_s = 0.2

[opcua]
security_policies = ["None"]
allow_anonymous = true

[simulator]
enabled = true
port = {modbus}
tick_s = 0.05

[metrics]
listen = "127.0.0.1:{metrics}"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus}
poll_interval_s = 0.05

  [[devices.tags]]
  name = "temperature"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  historize = true

  [[devices.tags]]
  name = "level"
  address = "ir:1"
  type = "int16"
  scale = 0.1

[[devices]]
name = "gone"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {gone}
timeout_s = 0.2

  [[devices.tags]]
  name = "x"
  address = "hr:0"

[[assets]]
name = "tank"
tick_s = 0.1

  [[assets.signals]]
  name = "temperature"
  tag = "plc.temperature"
"""


def _config(ports, tmp_path: Path, **override: int):
    p = {"opcua": ports(), "modbus": ports(), "metrics": ports(), "gone": ports(), **override}
    return parse_config(CONFIG.format(state=tmp_path / "state", **p), str(tmp_path / "gateway.toml"))


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def _scrape(url: str) -> dict[str, dict[tuple, float]]:
    """family -> {(sample name, sorted labels): value}"""
    status, ctype, text = await asyncio.to_thread(_get, url)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
    return out


def _one(fams, family: str, sample: str | None = None, **labels: str) -> float:
    key = (sample or family, tuple(sorted(labels.items())))
    return fams[family][key]


@pytest.mark.slow  # about 10 s: the OPC UA address space, then two scrapes a second and a half apart
async def test_metrics_match_the_diagnostics_and_grow(free_port_factory, tmp_path: Path) -> None:
    cfg = _config(free_port_factory, tmp_path)
    url = f"http://{cfg.metrics.listen}/metrics"
    async with running_gateway(cfg):
        async with Client(cfg.gateway.endpoint, timeout=5) as client:
            ns = await client.get_namespace_index("urn:edgetwin:metrics-test")

            def node(path: str):
                return client.get_node(ua.NodeId(f"gw/{path}", ns))

            watched = [node("Devices/plc/temperature"), node("Devices/plc/level"), node("Assets/tank/temperature/Estimate")]
            sub = await client.create_subscription(50, None)
            await sub.subscribe_data_change(watched)
            await asyncio.sleep(2.5)  # > 1 s: every Diagnostics figure has been published since
            first = await _scrape(url)
            diag = {leaf: await node(f"Diagnostics/{leaf}").read_value() for leaf in (
                "plc/Requests", "plc/ReadsFailed", "plc/Reconnects", "plc/ReadsOk", "gone/ReadsFailed", "gone/LinkState", "plc/LinkState",
                "Gateway/Sessions", "Gateway/Subscriptions", "Gateway/MonitoredItems", "Gateway/NotificationsSent",
                "Gateway/HistorySamplesWritten", "Gateway/HistoryPendingSamples", "Gateway/Assets/tank/TickTime",
            )}  # fmt: skip
            await asyncio.sleep(1.5)
            second = await _scrape(url)
            await sub.delete()

        # families, types and labels
        for family in ("edgetwin_poll_cycle_seconds", "edgetwin_device_requests", "edgetwin_device_errors", "edgetwin_device_reconnects", "edgetwin_device_up"):
            assert {dict(k[1])["device"] for k in first[family]} == {"plc", "gone"}, family
        assert {dict(k[1])["asset"] for k in first["edgetwin_twin_tick_seconds"]} == {"tank"}
        for family in ("edgetwin_opcua_sessions", "edgetwin_opcua_subscriptions", "edgetwin_opcua_monitored_items", "edgetwin_history_queue_depth"):
            assert family in first, family
        assert _one(first, "process_resident_memory_bytes") > 10e6 and _one(first, "process_open_fds") > 5
        # the GC policy's figures (edge.core.gcpolicy): the running gateway's collections, from ready on
        assert _one(second, "edgetwin_gc_collections", "edgetwin_gc_collections_total", generation="0") > 0
        assert _one(first, "edgetwin_gc_frozen_objects") > 100_000  # asyncua's nodes and the address space, frozen at ready
        assert "edgetwin_gc_full_pauses_over_budget" in first and "edgetwin_gc_full_pause_seconds" in first
        build = next(iter(first["edgetwin_build_info"]))
        assert dict(build[1])["kernels"] in ("cython", "numpy")

        # the link states
        assert _one(first, "edgetwin_device_up", device="plc") == 1 and diag["plc/LinkState"] == "connected"
        assert _one(first, "edgetwin_device_up", device="gone") == 0 and diag["gone/LinkState"] != "connected"

        # counters grow between two scrapes
        for family, sample, labels in (
            ("edgetwin_device_requests", "edgetwin_device_requests_total", {"device": "plc"}),
            ("edgetwin_poll_cycle_seconds", "edgetwin_poll_cycle_seconds_count", {"device": "plc"}),
            ("edgetwin_device_errors", "edgetwin_device_errors_total", {"device": "gone"}),
            ("edgetwin_twin_tick_seconds", "edgetwin_twin_tick_seconds_count", {"asset": "tank"}),
            ("edgetwin_opcua_notifications_sent", "edgetwin_opcua_notifications_sent_total", {}),
            ("edgetwin_history_rows_written", "edgetwin_history_rows_written_total", {}),
        ):
            assert _one(second, family, sample, **labels) > _one(first, family, sample, **labels) > 0, sample
        # about 20 poll cycles a second, each one Modbus request (two adjacent input registers)
        assert 10 < _one(second, "edgetwin_poll_cycle_seconds", "edgetwin_poll_cycle_seconds_count", device="plc") / 4.0 < 25
        inf = _one(first, "edgetwin_poll_cycle_seconds", "edgetwin_poll_cycle_seconds_bucket", device="plc", le="+Inf")
        assert inf == _one(first, "edgetwin_poll_cycle_seconds", "edgetwin_poll_cycle_seconds_count", device="plc")

        # the same figures in Diagnostics: exact where they stand still, within a second's growth where they move
        assert _one(first, "edgetwin_device_reconnects", "edgetwin_device_reconnects_total", device="plc") == diag["plc/Reconnects"] == 0
        assert _one(first, "edgetwin_device_errors", "edgetwin_device_errors_total", device="plc") == diag["plc/ReadsFailed"] == 0
        assert _one(first, "edgetwin_opcua_sessions") == diag["Gateway/Sessions"] == 1
        assert _one(first, "edgetwin_opcua_subscriptions") == diag["Gateway/Subscriptions"] == 1
        assert _one(first, "edgetwin_opcua_monitored_items") == diag["Gateway/MonitoredItems"] == len(watched)
        requests = _one(first, "edgetwin_device_requests", "edgetwin_device_requests_total", device="plc")
        assert requests - 40 <= diag["plc/Requests"] <= _one(second, "edgetwin_device_requests", "edgetwin_device_requests_total", device="plc")
        assert diag["plc/Requests"] >= diag["plc/ReadsOk"] > 0
        errors = _one(first, "edgetwin_device_errors", "edgetwin_device_errors_total", device="gone")
        assert errors - 10 <= diag["gone/ReadsFailed"] <= _one(second, "edgetwin_device_errors", "edgetwin_device_errors_total", device="gone")
        sent = _one(first, "edgetwin_opcua_notifications_sent", "edgetwin_opcua_notifications_sent_total")
        assert 0 < diag["Gateway/NotificationsSent"] <= _one(second, "edgetwin_opcua_notifications_sent", "edgetwin_opcua_notifications_sent_total")
        assert diag["Gateway/NotificationsSent"] >= sent - 200
        written = _one(second, "edgetwin_history_rows_written", "edgetwin_history_rows_written_total")
        assert 0 < diag["Gateway/HistorySamplesWritten"] <= written
        assert diag["Gateway/HistoryPendingSamples"] >= 0 and _one(first, "edgetwin_history_queue_depth") >= 0
        assert 0 < diag["Gateway/Assets/tank/TickTime"] < 1.0
        assert _one(second, "edgetwin_twin_tick_seconds", "edgetwin_twin_tick_seconds_sum", asset="tank") > 0

        # only /metrics, only GET
        base = url.removesuffix("/metrics")
        assert (await asyncio.to_thread(_get, base + "/"))[0] == 404
        req = urllib.request.Request(url, method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError) as err:
            await asyncio.to_thread(urllib.request.urlopen, req, timeout=5)
        assert err.value.code == 405
    # the listener is closed with the gateway
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(cfg.metrics.listen.rsplit(":", 1)[1])), timeout=1).close()


async def test_a_busy_metrics_port_stops_the_gateway_with_a_clear_error(free_port_factory, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = _config(free_port_factory, tmp_path, metrics=port)
        started = time.monotonic()
        with pytest.raises(ExceptionGroup) as group:
            await run_gateway(cfg, shutdown_trigger=asyncio.Event().wait)
    assert time.monotonic() - started < 10  # before the OPC UA address space is built
    errors = group.value.exceptions
    assert len(errors) == 1 and isinstance(errors[0], MetricsEndpointError)
    assert str(errors[0]) == f"metrics.listen 127.0.0.1:{port}: cannot listen: address already in use"


@pytest.mark.slow  # a subprocess: a few seconds of imports
def test_the_cli_reports_a_busy_metrics_port_and_exits_1(free_port_factory, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "gateway.toml"
        text = CONFIG.format(state=tmp_path / "state", opcua=free_port_factory(), modbus=free_port_factory(), metrics=port, gone=free_port_factory())
        path.write_text(text.replace("[simulator]\nenabled = true", "[simulator]\nenabled = false"))
        out = subprocess.run([sys.executable, "-m", "edge", "run", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1
    assert "gateway_failed" in out.stdout + out.stderr
    assert f"metrics.listen 127.0.0.1:{port}: cannot listen: address already in use" in out.stdout + out.stderr


def test_a_bad_listen_value_is_a_located_config_error(tmp_path: Path) -> None:
    text = '[gateway]\nname = "gw"\n\n[metrics]\nlisten = "127.0.0.1"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, "gateway.toml")
    assert err.value.problems == ["gateway.toml:5: metrics.listen: '127.0.0.1': must be 'host:port', e.g. '127.0.0.1:9108'"]
    assert parse_config('[gateway]\nname = "gw"\n').metrics is None  # no section: no endpoint
