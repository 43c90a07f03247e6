"""BurstLimiter: log once per burst, count the rest, bounded keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core.ratelimit import BurstLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_first_event_passes_repeats_are_counted_and_reported_after_the_window() -> None:
    clock = Clock()
    lim = BurstLimiter(10.0, clock=clock)
    assert lim.allow("peer") == 0
    assert [lim.allow("peer") for _ in range(5)] == [None] * 5
    assert lim.pending("peer") == 5 and lim.suppressed_total == 5
    clock.t = 10.0
    assert lim.allow("peer") == 5
    assert lim.allow("peer") is None
    assert lim.allow("other") == 0


def test_keys_are_bounded_least_recently_seen_forgotten_first() -> None:
    lim = BurstLimiter(10.0, max_keys=3, clock=Clock())
    for k in "abc":
        lim.allow(k)
    lim.allow("a")  # a is now the most recent
    lim.allow("d")  # b goes
    assert len(lim) == 3
    assert lim.allow("b") == 0  # forgotten: seen as new
    assert lim.allow("a") is None


@pytest.mark.parametrize(("window", "keys"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_settings_are_refused(window: float, keys: int) -> None:
    with pytest.raises(ValueError):
        BurstLimiter(window, max_keys=keys)


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.floats(0, 5)), max_size=200))
def test_every_event_is_either_let_through_or_counted_once(events: list[tuple[str, float]]) -> None:
    clock = Clock()
    lim = BurstLimiter(3.0, clock=clock)
    passed = reported = 0
    for key, dt in events:
        clock.t += dt
        n = lim.allow(key)
        if n is not None:
            passed += 1
            reported += n
    pending = sum(lim.pending(k) for k in "abcde")
    assert passed + reported + pending == len(events)
    assert lim.suppressed_total == reported + pending
