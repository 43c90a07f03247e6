"""Adaptive request timeout per unit, from the measured response times (pure; no I/O).

A fixed timeout is a bad trade on a lossy link: every lost frame costs the whole timeout, and a
timeout short enough to make losses cheap is too short for a slow device. So each unit keeps a
smoothed response time and its variation (Jacobson/Karels, as TCP does, RFC 6298) and waits

    timeout = clamp(2 * srtt + 4 * rttvar, timeout_min_s, timeout_s)

for an answer. Twice the smoothed time leaves room for a device whose response time varies with
its load; the variation term widens it on a jittery link. ``timeout_s`` stays the upper bound
(and the timeout before anything was measured), ``timeout_min_s`` the lower bound.

From the third timeout in a row on, each timeout doubles the unit's timeout, up to
``MAX_BACKOFF`` times the estimate (and never beyond ``timeout_s``): lost frames are re-sent with
the same short timeout, a device that became a little slower is measured again, and a run of bad
luck on a lossy link cannot escalate to full timeouts. A device that became much slower
misses until it is suspect; the driver then asks it with the full ``timeout_s``, which measures it. An answer to a re-sent request is measured
only if it is slower than the estimate (Karn's rule, relaxed): on a serial line it may be the late
reply to the first attempt, which would make the link look faster than it is.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 1 / 8  # gain of the smoothed response time (RFC 6298)
MAX_BACKOFF = 4.0  # the most the timeouts in a row stretch the adaptive timeout
DOUBLE_AFTER = 3  # timeouts in a row from which each one doubles the next wait
BETA = 1 / 4  # gain of its variation


@dataclass(slots=True)
class _Estimate:
    srtt: float | None = None  # smoothed response time, s
    rttvar: float = 0.0
    backoff: float = 1.0  # factor after timeouts, reset by an answer
    timeouts: int = 0  # timeouts in a row


class ResponseTimer:
    """Response-time estimates and timeouts for the units of one bus.

    With ``adaptive = False`` every request waits ``timeout_s`` (the behaviour of a fixed timeout).
    """

    def __init__(self, *, timeout_s: float, timeout_min_s: float, adaptive: bool = True) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if not 0 < timeout_min_s <= timeout_s:
            raise ValueError(f"timeout_min_s must be in (0, timeout_s={timeout_s:g}], got {timeout_min_s}")
        self.timeout_s = float(timeout_s)
        self.timeout_min_s = float(timeout_min_s)
        self.adaptive = adaptive
        self._units: dict[int, _Estimate] = {}

    def _get(self, unit_id: int) -> _Estimate:
        est = self._units.get(unit_id)
        if est is None:
            est = self._units[unit_id] = _Estimate()
        return est

    def timeout(self, unit_id: int) -> float:
        """Seconds to wait for the next answer of *unit_id*."""
        if not self.adaptive:
            return self.timeout_s
        est = self._get(unit_id)
        if est.srtt is None:
            return self.timeout_s
        base = 2.0 * est.srtt + 4.0 * est.rttvar
        return min(self.timeout_s, max(self.timeout_min_s, base) * est.backoff)

    def answered(self, unit_id: int, elapsed_s: float, *, first_attempt: bool) -> None:
        """An answer of *unit_id* arrived *elapsed_s* after its request was sent."""
        est = self._get(unit_id)
        est.backoff, est.timeouts = 1.0, 0
        if elapsed_s < 0 or (not first_attempt and (est.srtt is None or elapsed_s <= est.srtt)):
            return
        if est.srtt is None:
            est.srtt, est.rttvar = elapsed_s, elapsed_s / 2
        else:
            est.rttvar = (1 - BETA) * est.rttvar + BETA * abs(est.srtt - elapsed_s)
            est.srtt = (1 - ALPHA) * est.srtt + ALPHA * elapsed_s

    def timed_out(self, unit_id: int) -> None:
        """A request to *unit_id* got no answer within its timeout: from the third one in a row, wait
        twice as long next time."""
        est = self._get(unit_id)
        est.timeouts += 1
        if est.srtt is not None and est.timeouts >= DOUBLE_AFTER:
            est.backoff = min(est.backoff * 2.0, MAX_BACKOFF)

    def srtt(self, unit_id: int) -> float | None:
        """The smoothed response time of *unit_id* in seconds, None before its first answer."""
        est = self._units.get(unit_id)
        return None if est is None else est.srtt

    def reset_backoff(self) -> None:
        """Forget the timeouts' doubling (a new connection); the measured times are kept."""
        for est in self._units.values():
            est.backoff = 1.0
