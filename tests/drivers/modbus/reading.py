"""Test helper: a driver read as one sample per point, in order, for table-style assertions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drivers.base import ReadResult
from drivers.sample import TagSample


def per_point(result: ReadResult, points: Sequence[Any]) -> list[TagSample]:
    """One sample per point, in order. A point in ``not_fetched`` shows as a sample with that status,
    no value and no times (None), so assertions can compare statuses position by position."""
    fetched: dict[str, list[TagSample]] = {}
    for s in result.samples:
        fetched.setdefault(s.tag, []).append(s)
    missing = {key: status for status, keys in result.not_fetched.items() for key in keys}
    out = []
    for p in points:
        queue = fetched.get(p.name)
        if queue:
            out.append(queue.pop(0))
        else:
            out.append(TagSample(p.name, None, missing[p.name], None, None))  # type: ignore[arg-type]
    assert not any(fetched.values()), f"samples for points not asked: {fetched}"
    return out


async def read_all(driver: Any, points: Sequence[Any]) -> list[TagSample]:
    """``driver.read(points)`` as one sample per point (see ``per_point``)."""
    return per_point(await driver.read(points), points)
