"""Live multivariate detector of an asset (``[assets.detector]``): PCA T^2 + Q over its signals.

Each tick it reads the latest value of every signal of the asset. Until ``train_ticks`` ticks with
every signal Good and fresh have been collected, the outputs are BadWaitingForInitialData; then
the PCA model and its control limits are fitted on that window (once; restart to refit), the
window is run through the detector (as the offline replay does) and each later tick is scored by
one ``kernels.PcaDetector`` call. Same features and alarm logic as
``edgetwin replay`` (edge/replay/run.py imports ``pca_features`` from here; the live runtime never
imports the offline replay), so thresholds tuned offline carry over.

Published (registry keys, OPC UA nodes under ``Assets/<asset>/Detector``): ``Score`` (about 1 at
the control limit), ``T2`` and ``Q`` (raw statistics) and ``Alarm`` (on change). A tick is
scored when every input has a new Good value; when some input has no new value the outputs are
held (Good); when an input is not Good they are held with UncertainSubNormal and the next
difference restarts after the gap.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import structlog

import kernels
from drivers.sample import Status, TagSample
from edge.config import AssetConfig
from edge.core.names import detector_key, detector_output_path
from edge.core.registry import TagInfo
from edge.twin.io import gather, sample, severity
from edge.twin.state import DetectorState
from kernels.detect import PcaModel

log = structlog.get_logger("edge.twin.detector")

GOOD = int(Status.Good)
UNCERTAIN = int(Status.UncertainSubNormal)
BAD_WAITING = int(Status.BadWaitingForInitialData)


def detector_infos(asset: AssetConfig) -> list[TagInfo]:
    """Registry entries of an asset's detector (none when it has no ``detector`` section)."""
    if asset.detector is None:
        return []
    a, d = asset.name, asset.detector
    rows = (  # (output, data type, units, description)
        ("score", "float64", "1", "PCA T2/Q score, 1 at the control limit"),
        ("t2", "float64", "1", "Hotelling T2 of the current sample"),
        ("q", "float64", "1", "Q (squared prediction error) of the current sample"),
        ("alarm", "bool", None, f"score above {d.on:g}, released below {d.on * d.release:g}"),
    )
    return [TagInfo(detector_key(a, o), detector_output_path(a, o), dtype, units, description=text) for o, dtype, units, text in rows]


