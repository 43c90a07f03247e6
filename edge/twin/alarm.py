"""The asset's anomaly alarm, and the identified models' part in the asset's score (pure NumPy).

``AssetAlarms`` turns each asset's AnomalyScore (the largest of its signals') into its Alarm:

* **on** when the score rises above ``alarm_threshold``;
* **held** for at least ``MIN_HOLD_S``, and while the score stays above ``ALARM_RELEASE`` times
  the threshold (hysteresis);
* **held while a culprit stays away**: the signals whose score raised the alarm (signals without
  an identified model) remember their level (the median reading, else estimate, over the
  ``LOOKBACK_S`` before the onset); while such a signal's level (median of its last ``RECENT``
  readings) stays more than ``K_BACK`` measurement sigmas from it (a slow fault such as bearing wear keeps it moving away), the fault is still there;
  a culprit counts as back only once it has been away (until then its score counts as any other)
  (its Kalman filter adapts to a failed sensor's value within seconds, and its score falls) and the
  alarm holds, up to ``MAX_LATCH_S`` after the onset;
* **released** once every culprit is back near its reference and no other signal scores: the
  jump back to normal is not scored, nor, after the release, the decaying score of that jump
  (the return to normal never raises or extends an alarm), so the alarm releases within seconds
  of the condition clearing.

``ModelLinks`` connects each identified model to its signal's Kalman channel and its asset: the
model's score (its one-step errors: a move the model explains does not score) replaces the
signal's Kalman score once the model is warm, and the model learns only while its asset is out
of alarm (at most ``MAX_LATCH_S`` of it) and its signal is trusted (``set_trusted``, for the
sensor validation).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from edge.config import AssetConfig
from edge.twin.identified import ModelGroup
from edge.twin.kalman import KalmanGroup

ALARM_RELEASE = 0.8  # release below this fraction of alarm_threshold
MIN_HOLD_S = 10.0
MAX_LATCH_S = 900.0
LOOKBACK_S = 10.0
K_BACK = 4.0
RECENT = 5  # rows of the ring whose median is a signal's level now


class AssetAlarms:
    """Alarm state of every asset of a runner; channels in the runner's group order."""

    def __init__(self, assets: Sequence[AssetConfig], groups: Sequence[KalmanGroup], asset_of: np.ndarray, tick_s: float) -> None:
        self.threshold = np.array([a.alarm_threshold for a in assets])
        self.asset_of = asset_of
        self.n_assets = len(assets)
        self.tick_s = tick_s
        sig = {(a.name, s.name): s for a in assets for s in a.signals}
        chans = [c for g in groups for c in g.channels]
        self.sigma = np.array([sig[(c.asset, c.signal)].measurement_noise for c in chans])
        self.uses_ref = np.array([sig[(c.asset, c.signal)].input is None for c in chans], dtype=bool)
        n = len(chans)
        self.on = np.zeros(self.n_assets, dtype=bool)
        self.ticks_on = np.zeros(self.n_assets, dtype=np.int64)
        self.culprit = np.zeros(n, dtype=bool)
        self.ref = np.full(n, np.nan)
        self.recovering = np.zeros(n, dtype=bool)  # culprits back to normal whose score still decays
        self.left = np.zeros(n, dtype=bool)  # culprits that have been away from their reference during this alarm
        self.lookback = max(2, min(200, math.ceil(LOOKBACK_S / tick_s)))
        self._ring = np.full((self.lookback, n), np.nan)
        self._k = 0

    def update(self, value: np.ndarray, any_warm: np.ndarray, score: np.ndarray, estimate: np.ndarray, warm: np.ndarray) -> np.ndarray:
        """The alarm of each asset after this tick (*value*: asset scores; the rest per channel)."""
        L = self.lookback
        self._ring[self._k % L] = estimate
        self._k += 1
        # Noisy readings: the reference is the median of the lookback ring, the level now the
        # median of the last RECENT rows (one noisy reading neither leaves nor comes back).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no reading yet) stay NaN
            oldest = np.nanmedian(self._ring, axis=0)
            recent = np.nanmedian(self._ring[[(self._k - 1 - j) % L for j in range(min(RECENT, L))]], axis=0)
        with np.errstate(invalid="ignore"):
            near = self.culprit & (np.abs(recent - self.ref) <= K_BACK * self.sigma)
        away = self.culprit & ~near
        self.left |= away
        back = near & self.left  # only a culprit that went away can come back (a slow fault has not left yet)
        eff = np.full(self.n_assets, -np.inf)
        sel = warm & ~back
        np.maximum.at(eff, self.asset_of[sel], score[sel])
        away_a = np.bincount(self.asset_of[away], minlength=self.n_assets) > 0
        was = self.on
        held_s = self.ticks_on * self.tick_s
        stay = was & ((eff > ALARM_RELEASE * self.threshold) | (away_a & (held_s < MAX_LATCH_S)) | (held_s < MIN_HOLD_S))
        # A culprit back to normal is not scored until its score has decayed (the return is no anomaly).
        self.recovering &= score > ALARM_RELEASE * self.threshold[self.asset_of]
        fresh = np.full(self.n_assets, -np.inf)
        sel = warm & ~self.recovering
        np.maximum.at(fresh, self.asset_of[sel], score[sel])
        start = ~was & (fresh > self.threshold)
        on = (stay | start) & any_warm
        if start.any():
            new = start[self.asset_of] & on[self.asset_of] & warm & self.uses_ref & (score > self.threshold[self.asset_of])
            self.culprit |= new
            self.ref = np.where(new, np.where(np.isfinite(oldest), oldest, estimate), self.ref)
        off = ~on[self.asset_of]
        self.recovering |= back & off
        self.culprit &= ~off
        self.left &= ~off
        self.ref[off] = np.nan
        self.ticks_on = np.where(on, self.ticks_on + 1, 0)
        self.on = on
        return on


