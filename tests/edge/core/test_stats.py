"""The hot-path histogram (edge/core/stats.py) against Prometheus' bucket rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core.stats import DURATION_BUCKETS_S, Histogram


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(0.0, 0.001), (0.001, 0.001), (0.0011, 0.0025), (0.5, 0.5), (9.99, 10.0), (10.0, 10.0), (10.5, math.inf), (math.inf, math.inf)],
)
def test_a_value_falls_in_the_first_bucket_whose_bound_it_does_not_exceed(value: float, bucket: float) -> None:
    h = Histogram()
    h.observe(value)
    first = next(bound for bound, n in h.cumulative() if n == 1)
    assert first == bucket


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_cumulative_counts_are_what_a_direct_count_gives(values: list[float]) -> None:
    h = Histogram()
    for v in values:
        h.observe(v)
    assert h.count == len(values) and h.sum == pytest.approx(math.fsum(values))
    for bound, n in h.cumulative():
        assert n == sum(1 for v in values if v <= bound)
    assert h.cumulative()[-1] == (math.inf, len(values))
    assert [b for b, _ in h.cumulative()[:-1]] == list(DURATION_BUCKETS_S)


@pytest.mark.parametrize("bounds", [(), (1.0, 1.0), (2.0, 1.0), (1.0, math.inf), (math.nan,)])
def test_bounds_must_be_finite_and_strictly_ascending(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="strictly ascending"):
        Histogram(bounds)
