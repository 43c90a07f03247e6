"""LoginThrottle: the backoff table per user and per address, checks off the event loop."""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from edge.opcua.logins import LoginSettings, LoginThrottle
from edge.opcua.users import Role, UserDirectory, UserEntry, hash_password, parse_password_hash


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def directory() -> UserDirectory:
    return UserDirectory([UserEntry("otto", parse_password_hash(hash_password("right", n=1024)), Role.OPERATOR)])


def test_delay_doubles_per_failure_up_to_the_cap(directory: UserDirectory) -> None:
    t = LoginThrottle(directory, LoginSettings(initial_s=0.25, max_user_s=5.0))
    assert [t.delay(n, 5.0) for n in range(8)] == [0, 0.25, 0.5, 1, 2, 4, 5, 5]
    assert t.delay(10_000, 30.0) == 30.0


def test_failures_push_the_next_attempt_back_and_a_success_clears_them(directory: UserDirectory) -> None:
    clock = Clock()
    t = LoginThrottle(directory, LoginSettings(initial_s=1.0, max_user_s=4.0, max_address_s=8.0, max_wait_s=100), clock=clock)
    assert t.reserve("otto", "10.0.0.1") == 0
    waits = []
    for _ in range(5):
        t.record("otto", "10.0.0.1", ok=False)
        waits.append(t.reserve("otto", "10.0.0.1"))
        clock.t += waits[-1] or 0
    assert waits == [1, 2, 4, 8, 8]  # the address cap (8 s) is above the user cap (4 s)
    # another address waits only for the user's backoff
    assert t.reserve("otto", "10.0.0.2") == pytest.approx(4.0)
    t.record("otto", "10.0.0.1", ok=True)
    clock.t += 100
    assert t.reserve("otto", "10.0.0.1") == 0


def test_attempts_in_parallel_are_served_one_after_the_other(directory: UserDirectory) -> None:
    clock = Clock()
    t = LoginThrottle(directory, LoginSettings(initial_s=1.0, max_user_s=10, max_address_s=10, max_wait_s=5), clock=clock)
    t.record("otto", "a", ok=False)  # next attempt at +1 s, then each waits its turn
    assert [t.reserve("otto", "a") for _ in range(4)] == [1.0, 2.0, 3.0, 4.0]
    assert t.reserve("otto", "a") == 5.0
    assert t.reserve("otto", "a") is None  # beyond max_wait_s: refused without a check


def test_failures_are_forgotten_after_a_quiet_period(directory: UserDirectory) -> None:
    clock = Clock()
    t = LoginThrottle(directory, LoginSettings(initial_s=1.0, forget_after_s=60), clock=clock)
    for _ in range(3):
        t.record("otto", "a", ok=False)
    clock.t += 61
    assert t.reserve("otto", "a") == 0


def test_login_failed_is_logged_once_per_burst_and_counted(directory: UserDirectory) -> None:
    clock = Clock()
    t = LoginThrottle(directory, clock=clock)
    with capture_logs() as logs:
        for _ in range(20):
            t.record("otto", "a", ok=False)
        clock.t += 61
        t.record("otto", "a", ok=False)
    failed = [e for e in logs if e["event"] == "login_failed"]
    assert [e["suppressed"] for e in failed] == [0, 19]
    assert t.failures == 21


async def test_check_runs_scrypt_off_the_loop_and_answers_take_once(directory: UserDirectory) -> None:
    t = LoginThrottle(directory, LoginSettings(initial_s=0.01))
    session = object()
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - t0 - 0.002)

    tick = asyncio.create_task(ticker(), name="ticker")
    try:
        await asyncio.gather(*(t.check(session, "otto", f"wrong{i}", "a") for i in range(4)), t.check(session, "otto", "right", "b"))
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
    assert t.take(session, "otto", "right") == (True, directory.authenticate("otto", "right"))
    assert t.take(session, "otto", "right") == (False, None)
    assert t.take(session, "otto", "wrong0") == (True, None)
    t.forget(session)
    assert t.take(session, "otto", "wrong1") == (False, None)
    assert lags and max(lags) < 0.05
