"""The read plans of one bus, cached per points tuple (pure; no I/O).

The supervisor passes the same points tuple object every cycle for a scan group, so a plan is made
once and found again by identity (no hashing of thousands of points per poll). Points of a block
the device refused as a whole are read alone from then on (``read_alone``), which forgets every
cached plan.
"""

from __future__ import annotations

from drivers.modbus.address import RegisterPoint
from drivers.modbus.plan import ReadRequest, plan_reads, split

Points = tuple[RegisterPoint, ...]
Plan = tuple[list[ReadRequest], Points]  # the requests, and the planned point for each position


class PlanCache:
    """Plans for ``plan_reads`` limits; at most *size* distinct points tuples are kept."""

    def __init__(self, *, max_registers: int, max_bits: int, max_gap: int, size: int = 32) -> None:
        self.max_registers = max_registers
        self.max_bits = max_bits
        self.max_gap = max_gap
        self.size = size
        self._plans: dict[Points, Plan] = {}
        self._last: tuple[Points, Plan] | None = None
        self._solo: set[RegisterPoint] = set()  # points of blocks that had to be split: read alone

    def plan(self, key: Points) -> Plan:
        """The requests that read *key*, and for each position of *key* the point object the
        requests carry (``plan_reads`` keeps the first of equal points)."""
        last = self._last
        if last is not None and last[0] is key:
            return last[1]
        cached = self._plans.get(key)
        if cached is not None:
            self._last = (key, cached)
            return cached
        requests: list[ReadRequest] = []
        for req in plan_reads(key, max_registers=self.max_registers, max_bits=self.max_bits, max_gap=self.max_gap):
            if not self._solo.isdisjoint(req.points):
                requests.extend(split(req))
            else:
                requests.append(req)
        first: dict[RegisterPoint, RegisterPoint] = {}
        planned = tuple(first.setdefault(p, p) for p in key)
        if len(self._plans) >= self.size:
            self.forget()
        plan = self._plans[key] = (requests, planned)
        self._last = (key, plan)
        return plan

    def read_alone(self, points: tuple[RegisterPoint, ...]) -> None:
        """From now on read each of *points* in a request of its own."""
        self._solo.update(points)
        self.forget()

    def forget(self) -> None:
        """Drop every cached plan (they are made again on the next read)."""
        self._plans.clear()
        self._last = None
