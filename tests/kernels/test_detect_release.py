"""Peak-relative release (kernels.detect_release) and its place in AdaptivePca."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.detect_release import PeakRelease


def run(scores: list[float], fraction: float, on: float = 1.0, release: float = 0.8) -> list[bool]:
    """The released alarm of a score sequence, the underlying alarm being plain hysteresis."""
    under, a = [], False
    for x in scores:
        a = x > on if not a else not x < release * on
        under.append(a)
    return PeakRelease(on, release, fraction).step(np.array(scores), np.array(under)).tolist()


def test_alarm_ends_once_the_score_is_a_tenth_of_its_peak() -> None:
    """A fault scoring 50 ends; the plant settles slightly off (score 1.5 > on): released at < 5."""
    scores = [0.5, 50.0, 40.0, 20.0, 6.0, 4.0, 1.5, 1.5, 1.5]
    assert run(scores, 0.1) == [False, True, True, True, True, False, False, False, False]
    assert run(scores, 0.0) == [False, True, True, True, True, True, True, True, True]  # plain hysteresis holds


def test_a_new_rise_after_a_release_raises_the_alarm_again() -> None:
    """Released at 4 (level 4 / 0.8 = 5 to re-raise): 4.5 does not, 30 does, with a new peak."""
    scores = [50.0, 4.0, 4.5, 30.0, 20.0, 2.9, 0.5, 1.2]
    assert run(scores, 0.1) == [True, False, False, True, True, False, False, True]


def test_back_to_normal_re_arms_the_plain_rule() -> None:
    """After a release the score falls below release * on: the next exceedance alarms at once."""
    scores = [50.0, 4.0, 0.5, 1.1]
    assert run(scores, 0.1) == [True, False, False, True]


def test_nan_rows_keep_state_and_alarm() -> None:
    rule = PeakRelease(1.0, 0.8, 0.1)
    out = rule.step(np.array([50.0, np.nan, 4.0, np.nan]), np.array([True, True, True, True]))
    assert out.tolist() == [True, True, False, False]


@pytest.mark.parametrize("fraction", [-0.1, 1.0, float("nan")])
def test_bad_fraction_is_an_error(fraction: float) -> None:
    with pytest.raises(ValueError, match="peak_release"):
        PeakRelease(1.0, 0.8, fraction)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=60), st.floats(0.0, 0.9), st.integers(1, 7))
def test_never_adds_an_alarm_and_blocks_equal_rows(scores: list[float], fraction: float, cut: int) -> None:
    """The rule only ends alarms, and a sequence in two blocks gives the rows of one."""
    under = np.array(run(scores, 0.0))
    whole = PeakRelease(1.0, 0.8, fraction).step(np.array(scores), under)
    assert not np.any(whole & ~under)
    rule = PeakRelease(1.0, 0.8, fraction)
    parts = np.concatenate([rule.step(np.array(scores[:cut]), under[:cut]), rule.step(np.array(scores[cut:]), under[cut:])])
    assert parts.tolist() == whole.tolist()
    if fraction == 0.0:
        assert whole.tolist() == under.tolist()


def test_adaptive_pca_reports_the_released_alarm() -> None:
    """A large step that comes back close to (not exactly to) normal: with the rule the alarm ends
    soon after the return; without it, it holds. The guard sees the kernel's alarm either way."""
    rng = np.random.default_rng(3)
    train = rng.normal(size=(400, 4))
    test = rng.normal(size=(300, 4))
    test[50:150] += 30.0  # the fault
    test[150:] += 3.0  # the plant settles off its old state (a score of a few times the limit)
    out = {}
    for fraction in (0.0, 0.1):
        policy, adaptation = kernels.AlarmPolicy(on=1.25, release=0.8), kernels.Adaptation(1800, 60, 10)
        det = kernels.AdaptivePca.fit(train, policy, 0.2, 0.95, var_floor=np.zeros(4), adaptation=adaptation, peak_release=fraction)
        det.step(train, False)
        alarm = det.step(test, True)[3]
        out[fraction] = alarm
        assert det.alarm == bool(alarm[-1])
    assert out[0.0][60:150].all() and out[0.1][60:150].all()  # the fault itself alarms either way
    assert out[0.0][200:].all()  # plain hysteresis holds on the new state
    assert not out[0.1][200:].any()  # the rule releases after the return
