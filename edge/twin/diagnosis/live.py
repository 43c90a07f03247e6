"""The live diagnoser of one asset: episodes from the twin's alarm, signatures, the library's answer.

Every tick it takes the latest reading of each of the asset's signals (Good values only; anything
else counts as missing) and, when a validation flag key is known for a signal, that flag. While the
asset is normal the readings go into a ring of ``baseline_s + lookback_s``. An episode starts when
the twin's anomaly alarm rises (or any signal is flagged) and ends ``END_HOLD_S`` after the alarm
and every flag have cleared (an intermittent fault is one episode, not many). Its baseline is
the ring minus the last ``lookback_s`` (the onset is usually a little before the alarm), and its
samples are that last ``lookback_s`` plus every tick since. Nothing seen during an episode enters
the baseline ring.

During an episode the signature is matched against the library once per ``DIAGNOSE_EVERY_S`` and
``Assets/<asset>/Diagnosis`` is published when the answer changes: Fault (pattern, ``unknown``),
Confidence, Contributors, Action, RunnerUp, RunnerUpConfidence. Outside an episode Fault, Action
and the others are empty (Good). The library file is re-read when it changes, so a pattern recorded
or removed is used from the next diagnosis on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import structlog

from drivers.sample import Status, TagSample
from edge.core import names
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.diagnosis.library import PatternFile
from edge.twin.diagnosis.match import Diagnosis, diagnose
from edge.twin.diagnosis.pca_contrib import PcaView, signal_contributions
from edge.twin.diagnosis.signature import Baseline, Signature, baseline_stats, episode_features

if TYPE_CHECKING:
    from edge.config import AssetConfig

log = structlog.get_logger("edge.twin.diagnosis")

DIAGNOSE_EVERY_S = 1.0
MAX_EPISODE_S = 3600.0  # the episode keeps its latest hour
MIN_BASELINE = 10  # samples of baseline below which nothing is diagnosed ("unknown")
END_HOLD_S = 30.0  # an episode ends this long after its alarm cleared: bursts of one fault are one episode

NORMAL = Diagnosis("", 0.0, "", "", 0.0, ())


def diagnosis_infos(asset: AssetConfig) -> list[TagInfo]:
    """Registry entries of the asset's Diagnosis folder (none without ``[assets.diagnosis]``)."""
    if asset.diagnosis is None:
        return []
    rows = (  # (output, data type, units, low, high, array, description)
        ("fault", "string", None, None, None, False, "fault pattern of the current episode, 'unknown', or empty when normal"),
        ("confidence", "float64", "1", 0.0, 1.0, False, "similarity of the episode to that pattern (0..1)"),
        ("contributors", "string", None, None, None, True, "signals in order of contribution to the episode"),
        ("action", "string", None, None, None, False, "recommended action of the pattern"),
        ("runner_up", "string", None, None, None, False, "second-best pattern"),
        ("runner_up_confidence", "float64", "1", 0.0, 1.0, False, "similarity of the episode to the runner-up"),
    )
    a = asset.name
    return [
        TagInfo(names.diagnosis_key(a, o), names.diagnosis_output_path(a, o), dtype, units, low, high, text, array=array)
        for o, dtype, units, low, high, array, text in rows
    ]


@dataclass(frozen=True, slots=True)
class Settings:
    """What a diagnoser needs: the signals (names, the tags they read, sensor noise) and the
    ``[assets.diagnosis]`` figures."""

    asset: str
    signals: tuple[str, ...]
    tags: tuple[str, ...]
    noise: tuple[float, ...]
    min_similarity: float
    baseline_s: float
    lookback_s: float

    @classmethod
    def of(cls, asset: AssetConfig) -> Settings:
        if asset.diagnosis is None:
            raise ValueError(f"asset {asset.name!r} has no diagnosis section")
        d = asset.diagnosis
        sigs = asset.signals
        return cls(
            asset.name, tuple(s.name for s in sigs), tuple(s.tag for s in sigs), tuple(float(s.measurement_noise) for s in sigs),
            d.min_similarity, d.baseline_s, d.lookback_s,
        )  # fmt: skip


