"""The poll schedule of a scan group: on time, a late slot read at once after an overrun, older
missed slots skipped (never a burst)."""

from __future__ import annotations

import pytest

from edge.core.supervisor import _ScanGroup


@pytest.mark.parametrize(
    ("k", "read_ended_at", "next_due"),
    [
        (0, 0.01, 0.5),  # on time: the next slot
        (1, 0.55, 1.0),  # the read of slot 1 (0.5) ended before slot 2: wait for it
        (1, 1.05, 1.0),  # overran into slot 2: read it at once (due in the past)
        (1, 2.30, 2.0),  # overran by several slots: read the current one at once, skip 1.0 and 1.5
    ],
)
def test_advance(k: int, read_ended_at: float, next_due: float) -> None:
    g = _ScanGroup(0.5, [0])
    g.start, g.k = 0.0, k
    g.advance(read_ended_at)
    assert g.next_due == pytest.approx(next_due)
