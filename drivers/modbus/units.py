"""Per-unit answer tracking on a shared bus: demotion of units that stop answering (pure; no I/O).

Several unit ids share one TCP connection (a gateway) or one serial bus. A unit that does not
answer costs a full timeout on every request, holding the bus while the others wait. So after
``demote_after`` consecutive requests without an answer, the unit is *demoted*: it is not polled
for ``demote_for_s`` seconds, then it gets one request again (a probe). A probe that times out
demotes it again at once; any answer (data or a Modbus exception) restores it.

Two misses in a row make a unit *suspect* (more than a lost frame on a lossy link): the driver
then asks it one block per cycle. Whether the whole link is dead is the driver's call (no unit
answered in ``reopen_after`` cycles), not the tracker's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

SUSPECT_AFTER = 2  # misses in a row after which a unit is no longer taken for a lossy-but-alive one


@dataclass(slots=True)
class _Unit:
    streak: int = 0  # consecutive requests without an answer
    demoted_until: float | None = None
    outage_reported: bool = False  # an outage of this unit was logged; its recovery will be too


class UnitTracker:
    """Answer/timeout bookkeeping for the unit ids of one bus."""

    def __init__(self, *, demote_after: int = 5, demote_for_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if demote_after < 1:
            raise ValueError(f"demote_after must be >= 1, got {demote_after}")
        if not demote_for_s > 0:
            raise ValueError(f"demote_for_s must be > 0, got {demote_for_s}")
        self.demote_after = demote_after
        self.demote_for_s = float(demote_for_s)
        self._clock = clock
        self._units: dict[int, _Unit] = {}

    def _get(self, unit_id: int) -> _Unit:
        return self._units.setdefault(unit_id, _Unit())

    def seen(self, unit_id: int) -> None:
        """Note that *unit_id* is polled on this bus."""
        self._get(unit_id)

    def is_demoted(self, unit_id: int) -> bool:
        """True while *unit_id* must not be polled (its demotion has not expired)."""
        u = self._get(unit_id)
        return u.demoted_until is not None and self._clock() < u.demoted_until

    def on_answer(self, unit_id: int) -> bool:
        """Record an answer; return True if this ends an outage that was reported."""
        u = self._get(unit_id)
        recovered = u.outage_reported
        u.streak, u.demoted_until, u.outage_reported = 0, None, False
        return recovered

    def on_timeout(self, unit_id: int) -> bool:
        """Record a request without an answer; return True if the unit is newly demoted and unreported."""
        u = self._get(unit_id)
        u.streak += 1
        if u.streak < self.demote_after:
            return False
        u.demoted_until = self._clock() + self.demote_for_s
        if u.outage_reported:
            return False
        u.outage_reported = True
        return True

    def failing(self, unit_id: int) -> bool:
        """True if the last request to *unit_id* went unanswered (or it is demoted)."""
        u = self._get(unit_id)
        return u.streak > 0 or self.is_demoted(unit_id)

    def suspect(self, unit_id: int) -> bool:
        """True once *unit_id* missed two requests in a row: more than a lost frame on a lossy link.

        A suspect unit gets one block per poll cycle (the driver skips its other blocks until it
        answers) and the last re-send waits the full timeout, so a unit that went silent costs
        one block's re-sends per cycle until it is demoted.
        """
        u = self._get(unit_id)
        return u.streak >= SUSPECT_AFTER or self.is_demoted(unit_id)

    def demoted(self) -> list[int]:
        """Unit ids demoted right now."""
        return sorted(uid for uid in self._units if self.is_demoted(uid))

    def reset(self) -> None:
        """Forget streaks and demotions (a new connection); keep which outages were reported."""
        for u in self._units.values():
            u.streak, u.demoted_until = 0, None