class ModelLinks:
    """Each identified model's Kalman channel and asset: score override and learn mask."""

    def __init__(self, model_groups: Sequence[ModelGroup], groups: Sequence[KalmanGroup], asset_index: dict[str, int]) -> None:
        where = {(c.asset, c.signal): (gi, ki) for gi, g in enumerate(groups) for ki, c in enumerate(g.channels)}
        self.model_groups = list(model_groups)
        self.n_groups = len(groups)
        self._sizes = [len(g.channels) for g in groups]
        self.links = []  # per model group: (kalman group index (m,), kalman channel index (m,))
        self.asset = []  # per model group: asset index of each channel
        self.trusted = []  # per model group: False while a caller says the signal is not trustworthy
        for mg in self.model_groups:
            pairs = [where[(c.asset, c.signal)] for c in mg.channels]
            self.links.append((np.array([p[0] for p in pairs], dtype=np.intp), np.array([p[1] for p in pairs], dtype=np.intp)))
            self.asset.append(np.array([asset_index[c.asset] for c in mg.channels], dtype=np.intp))
            self.trusted.append(np.ones(len(mg.channels), dtype=bool))
        self._index = {(c.asset, c.signal): (j, i) for j, mg in enumerate(self.model_groups) for i, c in enumerate(mg.channels)}

    def set_trusted(self, asset: str, signal: str, trusted: bool) -> None:
        """Let (True) or stop (False) *asset*'s *signal* teaching its identified model; KeyError
        when that signal has no identified model."""
        j, i = self._index[(asset, signal)]
        self.trusted[j][i] = trusted

    def learn(self, j: int, alarms: AssetAlarms) -> np.ndarray:
        """The learn mask of model group *j* for this tick: not while its asset is in alarm (for at
        most MAX_LATCH_S: a change that lasts longer is the new normal) or its signal is untrusted."""
        holding = alarms.on & (alarms.ticks_on * alarms.tick_s < MAX_LATCH_S)
        return ~holding[self.asset[j]] & self.trusted[j]

    def overrides(self) -> list[np.ndarray | None]:
        """Per Kalman group: the model scores replacing the Kalman ones (NaN: keep), or None."""
        out: list[np.ndarray | None] = [None] * self.n_groups
        for mg, (gi, ki) in zip(self.model_groups, self.links):
            score = mg.score
            for g in np.unique(gi).tolist():
                arr = out[g]
                if arr is None:
                    arr = out[g] = np.full(self._sizes[g], np.nan)
                m = gi == g
                arr[ki[m]] = score[m]
        return out
