"""Subscription mode through the supervisor (DeviceRunner) against one upstream server per module:
initial values and changes, status and time, deadbands, refused items, writes; poll mode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from drivers.base import SubscribingDriver
from drivers.opcua_client.driver import OpcUaSubscriptionDriver
from drivers.sample import Status
from tests.drivers.opcua_client.conftest import tag
from tests.drivers.opcua_client.running import running
from tests.drivers.opcua_client.upstream import Upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_initial_values_changes_status_and_source_time(shared_upstream: Upstream, tmp_path: Path) -> None:
    async with running(shared_upstream, tmp_path, [tag("Temperature"), tag("Setpoint"), tag("Vector", array=True)]) as r:
        assert isinstance(r.driver, OpcUaSubscriptionDriver) and isinstance(r.driver, SubscribingDriver)
        await r.until(lambda: r.latest("temperature").status == Status.Good and r.latest("vector").status == Status.Good)
        assert (r.latest("temperature").value, r.latest("vector").value) == (21.5, [1.0, 2.0, 3.0])
        then = datetime(2021, 6, 7, 8, 9, 10, tzinfo=UTC)
        await shared_upstream.set("Temperature", 22.5, source_time=then)
        await r.until(lambda: r.latest("temperature").value == 22.5)
        assert r.latest("temperature").source_time == then
        await shared_upstream.set("Temperature", status=Status.BadSensorFailure, source_time=then)
        await r.until(lambda: r.latest("temperature").status == Status.BadSensorFailure)
        assert r.latest("temperature").value is None
        await shared_upstream.set("Setpoint", 55.0, status=Status.UncertainSubNormal, source_time=then)
        await r.until(lambda: r.latest("setpoint").status == Status.UncertainSubNormal)
        assert r.latest("setpoint").value == 55.0
        assert shared_upstream.subscriptions() == 1


async def test_absolute_deadband_filters_small_changes(shared_upstream: Upstream, tmp_path: Path) -> None:
    async with running(shared_upstream, tmp_path, [tag("Temperature", deadband_type="absolute", deadband_value=1.0), tag("Setpoint")]) as r:
        await r.until(lambda: r.latest("temperature").status == Status.Good)
        # +0.4 stays inside the deadband, +1.6 is reported (asyncua's server compares each value with
        # the previous one, reported or not: hence one small step only)
        for value in (21.9, 23.5):
            await shared_upstream.set("Temperature", value)
            await asyncio.sleep(0.15)
        await r.until(lambda: r.latest("temperature").value == 23.5)
        assert [s.value for s in r.history("temperature") if s.status == Status.Good] == [21.5, 23.5]


async def test_percent_deadband_is_requested_from_the_server(shared_upstream: Upstream, tmp_path: Path) -> None:
    """asyncua's server does not implement percent deadbands; the request must still carry it."""
    async with running(shared_upstream, tmp_path, [tag("Temperature", deadband_type="percent", deadband_value=2.5), tag("Setpoint")], queue_size=5) as r:
        await r.until(lambda: r.latest("setpoint").status == Status.Good)
        filters = shared_upstream.filters()
        kinds = sorted((f.DeadbandType, f.DeadbandValue) if hasattr(f, "DeadbandType") else (0, 0.0) for f in filters)  # else: no filter
        assert kinds == [(0, 0.0), (2, 2.5)]


async def test_refused_items_are_bad_and_the_others_run(shared_upstream: Upstream, tmp_path: Path) -> None:
    tags = [tag("Temperature"), tag("Ghost", node="nsu=urn:nobody;s=X"), tag("Name", "int32")]
    with capture_logs() as logs:
        async with running(shared_upstream, tmp_path, tags) as r:
            await r.until(lambda: r.latest("temperature").status == Status.Good and r.latest("ghost").status == Status.BadNodeIdUnknown)
            assert r.latest("name").status == Status.BadTypeMismatch
    assert {e["event"] for e in logs if e["log_level"] == "warning"} >= {"opcua_node_unresolved", "opcua_type_mismatch"}


async def test_write_through_the_runner_returns_the_upstream_status(shared_upstream: Upstream, tmp_path: Path) -> None:
    async with running(shared_upstream, tmp_path, [tag("Setpoint", writable=True)]) as r:
        await r.until(lambda: r.latest("setpoint").status == Status.Good)
        assert await r.runner.write("setpoint", 80.0) == Status.Good
        await r.until(lambda: r.latest("setpoint").value == 80.0)
        assert await r.runner.write("setpoint", 120.0) == Status.BadOutOfRange
        assert await shared_upstream.get("Setpoint") == 80.0


async def test_poll_mode_through_the_runner(shared_upstream: Upstream, tmp_path: Path) -> None:
    tags = [tag("Temperature", poll_interval_s=0.05), tag("Flag", "bool"), tag("Ghost", node="nsu=urn:nobody;s=X")]
    async with running(shared_upstream, tmp_path, tags, mode="poll", poll_interval_s=0.2) as r:
        assert not isinstance(r.driver, SubscribingDriver)
        await r.until(lambda: r.latest("temperature").status == Status.Good and r.latest("flag").value is True)
        assert r.latest("ghost").status == Status.BadNodeIdUnknown
        then = datetime(2022, 2, 2, tzinfo=UTC)
        await shared_upstream.set("Temperature", 19.0, source_time=then)
        await r.until(lambda: r.latest("temperature").value == 19.0)
        assert r.latest("temperature").source_time == then
        assert shared_upstream.subscriptions() == 0
