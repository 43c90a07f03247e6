"""A poll's outcomes as a ReadResult, logging each point's Bad status once and its recovery once
(no I/O besides the log)."""

from __future__ import annotations

from collections.abc import Sequence

from structlog.typing import FilteringBoundLogger

from drivers.base import ReadResult
from drivers.modbus.address import RegisterPoint
from drivers.modbus.outcome import Outcome, Reason
from drivers.modbus.status import NOT_FETCHED
from drivers.sample import Status, TagSample


class PointReporter:
    """Remembers which points were logged Bad, so a point that stays Bad is logged once.

    A point of a unit that does not answer is not logged here: the unit's outage is logged once
    per unit (``modbus_unit_unreachable``), not once per point.
    """

    def __init__(self, log: FilteringBoundLogger) -> None:
        self._log = log
        self._reported: dict[str, Status] = {}  # point name -> Bad status already logged

    def result(self, points: Sequence[RegisterPoint], results: dict[int, Outcome]) -> ReadResult:
        """The ReadResult of *points* from their outcomes (keyed by ``id(point)``): a sample for each
        point that was answered, ``not_fetched`` for the others; Bad statuses and recoveries are
        reported."""
        samples = []
        not_fetched: dict[int, list[str]] = {}
        good, no_answer = Status.Good, Reason.NO_ANSWER
        reported = self._reported
        for p in points:
            out = results[id(p)]
            status = out.status
            if status is good:  # the common case first: a Good outcome is never a missed answer
                samples.append(TagSample(p.name, out.value, good, out.arrived, out.arrived))
                if reported:
                    self.report(p, out)
                continue
            if status in NOT_FETCHED or out.reason is no_answer:
                not_fetched.setdefault(status, []).append(p.name)
            else:
                samples.append(TagSample(p.name, out.value, status, out.arrived, out.arrived))
            self.report(p, out)
        return ReadResult(samples, not_fetched)

    def report(self, point: RegisterPoint, out: Outcome) -> None:
        status = out.status
        if status is Status.Good:
            if self._reported.pop(point.name, None) is not None:
                self._log.info("modbus_point_recovered", tag=point.name)
            return
        if out.reason is Reason.NO_ANSWER or self._reported.get(point.name) == status:
            return
        self._reported[point.name] = status
        self._log.warning(
            out.reason.value if out.reason is not None else "modbus_point_bad",
            tag=point.name,
            status=status.name,
            detail=out.detail,
            unit_id=point.unit_id,
            area=point.area.value,
            address=point.address,
        )
