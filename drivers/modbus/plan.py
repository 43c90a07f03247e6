"""Group points into as few Modbus read requests as the device allows (pure; no I/O).

Points are grouped by (unit id, area), sorted by address and coalesced into blocks. A block grows
while the next point starts at most ``max_gap`` unused addresses after the block's end and the
block stays within ``max_registers`` (registers) or ``max_bits`` (coils, discrete inputs).
Overlapping points (``hr:100`` as uint32 and ``hr:100.3`` as a bit) share addresses freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.modbus.address import Area, RegisterPoint
from drivers.modbus.limits import MAX_GAP, MAX_READ_BITS, MAX_READ_REGISTERS


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of ``count`` addresses from ``start`` that serves ``points``."""

    unit_id: int
    area: Area
    start: int
    count: int
    points: tuple[RegisterPoint, ...]

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.start + self.count

    def offset_of(self, point: RegisterPoint) -> int:
        """Index of *point*'s first address inside this block's response."""
        return point.address - self.start


def _check_limits(max_registers: int, max_bits: int, max_gap: int) -> None:
    if not 1 <= max_registers <= MAX_READ_REGISTERS:
        raise ValueError(f"max_registers {max_registers} is outside 1..{MAX_READ_REGISTERS}")
    if not 1 <= max_bits <= MAX_READ_BITS:
        raise ValueError(f"max_bits {max_bits} is outside 1..{MAX_READ_BITS}")
    if not 0 <= max_gap <= MAX_GAP:
        raise ValueError(f"max_gap {max_gap} is outside 0..{MAX_GAP}")


def plan_reads(
    points: Iterable[RegisterPoint],
    *,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
    max_gap: int = 10,
) -> list[ReadRequest]:
    """Return read requests that together cover every distinct point exactly once.

    Requests come ordered by (unit id, area, start). Equal points given twice are served once.
    Raises ValueError if a limit is invalid or a single point is wider than the limit of its area
    (call this once at config load to report that early).
    """
    _check_limits(max_registers, max_bits, max_gap)
    groups: dict[tuple[int, Area], list[RegisterPoint]] = {}
    for p in dict.fromkeys(points):  # drops repeats, keeps order
        groups.setdefault((p.unit_id, p.area), []).append(p)

    requests: list[ReadRequest] = []
    for unit_id, area in sorted(groups, key=lambda k: (k[0], k[1].value)):
        limit = max_bits if area.is_bit else max_registers
        members = sorted(groups[(unit_id, area)], key=lambda p: (p.address, p.count))
        block: list[RegisterPoint] = []
        start = end = 0
        for p in members:
            if p.count > limit:
                raise ValueError(f"tag {p.name!r} needs {p.count} {_unit(area)}, more than the limit of {limit}")
            if block and p.address - end <= max_gap and max(end, p.end) - start <= limit:
                block.append(p)
                end = max(end, p.end)
                continue
            if block:
                requests.append(ReadRequest(unit_id, area, start, end - start, tuple(block)))
            block, start, end = [p], p.address, p.end
        if block:
            requests.append(ReadRequest(unit_id, area, start, end - start, tuple(block)))
    return requests


def _unit(area: Area) -> str:
    return "bits" if area.is_bit else "registers"


def split(request: ReadRequest) -> list[ReadRequest]:
    """Split *request* into one request per distinct address span, to isolate points a device rejects.

    Points occupying exactly the same addresses (several bits of one register) stay together.
    A request with a single span comes back unchanged.
    """
    spans: dict[tuple[int, int], list[RegisterPoint]] = {}
    for p in request.points:
        spans.setdefault((p.address, p.count), []).append(p)
    if len(spans) <= 1:
        return [request]
    return [ReadRequest(request.unit_id, request.area, address, count, tuple(pts)) for (address, count), pts in sorted(spans.items())]


def covered(requests: Sequence[ReadRequest]) -> list[RegisterPoint]:
    """Every point served by *requests*, in request order (a helper for checks and tests)."""
    return [p for r in requests for p in r.points]
