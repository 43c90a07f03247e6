"""Capped exponential backoff with jitter (pure; the supervisor owns the sleeping)."""

from __future__ import annotations

import random


class Backoff:
    """``next_delay()`` doubles from *initial_s* up to *max_s*; jitter spreads reconnect storms."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, *, jitter: float = 0.2, rng: random.Random | None = None):
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got initial_s={initial_s}, max_s={max_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * (2 ** min(self._attempt, 62)))
        self._attempt += 1
        return base * (1.0 + self.jitter * (2.0 * self._rng.random() - 1.0))

    def reset(self) -> None:
        self._attempt = 0
