"""The values of synthetic tags at each tick, for many tags at once. Pure: NumPy only.

At tick ``k`` (time ``t = k * interval_s`` since the start), with a tag's amplitude ``A``, period
``P``, offset ``c`` and a phase ``φ`` spread evenly over the tags so that they do not move in step:

* ``sine``: ``c + A sin(2π t / P + φ)``
* ``ramp``: ``c + A frac(t / P + φ / 2π)`` (a saw tooth rising by A each period)
* ``square``: ``c + A`` for the first half of each period, ``c - A`` for the second (a bool: true, false)
* ``counter``: ``c + k`` (from the last written value, if any)
* ``random_walk``: a step of ``N(0, (A/10)²)`` each tick, pulled back towards ``c`` by 1 % of the
  distance, so that it wanders but stays near ``c`` (the pull makes its spread about ``0.7 A``)
* ``constant``: ``c`` (or the last written value)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from drivers.synthetic.settings import SyntheticPoint

CODES = {"sine": 0, "ramp": 1, "square": 2, "counter": 3, "random_walk": 4, "constant": 5}
PULL = 0.01  # random_walk: the share of the distance to the offset taken back each tick

FloatArray = npt.NDArray[np.float64]


class Generator:
    """The state of every tag of one device; ``step()`` advances one tick and returns the values."""

    def __init__(self, points: Sequence[SyntheticPoint], *, seed: int = 0) -> None:
        n = len(points)
        self.code = np.array([CODES[p.pattern] for p in points], dtype=np.int8)
        self.amplitude = np.array([p.amplitude for p in points], dtype=np.float64)
        self.period = np.array([p.period_s for p in points], dtype=np.float64)
        self.offset = np.array([p.offset for p in points], dtype=np.float64)
        self.phase = 2 * np.pi * np.arange(n, dtype=np.float64) / max(n, 1)
        self.state = self.offset.copy()  # counter, random_walk, constant
        self.rng = np.random.default_rng(seed)
        self.k = 0
        self.masks = {name: self.code == c for name, c in CODES.items()}

    def values(self, t: float) -> FloatArray:
        """The values at time *t* (seconds since the start) for the time patterns, and the
        current state for the others (no advance)."""
        out = self.state.copy()
        m = self.masks
        if m["sine"].any():
            s = m["sine"]
            out[s] = self.offset[s] + self.amplitude[s] * np.sin(2 * np.pi * t / self.period[s] + self.phase[s])
        cycle = np.mod(t / self.period + self.phase / (2 * np.pi), 1.0)
        if m["ramp"].any():
            r = m["ramp"]
            out[r] = self.offset[r] + self.amplitude[r] * cycle[r]
        if m["square"].any():
            q = m["square"]
            out[q] = self.offset[q] + np.where(cycle[q] < 0.5, self.amplitude[q], -self.amplitude[q])
        return out

    def step(self, t: float) -> FloatArray:
        """Advance one tick to time *t* and return every tag's value."""
        self.k += 1
        m = self.masks
        if m["counter"].any():
            self.state[m["counter"]] += 1.0
        w = m["random_walk"]
        if w.any():
            noise = self.rng.standard_normal(int(w.sum()))
            self.state[w] += PULL * (self.offset[w] - self.state[w]) + 0.1 * self.amplitude[w] * noise
        return self.values(t)

    def set(self, index: int, value: float) -> None:
        """A written value: where counter, random_walk and constant go on from."""
        self.state[index] = value
