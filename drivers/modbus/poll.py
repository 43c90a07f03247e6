"""One poll cycle over a lossy Modbus bus: which blocks are asked, in which order, and what a miss means.

``BusPoller`` keeps what the scheduling learns during one connection and forgets it on the next
(``reset``):

* the spans the device refused with an exception response (asked again only after a reconnect);
  ILLEGAL_ADDRESS or ILLEGAL_VALUE to a block of several points splits the block into one
  request per point (``PlanCache.read_alone``), so only the point the device rejects is Bad;
* the blocks a suspect unit skipped in the last cycle, read first in the next one;
* how many poll cycles in a row no unit answered: after ``reopen_after`` of them the bus counts
  as down (a dead or half-open transport).

A unit that misses two requests in a row is *suspect*: one block per cycle, the last re-send
waiting ``timeout_s``. A unit never heard from gets one try. Unit demotion and recovery are
``drivers.modbus.units``; re-sends and adaptive timeouts ``drivers.modbus.exchange`` and
``drivers.modbus.rtt``. The poller sends through the exchange it is given and never touches the
link: a failure that leaves the link unusable is raised as ``LinkLost`` for the driver to close it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from structlog.typing import FilteringBoundLogger

from drivers.modbus.address import Area, RegisterPoint
from drivers.modbus.calls import fill, read_call
from drivers.modbus.exchange import Exchange, TransportError
from drivers.modbus.outcome import Outcome, Reason, decode_request
from drivers.modbus.plan import ReadRequest, split
from drivers.modbus.plan_cache import PlanCache, Points
from drivers.modbus.rtt import ResponseTimer
from drivers.modbus.status import ISOLATE_CODES, NO_ANSWER_CODES, TransportFailure, exception_name, exception_status, transport_status
from drivers.modbus.units import UnitTracker
from drivers.sample import Status, utcnow

Span = tuple[int, Area, int, int]  # unit id, area, address, count
Emit = Callable[[Sequence[RegisterPoint]], None]
# failures of one exchange that leave the link usable: the unit missed this request
MISS_FAILURES = frozenset({TransportFailure.TIMEOUT, TransportFailure.PROTOCOL_ERROR})


def span(req: ReadRequest) -> Span:
    return (req.unit_id, req.area, req.start, req.count)


class LinkLost(Exception):
    """The transport failed (or the whole bus stayed silent): the driver closes the link."""

    def __init__(self, failure: TransportFailure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure


class BusPoller:
    """The poll cycles of one bus; the driver calls ``cycle`` under its bus lock."""

    def __init__(
        self,
        *,
        wire: Exchange,
        timer: ResponseTimer,
        units: UnitTracker,
        plans: PlanCache,
        log: FilteringBoundLogger,
        timeout_s: float,
        retries: int,
        reopen_after: int,
    ) -> None:
        self._wire = wire
        self.timer = timer
        self.units = units
        self._plans = plans
        self._log = log
        self.timeout_s = timeout_s
        self.retries = retries
        self.reopen_after = reopen_after
        self._rejected: dict[Span, tuple[Status, str]] = {}  # spans the device refused, until reconnect
        self._starved: set[Span] = set()  # blocks skipped in the last cycle: read first in the next one
        self._silent_cycles = 0  # poll cycles in a row in which no unit answered

    def reset(self) -> None:
        """A new connection: every unit is asked again, refused spans included."""
        self.units.reset()
        self.timer.reset_backoff()
        self._silent_cycles = 0
        self._starved.clear()
        if self._rejected:  # ask the device again once per connection: it may have been reconfigured
            self._rejected.clear()
            self._plans.forget()

    async def cycle(self, client: Any, key: Points, results: dict[int, Outcome], emit: Emit | None) -> Points:
        """One poll cycle over the plan of *key*, filling *results*; *emit* after each request.

        Raises LinkLost when the transport fails or no unit answered in ``reopen_after`` cycles.
        """
        requests, planned = self._plans.plan(key)
        if self._starved:  # blocks a suspect unit skipped last time go first
            starved = self._starved
            requests = sorted(requests, key=lambda r: span(r) not in starved)
        skipped: set[Span] = set()
        gave_up: dict[int, Outcome] = {}  # suspect units that missed in this cycle: not asked again
        asked = answered = False
        for req in requests:
            unit_id = req.unit_id
            self.units.seen(unit_id)
            if unit_id in gave_up:
                fill(results, req.points, gave_up[unit_id])
                skipped.add(span(req))
            elif self.units.is_demoted(unit_id):
                asked = True  # a demoted unit counts as silent: a bus of demoted units is down
                status = transport_status(TransportFailure.UNIT_DEMOTED)
                fill(results, req.points, Outcome(None, status, utcnow(), Reason.NO_ANSWER, "unit demoted"))
            elif (rejected := self._rejected.get(span(req))) is not None:  # refused before on this connection
                fill(results, req.points, Outcome(None, rejected[0], utcnow(), Reason.EXCEPTION, rejected[1]))
            else:
                asked = True
                miss = await self._read_block(client, req, results)
                if miss is None:
                    answered = True
                elif self.units.suspect(unit_id):
                    gave_up[unit_id] = miss
            if emit is not None:
                emit(req.points)
        self._starved = skipped
        if answered:
            self._silent_cycles = 0
        elif asked:
            self._silent_cycles += 1
            if self._silent_cycles >= self.reopen_after:
                units = ", ".join(str(u) for u in sorted({r.unit_id for r in requests}))
                cycles = self._silent_cycles
                raise LinkLost(TransportFailure.TIMEOUT, f"timeout: no unit answered in {cycles} poll cycle{'s' * (cycles > 1)} (unit {units})")
        return planned

    async def _read_block(self, client: Any, req: ReadRequest, results: dict[int, Outcome]) -> Outcome | None:
        """Read one block into *results*; return the outcome of a unit that did not answer, or None."""
        try:
            call = read_call(client, req)
            if self.timer.srtt(req.unit_id) is None:  # never heard from (absent, a wrong unit id): one try
                response = await self._wire.send(call, unit_id=req.unit_id, retries=0, timeout_s=self.timeout_s)
            elif self.units.suspect(req.unit_id):  # the last try waits timeout_s: measures a much slower device
                response = await self._wire.send(call, unit_id=req.unit_id, retries=self.retries, last_timeout_s=self.timeout_s)
            else:
                response = await self._wire.send(call, unit_id=req.unit_id, retries=self.retries)
        except TransportError as exc:
            if exc.failure not in MISS_FAILURES:
                raise LinkLost(exc.failure, str(exc)) from None
            self.missed(req.unit_id, str(exc))
            miss = Outcome(None, transport_status(exc.failure), utcnow(), Reason.NO_ANSWER, str(exc))
            fill(results, req.points, miss)
            return miss
        arrived = utcnow()
        if not response.isError():
            self.answered(req.unit_id)
            values = response.bits if req.area.is_bit else response.registers
            for p, out in zip(req.points, decode_request(values, req, arrived)):
                results[id(p)] = out
            return None
        code = getattr(response, "exception_code", -1)
        status, detail = exception_status(code), exception_name(code)
        if code in NO_ANSWER_CODES:
            self.missed(req.unit_id, detail)
            miss = Outcome(None, status, arrived, Reason.NO_ANSWER, detail)
            fill(results, req.points, miss)
            return miss
        self.answered(req.unit_id)
        if code in ISOLATE_CODES:
            parts = split(req)
            if len(parts) > 1:
                return await self._isolate(client, req, parts, results)
            self._rejected[span(req)] = (status, detail)
        fill(results, req.points, Outcome(None, status, arrived, Reason.EXCEPTION, detail))
        return None

    async def _isolate(self, client: Any, req: ReadRequest, parts: list[ReadRequest], results: dict[int, Outcome]) -> Outcome | None:
        self._log.info("modbus_block_split", unit_id=req.unit_id, area=req.area.value, start=req.start, count=req.count, parts=len(parts))
        self._plans.read_alone(req.points)
        for part in parts:
            miss = await self._read_block(client, part, results)
            if miss is not None:
                fill(results, req.points, miss, only_missing=True)
                return miss
        return None

    # -- unit bookkeeping (reads and writes) -------------------------------------------------------

    def answered(self, unit_id: int) -> None:
        if self.units.on_answer(unit_id):
            self._log.info("modbus_unit_recovered", unit_id=unit_id)

    def missed(self, unit_id: int, error: str) -> None:
        if self.units.on_timeout(unit_id):
            self._log.warning("modbus_unit_unreachable", unit_id=unit_id, error=error, demoted_for_s=self.units.demote_for_s)