class AssetDiagnoser:
    def __init__(self, asset: AssetConfig | Settings, tick_s: float, patterns: PatternFile, flag_keys: Mapping[str, str] | None = None) -> None:
        cfg = asset if isinstance(asset, Settings) else Settings.of(asset)
        self.asset = cfg.asset
        self.signals = cfg.signals
        self.tags = cfg.tags
        self.noise = cfg.noise
        self.flag_keys = dict(flag_keys or {})
        self.patterns = patterns
        self.min_similarity = cfg.min_similarity
        self.lookback = max(1, round(cfg.lookback_s / tick_s))
        self.every = max(1, round(DIAGNOSE_EVERY_S / tick_s))
        self._ring: deque[tuple[float, tuple[float, ...], tuple[str, ...]]] = deque(maxlen=max(2, round(cfg.baseline_s / tick_s)) + self.lookback)
        self._baseline: list[tuple[float, tuple[float, ...], tuple[str, ...]]] = []
        self._stats: list[Baseline | None] | None = None  # of the baseline, once per episode
        self._episode: deque[tuple[float, tuple[float, ...], tuple[str, ...]]] = deque(maxlen=max(self.lookback + 1, round(MAX_EPISODE_S / tick_s)))
        self._ticks = 0
        self._quiet = 0  # ticks since the alarm (and every flag) cleared, during an episode
        self.hold = round(END_HOLD_S / tick_s)
        self.in_episode = False
        self.last: Diagnosis = NORMAL
        self.signature: Signature | None = None
        self._published: Diagnosis | None = None
        self._keys = {o: names.diagnosis_key(self.asset, o) for o in names.DIAGNOSIS_OUTPUTS}
        # the asset's fitted PCA detector, when it has one: Contributors then come from its RBC
        self.pca: Callable[[], PcaView | None] | None = None

    def tick(self, registry: TagRegistry, now: datetime, alarm: bool) -> list[TagSample]:
        """One twin tick: the latest readings and flags from *registry*; the samples to publish."""
        values = tuple(_good_value(registry.latest(tag)) for tag in self.tags)
        flags = tuple(_flag(registry, self.flag_keys.get(s)) for s in self.signals)
        self.step(now.timestamp(), values, flags, alarm)
        return self._publish(now)

    def step(self, t: float, values: tuple[float, ...], flags: tuple[str, ...], alarm: bool) -> Diagnosis:
        """One sample (time in s, a reading per signal, NaN when missing; a flag per signal): the
        diagnosis after it. The live tick and the offline replay both come here."""
        row = (t, values, flags)
        active = alarm or any(flags)
        if active:
            self._quiet = 0
        if active and not self.in_episode:
            self._start(row)
        elif self.in_episode:
            self._episode.append(row)
            self._quiet += 0 if active else 1
            if self._quiet > self.hold:
                self._end()
        else:
            self._ring.append(row)
        self._ticks += 1
        if self.in_episode and (self._ticks % self.every == 0 or len(self._episode) == self.lookback + 1):
            self._diagnose()
        return self.last

    def _start(self, row: tuple[float, tuple[float, ...], tuple[str, ...]]) -> None:
        ring = list(self._ring)
        split = max(0, len(ring) - self.lookback)
        self._baseline = ring[:split]
        self._stats = None
        self._episode.clear()
        self._episode.extend(ring[split:])
        self._episode.append(row)
        self.in_episode = True

    def _end(self) -> None:
        if self.last.fault:
            log.info("diagnosis_episode_ended", asset=self.asset, fault=self.last.fault, confidence=round(self.last.confidence, 3))
        self.in_episode = False
        self._baseline = []
        self._episode.clear()
        self.last = NORMAL
        self.signature = None

    def current_signature(self) -> Signature | None:
        """The signature of the episode so far (None outside an episode or without a baseline)."""
        if len(self._baseline) < MIN_BASELINE:
            return None
        if self._stats is None:
            base = np.array([r[1] for r in self._baseline], dtype=float)
            times = np.array([r[0] for r in self._baseline])
            self._stats = [baseline_stats(base[:, i], self.noise[i], times) for i in range(len(self.signals))]
        times = np.array([r[0] for r in self._episode])
        epi = np.array([r[1] for r in self._episode], dtype=float)
        feats = [episode_features(st, epi[:, i], times) for i, st in enumerate(self._stats)]
        flags = []
        for i in range(len(self.signals)):
            seen = [r[2][i] for r in self._episode if r[2][i]]
            flags.append(max(set(seen), key=seen.count) if seen else "")
        return Signature(self.signals, tuple(f[0] for f in feats), tuple(f[1] for f in feats), tuple(f[2] for f in feats), tuple(flags))

    def _diagnose(self) -> None:
        sig = self.current_signature()
        self.signature = sig
        if sig is None:
            new = Diagnosis("unknown", 0.0, "", "", 0.0, ())
        else:
            new = diagnose(sig, self.patterns.current(), self.min_similarity)
            order = self._pca_contributors()
            if order is not None:
                new = replace(new, contributors=order)
        if new.fault != self.last.fault:
            log.warning("fault_diagnosed", asset=self.asset, fault=new.fault, confidence=round(new.confidence, 3), runner_up=new.runner_up,
                        contributors=list(new.contributors[:3]))  # fmt: skip
        self.last = new

    def _pca_contributors(self) -> tuple[str, ...] | None:
        """The signals by their RBC to the PCA detector's index over the episode (None without one)."""
        view = self.pca() if self.pca is not None else None
        if view is None:
            return None
        c = signal_contributions(view, np.array([r[1] for r in self._episode], dtype=float))
        if c is None:
            return None
        return tuple(self.signals[i] for i in sorted(range(len(c)), key=lambda i: -c[i]))

    def _publish(self, now: datetime) -> list[TagSample]:
        d = self.last
        shown = (d.fault, round(d.confidence, 2), d.action, d.runner_up, round(d.runner_up_confidence, 2), d.contributors)
        if self._published is not None and shown == (
            self._published.fault, round(self._published.confidence, 2), self._published.action, self._published.runner_up,
            round(self._published.runner_up_confidence, 2), self._published.contributors,
        ):  # fmt: skip
            return []
        self._published = d
        k, good = self._keys, Status.Good
        return [
            TagSample(k["fault"], d.fault, good, now, now),
            TagSample(k["confidence"], round(d.confidence, 4), good, now, now),
            TagSample(k["contributors"], list(d.contributors), good, now, now),
            TagSample(k["action"], d.action, good, now, now),
            TagSample(k["runner_up"], d.runner_up, good, now, now),
            TagSample(k["runner_up_confidence"], round(d.runner_up_confidence, 4), good, now, now),
        ]


