"""ResponseTimer: the adaptive per-unit timeout (RFC 6298 estimator, bounded by the config)."""

from __future__ import annotations

import pytest

from drivers.modbus.rtt import MAX_BACKOFF, ResponseTimer


def test_before_any_answer_the_timeout_is_timeout_s() -> None:
    assert ResponseTimer(timeout_s=1.0, timeout_min_s=0.05).timeout(1) == 1.0


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([0.001], 0.05),  # 2*0.001 + 4*0.0005 = 0.004: the lower bound
        ([0.1], 0.4),  # 2*0.1 + 4*0.05
        ([0.3] * 50, 0.6),  # steady: the variation decays, twice the response time stays
        ([2.0], 1.0),  # the upper bound
    ],
)
def test_timeout_follows_the_measured_response_time_within_bounds(samples: list[float], expected: float) -> None:
    t = ResponseTimer(timeout_s=1.0, timeout_min_s=0.05)
    for s in samples:
        t.answered(1, s, first_attempt=True)
    assert t.timeout(1) == pytest.approx(expected, rel=0.02)
    assert t.timeout(2) == 1.0  # units are measured separately


def test_timeouts_stretch_from_the_third_in_a_row_up_to_max_backoff_and_an_answer_resets() -> None:
    t = ResponseTimer(timeout_s=10.0, timeout_min_s=0.05)
    t.answered(1, 0.001, first_attempt=True)
    seen = []
    for _ in range(6):
        seen.append(t.timeout(1))
        t.timed_out(1)
    assert seen == pytest.approx([0.05, 0.05, 0.05, 0.1, 0.05 * MAX_BACKOFF, 0.05 * MAX_BACKOFF])
    t.answered(1, 0.001, first_attempt=False)
    assert t.timeout(1) == pytest.approx(0.05)


def test_a_re_sent_request_is_measured_only_when_slower_than_the_estimate() -> None:
    t = ResponseTimer(timeout_s=5.0, timeout_min_s=0.01)
    t.answered(1, 0.1, first_attempt=True)
    t.answered(1, 0.001, first_attempt=False)  # maybe the late reply to the first try: ignored
    assert t.srtt(1) == pytest.approx(0.1)
    t.answered(1, 0.9, first_attempt=False)  # the device became slower: measured
    assert t.srtt(1) > 0.1 and t.timeout(1) > 0.9


def test_fixed_timeout_when_not_adaptive_and_bounds_checked() -> None:
    t = ResponseTimer(timeout_s=0.7, timeout_min_s=0.05, adaptive=False)
    t.answered(1, 0.001, first_attempt=True)
    assert t.timeout(1) == 0.7
    with pytest.raises(ValueError, match="timeout_min_s"):
        ResponseTimer(timeout_s=0.5, timeout_min_s=0.6)
