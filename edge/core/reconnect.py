"""When to try a lost device again (pure; the supervisor owns the sleeping and the probing).

Backoff alone is a bad trade after a long outage: it has grown to ``backoff_max_s`` (30 s), so a
PLC that is back waits up to half a minute for the gateway. Two rules bound the recovery time:

* **Recently healthy.** For ``recent_s`` after a device that was delivering data went down, the
  delay is capped at ``recent_cap_s``: most outages are a restart or a cable pulled for a moment.
* **Probe.** While waiting, a driver that can check cheaply whether the device accepts connections
  (``probe()``: a TCP connect, nothing sent) is asked every ``probe_interval_s``. When the port goes
  from closed to open, the wait ends at once. A port that is open all along (a device that accepts
  and then does not answer, or refuses the session) does not end the wait, so such a device is
  retried at the backoff's pace, not in a storm.
"""

from __future__ import annotations

from edge.core.backoff import Backoff

RECENT_S = 60.0
RECENT_CAP_S = 1.0
PROBE_INTERVAL_S = 0.5


class ReconnectPolicy:
    """Delays between connection attempts, and whether a probe result ends the wait."""

    def __init__(self, backoff: Backoff, *, recent_s: float = RECENT_S, recent_cap_s: float = RECENT_CAP_S) -> None:
        self.backoff = backoff
        self.recent_s = recent_s
        self.recent_cap_s = recent_cap_s
        self._healthy_until: float | None = None  # monotonic time the last healthy period ended
        self._port_closed = False  # the port was last seen refusing connections
        self._after_probe = False  # the current connection attempt was made because a probe found the port open

    def on_data(self) -> None:
        """The device delivered data: it is healthy, the backoff starts afresh."""
        self.backoff.reset()
        self._healthy_until = None
        self._after_probe = False

    def on_outage(self, now: float, *, healthy_before: bool, connect_failed: bool) -> None:
        """The device was lost at *now* (or could not be connected: *connect_failed*)."""
        if healthy_before:
            self._healthy_until = now
        # a failed connect means a closed port, unless a probe had just found it open: then the
        # port answers but the device does not serve, and only a closed-to-open change counts
        self._port_closed = connect_failed and not self._after_probe
        self._after_probe = False

    def next_delay(self, now: float) -> float:
        delay = self.backoff.next_delay()
        if self._healthy_until is not None and now - self._healthy_until < self.recent_s:
            delay = min(delay, self.recent_cap_s)
        return delay

    def probe_result(self, open_: bool) -> bool:
        """Record a probe; True if the wait should end now (the port went from closed to open)."""
        if not open_:
            self._port_closed = True
            return False
        if self._port_closed:
            self._port_closed = False
            self._after_probe = True
            return True
        return False