class AssetDetector:
    """The detector of one asset: training window, then one kernel call per tick."""

    def __init__(self, asset: AssetConfig) -> None:
        if asset.detector is None:
            raise ValueError(f"asset {asset.name!r} has no detector section")
        self.asset = asset.name
        self.cfg = asset.detector
        self.tags = [s.tag for s in asset.signals]
        names = [s.name for s in asset.signals]
        self._rate_only = tuple(names.index(r) for r in self.cfg.rate_only)
        self._last_source: list[datetime | None] = [None] * len(self.tags)
        self._prev: np.ndarray | None = None  # previous complete row, for the differences
        self._train: list[np.ndarray] = []
        self.detector: kernels.PcaDetector | None = None
        self._keys = [detector_key(asset.name, k) for k in ("score", "t2", "q", "alarm")]
        self._last: tuple[float, float, float] = (np.nan, np.nan, np.nan)
        self._alarm_published: tuple[bool | None, int] | None = None

    @property
    def training_left(self) -> int:
        return 0 if self.detector is not None else self.cfg.train_ticks - len(self._train)

    @property
    def n_features(self) -> int:
        """Columns of ``pca_features`` for this asset's signals."""
        p, r = len(self.tags), len(self._rate_only)
        return p - r + (p if self.cfg.differences else r)

    # -- saved state (edge.twin.persist) -------------------------------------------------------
    def export_state(self) -> DetectorState | None:
        """The fitted detector, or None while it is still training (the window is not saved)."""
        if self.detector is None:
            return None
        m = self.detector.model
        stat, history, alarm = self.detector.runtime_state()
        return DetectorState(m.mean, m.scale, m.loadings, m.eigvals, m.all_eigvals, m.t2_limit, m.q_limit, stat, history, alarm)

    def import_state(self, st: DetectorState) -> None:
        """Use a saved fitted detector (no training window) with the config's alarm policy and
        smoothing; ValueError (nothing changed) when it does not fit this asset's signals."""
        model = PcaModel(st.mean, st.scale, st.loadings, st.eigvals, st.t2_limit, st.q_limit, st.all_eigvals)
        if model.mean.shape[0] != self.n_features:
            raise ValueError(f"saved detector has {model.mean.shape[0]} features, this asset's signals give {self.n_features}")
        c = self.cfg
        det = kernels.PcaDetector(model, kernels.AlarmPolicy(c.on, c.release, c.k, c.window), c.smoothing)
        det.set_runtime_state(st.stat, st.history & ((1 << c.window) - 1), st.alarm)  # the window may have shrunk
        self.detector = det
        self._train = []
        self._prev = None
        self._last = (np.nan, np.nan, np.nan)

    def _features(self, row: np.ndarray) -> np.ndarray | None:
        """Features of this row, or None on the first row (no difference yet)."""
        prev, self._prev = self._prev, row
        if prev is None:
            return None
        return pca_features(np.vstack([prev, row]), self.cfg.differences, self._rate_only)[1]

    def tick(self, registry, now: datetime) -> list[TagSample]:
        g = gather(registry, self.tags, self._last_source)
        good = bool(np.all(severity(g.status) == 0))
        fresh = good and bool(np.all(g.fresh))
        if not good:
            self._prev = None  # a gap: the next difference would span it
        feats = self._features(g.value) if fresh else None
        if self.detector is None:
            if feats is not None:
                self._train.append(feats)
                if len(self._train) >= self.cfg.train_ticks:
                    self._fit()
            return self._publish(None, BAD_WAITING, now)
        if feats is None and np.isnan(self._last[0]):  # fitted, but nothing scored yet
            return self._publish(None, BAD_WAITING, now)
        if feats is None:  # nothing new (hold, Good) or an input not Good (hold, Uncertain)
            return self._publish(self._last, GOOD if good else UNCERTAIN, now)
        t2, q, score, _ = self.detector.step(feats)
        self._last = (float(score[0]), float(t2[0]), float(q[0]))
        return self._publish(self._last, GOOD, now)

    def _fit(self) -> None:
        c = self.cfg
        try:
            self.detector = kernels.PcaDetector.fit(
                np.array(self._train), kernels.AlarmPolicy(c.on, c.release, c.k, c.window), c.smoothing, c.explained, alpha=c.alpha
            )
        except ValueError as exc:  # keep collecting (the older half is dropped) and try again
            log.error("detector_fit_failed", asset=self.asset, error=str(exc))
            self._train = self._train[len(self._train) // 2 :]
            return
        self.detector.step(np.array(self._train))  # run the window through, as the offline replay does (warms the EWMA)
        self._train = []
        m = self.detector.model
        log.info("detector_fitted", asset=self.asset, components=m.components, t2_limit=round(m.t2_limit, 3), q_limit=round(m.q_limit, 4))

    def _publish(self, values: tuple[float, float, float] | None, status: int, now: datetime) -> list[TagSample]:
        k_score, k_t2, k_q, k_alarm = self._keys
        if values is None:
            out = [sample(k, None, status, now, now) for k in (k_score, k_t2, k_q)]
            alarm: bool | None = None
        else:
            out = [sample(k, v if np.isfinite(v) else None, status, now, now) for k, v in zip((k_score, k_t2, k_q), values)]
            alarm = self.detector is not None and self.detector.alarm
        key = (alarm, status)
        if key != self._alarm_published:
            was = None if self._alarm_published is None else self._alarm_published[0]
            if was is not None and alarm is not None and was != alarm:
                log.warning("detector_alarm" if alarm else "detector_alarm_cleared", asset=self.asset, score=round(self._last[0], 3))
            self._alarm_published = key
            out.append(sample(k_alarm, alarm, status, now, now))
        return out


def pca_features(values: np.ndarray, differences: bool = True, rate_only: tuple[int, ...] = ()) -> np.ndarray:
    """The PCA detector's inputs: levels of the signals not in *rate_only*, then first differences
    (of every signal when *differences*, else of the *rate_only* ones). Causal: row t uses rows t, t-1;
    the first row's difference is 0.

    Slow states (temperatures) drift over hours for reasons that are not faults, so a short
    training window cannot span their range; monitoring their rate of change keeps what a fault
    does to them without alarming on the drift.
    """
    p = values.shape[1]
    levels = [j for j in range(p) if j not in rate_only]
    rates = list(range(p)) if differences else sorted(rate_only)
    d = np.vstack([np.zeros((1, p)), np.diff(values, axis=0)])
    return np.hstack([values[:, levels], d[:, rates]])
