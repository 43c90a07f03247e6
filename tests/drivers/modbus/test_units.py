"""UnitTracker: demotion after consecutive misses, probing after demote_for_s, outage/recovery reported once."""

from __future__ import annotations

import pytest

from drivers.modbus.units import UnitTracker


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_demoted_after_n_consecutive_misses_then_probed_and_redemoted() -> None:
    clock = Clock()
    u = UnitTracker(demote_after=3, demote_for_s=10.0, clock=clock)
    assert [u.on_timeout(2) for _ in range(3)] == [False, False, True]  # newly demoted on the 3rd
    assert u.is_demoted(2) and u.demoted() == [2]
    clock.t += 9.9
    assert u.is_demoted(2)
    clock.t += 0.2
    assert not u.is_demoted(2)  # probe allowed
    assert u.on_timeout(2) is False  # demoted again at once, but the outage is not reported twice
    assert u.is_demoted(2)
    assert u.on_answer(2) is True  # recovery of a reported outage
    assert not u.is_demoted(2) and not u.failing(2)
    assert u.on_answer(2) is False


def test_an_answer_resets_the_streak() -> None:
    u = UnitTracker(demote_after=2, demote_for_s=1.0, clock=Clock())
    u.on_timeout(1)
    assert u.on_answer(1) is False  # nothing was reported
    assert u.on_timeout(1) is False and not u.is_demoted(1)


def test_suspect_after_two_misses_in_a_row_until_an_answer() -> None:
    u = UnitTracker(demote_after=5, demote_for_s=1.0, clock=Clock())
    u.on_timeout(1)
    assert not u.suspect(1)
    u.on_timeout(1)
    assert u.suspect(1) and not u.is_demoted(1)
    u.on_answer(1)
    assert not u.suspect(1)


def test_reset_forgets_demotions_but_remembers_reported_outages() -> None:
    u = UnitTracker(demote_after=1, demote_for_s=60.0, clock=Clock())
    assert u.on_timeout(4) is True
    u.reset()
    assert not u.is_demoted(4) and not u.failing(4)
    assert u.on_timeout(4) is False  # still the same outage: not reported again
    assert u.on_answer(4) is True


@pytest.mark.parametrize(("kw", "message"), [({"demote_after": 0}, "demote_after"), ({"demote_for_s": 0}, "demote_for_s")])
def test_settings_are_checked(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UnitTracker(**kw)
