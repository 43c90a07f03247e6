"""Log each point's Bad status once, and its recovery once (no I/O besides the log)."""

from __future__ import annotations

from structlog.typing import FilteringBoundLogger

from drivers.modbus.address import RegisterPoint
from drivers.modbus.outcome import Outcome, Reason
from drivers.sample import Status


class PointReporter:
    """Remembers which points were logged Bad, so a point that stays Bad is logged once.

    A point of a unit that does not answer is not logged here: the unit's outage is logged once
    per unit (``modbus_unit_unreachable``), not once per point.
    """

    def __init__(self, log: FilteringBoundLogger) -> None:
        self._log = log
        self._reported: dict[str, Status] = {}  # point name -> Bad status already logged

    def __bool__(self) -> bool:
        return bool(self._reported)

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
