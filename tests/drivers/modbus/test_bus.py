"""Shared-bus behaviour of the Modbus TCP driver against a server whose units misbehave on demand.

A gateway with several unit ids on one connection: a unit that never answers is demoted and must
not stall the others; a rejected address is isolated from its block; a slow unit's late reply is
not taken for another unit's; retries; every exception code over the wire; writes with scaling.
The same bus under the gateway's supervisor is in ``test_bus_supervised.py``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from drivers.base import DriverUnavailable, LinkState
from drivers.modbus.status import EXCEPTION_STATUS, exception_status
from drivers.sample import Status
from tests.drivers.mini_server import MiniServer, Unit
from tests.drivers.modbus.reading import by_name, gateway_driver, pt, read_all


async def test_points_of_a_silent_unit_are_reported_as_not_fetched_not_as_samples(two_units: MiniServer) -> None:
    """The read result says explicitly which points were not fetched and which Bad status each takes
    once its last value expires; the fetched points come back as finished samples keyed by name."""
    two_units.units[1].hr[0] = 11
    two_units.units[2].silent = True
    d = gateway_driver(two_units.port, demote_after=1, demote_for_s=60)
    await d.connect()
    live, dead = pt("gw.live", "hr:0", unit_id=1), pt("gw.dead", "hr:0", unit_id=2)
    first = await d.read([live, dead])
    assert [(s.tag, s.value, s.status) for s in first.samples] == [("gw.live", 11, Status.Good)]
    assert first.samples[0].server_time == first.samples[0].source_time  # stamped once, on arrival
    assert first.not_fetched == {Status.BadTimeout: ["gw.dead"]}
    second = await d.read([live, dead])  # now demoted: not asked at all
    assert second.not_fetched == {Status.BadNoCommunication: ["gw.dead"]}
    await d.close()


async def test_silent_unit_is_demoted_and_the_other_keeps_answering(two_units: MiniServer) -> None:
    """After demote_after misses the unit is not asked any more; the live unit's reads stay Good."""
    two_units.units[1].hr[0] = 11
    two_units.units[2].silent = True
    d = gateway_driver(two_units.port, demote_after=2, demote_for_s=60)
    await d.connect()
    live, dead = pt("live", "hr:0", unit_id=1), pt("dead", "hr:0", unit_id=2)
    with capture_logs() as logs:
        first = by_name(await read_all(d, [live, dead]))
        second = by_name(await read_all(d, [live, dead]))
        sent = d.requests_sent
        started = time.monotonic()
        third = by_name(await read_all(d, [live, dead]))
        elapsed = time.monotonic() - started
    assert (first["live"].value, first["live"].status) == (11, Status.Good)
    assert (first["dead"].value, first["dead"].status) == (None, Status.BadTimeout)
    assert second["dead"].status == Status.BadTimeout
    assert (third["live"].status, third["dead"].status) == (Status.Good, Status.BadNoCommunication)
    assert d.requests_sent == sent + 1  # the demoted unit is not asked
    assert elapsed < d.timeout_s  # no timeout spent on the demoted unit
    assert d.units.demoted() == [2]
    assert [(e["event"], e["unit_id"]) for e in logs if e["log_level"] == "warning"] == [("modbus_unit_unreachable", 2)]
    assert d.state is LinkState.CONNECTED
    await d.close()


async def test_demoted_unit_is_probed_again_and_recovery_is_logged_once(two_units: MiniServer) -> None:
    two_units.units[2].silent = True
    d = gateway_driver(two_units.port, demote_after=1, demote_for_s=0.3)
    await d.connect()
    pts = [pt("live", "hr:0", unit_id=1), pt("dead", "hr:1", unit_id=2)]
    with capture_logs() as logs:
        await read_all(d, pts)  # unit 2 misses once: demoted
        assert by_name(await read_all(d, pts))["dead"].status == Status.BadNoCommunication
        two_units.units[2].silent = False
        two_units.units[2].hr[1] = 7
        await asyncio.sleep(0.35)
        samples = by_name(await read_all(d, pts))
        await read_all(d, pts)
    assert (samples["dead"].value, samples["dead"].status) == (7, Status.Good)
    events = [(e["event"], e.get("unit_id")) for e in logs]
    assert events == [("modbus_unit_unreachable", 2), ("modbus_unit_recovered", 2)]
    await d.close()


async def test_no_unit_answering_for_reopen_after_cycles_is_a_lost_link(two_units: MiniServer) -> None:
    """When no unit on the connection answers in reopen_after poll cycles in a row, read raises
    DriverUnavailable (the supervisor reconnects); the cycles before keep the link up."""
    two_units.units[1].silent = two_units.units[2].silent = True
    d = gateway_driver(two_units.port, timeout_s=0.05, retries=0, reopen_after=3)
    await d.connect()
    pts = [pt("a", "hr:0", unit_id=1), pt("b", "hr:0", unit_id=2)]
    for _ in range(2):
        samples = await read_all(d, pts)
        assert [s.status for s in samples] == [Status.BadTimeout, Status.BadTimeout]
        assert d.state is LinkState.CONNECTED
    with pytest.raises(DriverUnavailable, match=r"no unit answered in 3 poll cycles \(unit 1, 2\)"):
        await read_all(d, pts)
    assert d.state is LinkState.DISCONNECTED
    await d.close()


