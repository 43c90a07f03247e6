"""Sessions through the supervisor against upstream servers of their own: restarts (with a
reordered namespace array), sessions the server ends, refused logins, reconnect cycles."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from structlog.testing import capture_logs

from drivers.base import ReadResult
from drivers.sample import Status
from tests.drivers.opcua_client.conftest import make_driver, settings, tag
from tests.drivers.opcua_client.running import UNCERTAIN, running
from tests.drivers.opcua_client.upstream import PLANT, Upstream


async def test_restart_with_a_reordered_namespace_array_goes_uncertain_then_good(upstream: Upstream, tmp_path: Path) -> None:
    """The server restarts mid-subscription and registers two namespaces before the plant's, so
    its index moves from 2 to 4: the tag still maps by URI, and one subscription exists afterwards."""
    async with running(upstream, tmp_path, [tag("Temperature"), tag("Flag", "bool")]) as r:
        await r.until(lambda: r.latest("temperature").status == Status.Good)
        assert upstream.ns == 2
        with capture_logs() as logs:
            stopped = time.monotonic()
            await upstream.stop()
            await r.until(lambda: r.latest("temperature").status == UNCERTAIN, timeout=5)
            noticed_s = time.monotonic() - stopped
            assert r.latest("temperature").value == 21.5
            await upstream.start(["urn:other:a", "urn:other:b", PLANT])
            assert upstream.ns == 4
            await upstream.set("Temperature", 30.5)
            await r.until(lambda: r.latest("temperature").status == Status.Good and r.latest("temperature").value == 30.5)
        assert noticed_s < 2.0
        assert upstream.subscriptions() == 1
        assert r.latest("flag").value is True
        events = [e["event"] for e in logs if e["event"].startswith("device_")]
        assert events[0] == "device_unreachable" and events.count("device_unreachable") == 1
        assert events[-1] == "device_reconnected"
        statuses = [s.status for s in r.history("temperature")]
        assert statuses[-2:] == [UNCERTAIN, Status.Good]


async def test_session_closed_by_the_server_is_a_lost_session(upstream: Upstream, tmp_path: Path) -> None:
    """A session the server ends (its session timeout) is noticed and replaced by a new one."""
    async with running(upstream, tmp_path, [tag("Temperature")]) as r:
        await r.until(lambda: r.latest("temperature").status == Status.Good)
        assert upstream.server is not None
        for session in list(upstream.server.iserver._external_sessions.values()):
            await session.close_session(delete_subs=True)
        await r.until(lambda: r.runner.health.reconnects == 1, timeout=5)
        await upstream.set("Temperature", 40.0)
        await r.until(lambda: r.latest("temperature").value == 40.0)
        assert upstream.subscriptions() == 1


async def test_wrong_password_is_a_clear_outage(free_port: int, tmp_path: Path) -> None:
    up = Upstream(free_port, users={"alice": "right"})
    await up.start()
    (tmp_path / "pw").write_text("wrong\n")
    try:
        with capture_logs() as logs:
            async with running(up, tmp_path, [tag("Temperature")], username="alice", password_file="pw") as r:
                await r.until(lambda: r.runner.health.reads_failed >= 1)
                assert r.latest("temperature").status == Status.BadNoCommunication
    finally:
        await up.stop()
    outage = next(e for e in logs if e["event"] == "device_unreachable")
    assert "login as alice refused" in outage["error"]
    assert all("wrong" not in str(e) for e in logs)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_hundred_reconnect_cycles_leak_no_tasks_sockets_sessions_or_subscriptions(upstream: Upstream, tmp_path: Path) -> None:
    """connect -> subscribe -> first data -> close, 100 times against one server (no fakes)."""
    s = settings(upstream.endpoint, [tag("Temperature"), tag("Flag", "bool")], publishing_interval_s=0.02, watchdog_s=0.5)
    d = make_driver(s, tmp_path)
    points = s.points()
    await asyncio.sleep(0.1)
    tasks, fds = len(asyncio.all_tasks()), _open_fds()
    batches: list[ReadResult] = []
    started = time.monotonic()
    for cycle in range(100):
        await d.connect()
        run = asyncio.create_task(d.run_subscription(points, batches.append), name="subscription")
        async with asyncio.timeout(5):
            while len(batches) <= cycle:
                await asyncio.sleep(0.002)
        assert upstream.subscriptions() == 1 and upstream.sessions() == 1
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await d.close()
    elapsed = time.monotonic() - started
    assert {x.status for b in batches for x in b.samples} == {Status.Good}
    async with asyncio.timeout(5):  # the server closes its side of each socket a moment later
        while (_open_fds(), len(asyncio.all_tasks())) != (fds, tasks) or upstream.sessions():
            await asyncio.sleep(0.05)
    assert upstream.subscriptions() == 0
    assert elapsed < 30, f"100 cycles took {elapsed:.1f} s"
