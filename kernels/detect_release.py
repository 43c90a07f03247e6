"""Peak-relative release: an alarm ends when its score has fallen to a fraction of its peak.

A fault raises the monitor's score far above the control limit; when the fault is removed the
plant often does not return exactly to the state the model knows (a pump re-seated after an
imbalance, a loop topped up after a leak), so the score falls back to a level just above ``on``
and, with plain hysteresis (release below ``release * on``), the alarm holds indefinitely while
nothing is learnt. ``PeakRelease`` ends such an alarm once the score is below ``fraction`` of the
highest score since the alarm came on: the condition that raised it has gone, what is left is
the offset of the new state. The return to normal never raises or extends an alarm (the same
rule as the twin's own alarm, ``edge/twin/alarm.py``):

* while the underlying alarm (the kernel's: ``on``, ``release``, k-of-window) is on and not
  released, the peak follows the score; a score below ``fraction * peak`` releases it;
* once released, the alarm stays off until the score rises above ``max(on, level / release)``
  (``level`` the score at the release: a new rise, not the decay of the old one), which raises it
  again with a new peak, or until the underlying alarm ends (the score fell below
  ``release * on``), which re-arms the plain rule.

``fraction`` 0 turns the rule off (the output is the underlying alarm). Pure Python per row: the
caller passes the scores and the underlying alarms a kernel call produced. Not saved with the
detector state: after a restart the first alarm starts a new peak.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PeakRelease"]


class PeakRelease:
    """Per-row state of the peak-relative release of one alarm (module doc)."""

    def __init__(self, on: float, release: float, fraction: float) -> None:
        if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
            raise ValueError(f"peak_release must be in [0, 1), got {fraction!r}")
        self.on, self.release, self.fraction = float(on), float(release), float(fraction)
        self.peak = 0.0
        self.released = False
        self.level = 0.0
        self.alarm = False
        self.releases = 0  # alarms ended by the rule (a counter for reports)

    def step(self, score: np.ndarray, alarm: np.ndarray) -> np.ndarray:
        """The released alarm of each row, from its smoothed *score* (m,) and underlying *alarm* (m,)."""
        out = np.array(alarm, dtype=bool, copy=True)
        if self.fraction == 0.0:
            self.alarm = bool(out[-1]) if out.size else self.alarm
            return out
        for i in range(out.size):
            x = float(score[i])
            if math.isnan(x):  # a row not scored: the state and the alarm stay as they were
                out[i] = self.alarm
                continue
            if not out[i]:
                self.released, self.peak = False, 0.0
            elif self.released:
                if x > max(self.on, self.level / self.release):
                    self.released, self.peak = False, x
                else:
                    out[i] = False
            else:
                self.peak = max(self.peak, x)
                if x < self.fraction * self.peak:
                    self.released, self.level = True, x
                    self.releases += 1
                    out[i] = False
            self.alarm = bool(out[i])
        return out