async def test_one_lost_answer_of_the_only_unit_does_not_drop_the_link(free_port: int) -> None:
    """A single unit whose answer is lost once (even with no re-sends) is a miss, not a dead link."""
    async with MiniServer(free_port, {1: Unit(drop=1)}) as server:
        server.units[1].hr[0] = 9
        d = gateway_driver(free_port, timeout_s=0.05, retries=0)
        await d.connect()
        assert (await read_all(d, [pt("a", "hr:0")]))[0].status == Status.BadTimeout
        assert d.state is LinkState.CONNECTED
        assert (await read_all(d, [pt("a", "hr:0")]))[0].value == 9
        await d.close()


async def test_a_miss_does_not_starve_the_units_other_blocks(free_port: int) -> None:
    """The first block of a unit is lost once: its other blocks are still read in that cycle."""
    async with MiniServer(free_port, {1: Unit(drop=1)}) as server:
        server.units[1].hr[0], server.units[1].hr[500] = 1, 2
        d = gateway_driver(free_port, timeout_s=0.05, retries=0)
        await d.connect()
        first, second = await read_all(d, [pt("a", "hr:0"), pt("b", "hr:500")])
        assert (first.status, second.status, second.value) == (Status.BadTimeout, Status.Good, 2)
        await d.close()


async def test_a_suspect_unit_is_asked_once_per_cycle_and_its_skipped_blocks_go_first(free_port: int) -> None:
    """After two misses in a row a unit gets one block per cycle; the blocks it skipped are the
    first asked in the next cycle, so every block gets its turn."""
    async with MiniServer(free_port, {1: Unit()}) as server:
        d = gateway_driver(free_port, timeout_s=0.05, retries=2, demote_after=50, reopen_after=50)
        await d.connect()
        pts = [pt("a", "hr:0"), pt("b", "hr:300"), pt("c", "hr:600")]
        await read_all(d, pts)  # answered: the unit's response time is known, re-sends apply
        server.units[1].silent = True
        sent = d.requests_sent
        await read_all(d, pts)  # a and b missed with re-sends (3 + 3); then the unit is suspect and c is skipped
        assert d.requests_sent - sent == 6
        sent = d.requests_sent
        await read_all(d, pts)  # suspect: only c (skipped last time, so first now), with its re-sends
        assert d.requests_sent - sent == 3
        server.units[1].silent = False
        server.units[1].hr[300], server.units[1].hr[600] = 3, 6
        requests_before = server.units[1].requests
        samples = await read_all(d, pts)  # a and b were skipped: they go first, then c
        assert [s.status for s in samples] == [Status.Good, Status.Good, Status.Good]
        assert server.units[1].requests - requests_before == 3
        await d.close()


async def test_reconnect_forgets_demotions(two_units: MiniServer) -> None:
    two_units.units[2].silent = True
    d = gateway_driver(two_units.port, demote_after=1, demote_for_s=60)
    await d.connect()
    await read_all(d, [pt("a", "hr:0", unit_id=1), pt("b", "hr:0", unit_id=2)])
    assert d.units.demoted() == [2]
    await d.close()
    await d.connect()
    assert d.units.demoted() == []
    await d.close()


async def test_rejected_address_is_isolated_and_the_split_remembered(free_port: int) -> None:
    """ILLEGAL_ADDRESS inside a block: only the rejected point is Bad, logged once; later polls do not re-split."""
    async with MiniServer(free_port, {1: Unit(holes={5})}) as server:
        server.units[1].hr[3:8] = [30, 40, 50, 60, 70]
        d = gateway_driver(free_port)
        await d.connect()
        pts = [pt("a", "hr:3"), pt("bad", "hr:5"), pt("c", "hr:7")]
        with capture_logs() as logs:
            first = by_name(await read_all(d, pts))
            n1 = server.units[1].requests
            second = by_name(await read_all(d, pts))
            n2 = server.units[1].requests - n1
        assert [(first[n].value, first[n].status) for n in ("a", "bad", "c")] == [
            (30, Status.Good), (None, Status.BadConfigurationError), (70, Status.Good)
        ]  # fmt: skip
        assert (second["a"].value, second["c"].value) == (30, 70)
        assert second["bad"].status == Status.BadConfigurationError
        assert n1 == 4  # the block, then one request per point
        assert n2 == 2  # the two good points alone; the rejected one is not asked again
        assert [e["event"] for e in logs] == ["modbus_block_split", "modbus_exception"]
        # a new connection asks the rejected address once more (the device may have been fixed)
        await d.close()
        server.units[1].holes.clear()
        await d.connect()
        assert by_name(await read_all(d, pts))["bad"].value == 50
        await d.close()


