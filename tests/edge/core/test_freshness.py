"""FreshnessWatch: which Good values are older than their limit, and when the next one expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drivers.sample import Status, TagSample
from edge.core.freshness import FreshnessWatch

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def s(key: str, age_s: float, status: int = Status.Good) -> TagSample:
    t = NOW - timedelta(seconds=age_s)
    return TagSample(key, 1.0, status, t, t)


@pytest.mark.parametrize(
    ("samples", "limits", "expired", "next_in_s"),
    [
        ([s("a", 0.5)], {"a": 1.0}, [], 0.5),
        ([s("a", 1.0)], {"a": 1.0}, ["a"], None),  # exactly at the limit: no longer Good
        ([s("a", 2.0, Status.UncertainNoCommunicationLastUsableValue)], {"a": 1.0}, [], None),  # already not Good
        ([s("a", 0.2), s("b", 0.9), s("c", 5.0)], {"a": 1.0, "b": 1.0, "c": 1.0}, ["c"], 0.1),
        ([s("fast", 0.3), s("slow", 0.3)], {"fast": 0.5, "slow": 10.0}, [], 0.2),  # per-key limits
        ([s("a", 0.3, Status.BadTimeout)], {"a": 1.0}, [], None),
    ],
)
def test_expired_and_next_due(samples: list[TagSample], limits: dict[str, float], expired: list[str], next_in_s: float | None) -> None:
    latest = {x.tag: x for x in samples}
    out, next_due = FreshnessWatch(limits).expired(latest.__getitem__, NOW)
    assert out == expired
    if next_in_s is None:
        assert next_due is None
    else:
        assert next_due is not None and (next_due - NOW).total_seconds() == pytest.approx(next_in_s)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="a: the age limit must be > 0"):
        FreshnessWatch({"a": 0.0})