def _good_value(s: TagSample) -> float:
    if s.status != Status.Good or s.value is None or isinstance(s.value, (str, bytes, list)):
        return math.nan
    v = float(s.value)  # type: ignore[arg-type]
    return v if math.isfinite(v) else math.nan


def _flag(registry: TagRegistry, key: str | None) -> str:
    if key is None:
        return ""
    s = registry.latest(key)
    return s.value if isinstance(s.value, str) and s.status == Status.Good else ""


def pattern_file(cfg: object, asset: AssetConfig) -> PatternFile:
    """The library file of *asset* in *cfg*'s state folder, seeded from ``diagnosis.seed``."""
    d = asset.diagnosis
    if d is None:
        raise ValueError(f"asset {asset.name!r} has no diagnosis section")
    seed = cfg.resolve_path(d.seed) if d.seed is not None else None  # type: ignore[attr-defined]
    return PatternFile(cfg.state.patterns_dir / f"{d.library}.json", d.library, seed)  # type: ignore[attr-defined]


def build_diagnosers(
    assets: list[AssetConfig], tick_s: float, registry: TagRegistry, patterns: Callable[[AssetConfig], PatternFile]
) -> list[tuple[int, AssetDiagnoser]]:
    """(asset index, diagnoser) for each asset with ``[assets.diagnosis]``."""
    out = []
    for i, asset in enumerate(assets):
        if asset.diagnosis is None:
            continue
        keys = {sig.name: names.sensor_fault_key(asset.name, sig.name) for sig in asset.signals}
        flags = {s: k for s, k in keys.items() if k in registry}  # when the asset's signals are validated
        out.append((i, AssetDiagnoser(asset, tick_s, patterns(asset), flags)))
    return out