async def test_unmapped_gap_read_across_is_isolated(free_port: int) -> None:
    """Two good points whose block reads across an unmapped address both end up Good."""
    async with MiniServer(free_port, {1: Unit(holes={5})}) as server:
        server.units[1].hr[3], server.units[1].hr[7] = 3, 7
        d = gateway_driver(free_port)
        await d.connect()
        samples = await read_all(d, [pt("a", "hr:3"), pt("b", "hr:7")])
        assert [(s.value, s.status) for s in samples] == [(3, Status.Good), (7, Status.Good)]
        n = server.units[1].requests
        await read_all(d, [pt("a", "hr:3"), pt("b", "hr:7")])
        assert server.units[1].requests - n == 2
        await d.close()


async def test_slow_unit_late_reply_is_not_taken_for_the_next_request(free_port: int) -> None:
    """A reply that arrives after the timeout carries an old transaction id and is ignored."""
    async with MiniServer(free_port, {1: Unit(delay_s=0.3), 2: Unit()}) as server:
        server.units[1].hr[0], server.units[2].hr[0] = 111, 222
        d = gateway_driver(free_port, timeout_s=0.2, demote_after=5)
        await d.connect()
        slow, fast = pt("slow", "hr:0", unit_id=1), pt("fast", "hr:0", unit_id=2)
        first = by_name(await read_all(d, [slow, fast]))
        await asyncio.sleep(0.15)  # the late reply to unit 1 lands now
        second = by_name(await read_all(d, [fast]))
        assert first["slow"].status == Status.BadTimeout
        assert (first["fast"].value, second["fast"].value) == (222, 222)
        server.units[1].delay_s = 0.05  # slow but within the timeout
        assert (await read_all(d, [slow]))[0].value == 111
        await d.close()


async def test_retries_resend_after_a_timeout(free_port: int) -> None:
    """A unit that has answered before gets its lost request sent again; one never heard from
    (absent, a wrong unit id) does not: it costs one timeout per cycle."""
    async with MiniServer(free_port, {1: Unit(drop=1)}) as server:
        server.units[1].hr[0] = 5
        d = gateway_driver(free_port, timeout_s=0.1, retries=1)
        await d.connect()
        (s,) = await read_all(d, [pt("a", "hr:0")])
        assert (s.status, d.requests_sent) == (Status.BadTimeout, 1)  # not heard from yet: no re-send
        assert (await read_all(d, [pt("a", "hr:0")]))[0].value == 5
        server.units[1].drop = 1
        (s,) = await read_all(d, [pt("a", "hr:0")])
        assert (s.value, s.status, d.requests_sent) == (5, Status.Good, 4)
        await d.close()


@pytest.mark.parametrize("code", [*sorted(int(c) for c in EXCEPTION_STATUS), 0x0C])
async def test_every_exception_code_over_the_wire(free_port: int, code: int) -> None:
    """Each exception code in a real response reaches the reader and the writer as its mapped status."""
    async with MiniServer(free_port, {1: Unit(exception=code), 2: Unit()}):
        d = gateway_driver(free_port, demote_after=5)  # the gateway codes count as misses: four of them here
        await d.connect()
        samples = by_name(await read_all(d, [pt("x", "hr:0"), pt("y", "coil:0", "bool"), pt("ok", "hr:0", unit_id=2)]))
        assert samples["x"].status == samples["y"].status == exception_status(code)
        assert samples["x"].value is None and samples["ok"].status == Status.Good
        assert await d.write(pt("w", "hr:1", writable=True), 1) == exception_status(code)
        assert await d.write(pt("wc", "coil:1", "bool", writable=True), True) == exception_status(code)
        await d.close()


async def test_range_scaled_write_and_read_back(free_port: int) -> None:
    """raw 0..27648 -> 0..100 %: a write of 50 % puts raw 13824; limits refuse before sending."""
    async with MiniServer(free_port, {1: Unit()}) as server:
        d = gateway_driver(free_port)
        await d.connect()
        p = pt("valve", "hr:10", "int16", raw_low=0, raw_high=27648, eng_low=0, eng_high=100, writable=True, low=0, high=100)
        assert await d.write(p, 50.0) == Status.Good
        assert server.units[1].hr[10] == 13824
        assert (await read_all(d, [p]))[0].value == pytest.approx(50.0)
        n = server.units[1].requests
        assert await d.write(p, 100.5) == Status.BadOutOfRange
        assert await d.write(p, -1) == Status.BadOutOfRange
        assert server.units[1].requests == n and server.units[1].hr[10] == 13824
        await d.close()


async def test_write_to_a_demoted_unit_is_refused_without_sending(two_units: MiniServer) -> None:
    two_units.units[2].silent = True
    d = gateway_driver(two_units.port, demote_after=1, demote_for_s=60)
    await d.connect()
    await read_all(d, [pt("a", "hr:0", unit_id=1), pt("b", "hr:0", unit_id=2)])
    sent = d.requests_sent
    assert await d.write(pt("w", "hr:0", unit_id=2, writable=True), 1) == Status.BadNoCommunication
    assert d.requests_sent == sent
    assert await d.write(pt("w", "hr:0", unit_id=1, writable=True), 1) == Status.Good
    await d.close()
