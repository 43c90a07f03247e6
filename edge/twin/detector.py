"""Live anomaly detector of an asset (``[assets.detector]``): PCA T^2 + Q over its signals, or
EWMA / CUSUM on the twin's innovations.

Each tick it reads the latest value of every input: the asset's signals (``pca``) or their
residuals, the Kalman innovations the twin published (``ewma`` / ``cusum``; read from the registry,
so one tick after the filter made them). Until ``train_ticks`` ticks with every input Good and
fresh have been collected, the outputs are BadWaitingForInitialData; then the detector is fitted on
that window, the window is run through it (as the offline replay does) and each later tick is
scored by one kernel call.

``pca`` adapts to slow normal change (``kernels.AdaptivePca``: exponentially weighted mean and
covariance with memory ``memory`` ticks, refitted every ``refit_every`` learned ticks; a tick is
learned ``delay`` ticks after it was scored, and never when its score exceeded ``on``, the alarm
(this detector's or the asset's) was on, or an input was not Good, each of which also drops the
ticks waiting in the delay buffer). Every feature has a variance floor (``feature_floor``): the
signal's ``measurement_noise`` and ``floor_fraction`` of its tag range, so a signal that did not move
while the detector trained still scores sanely when it does. Same features, floor and adaptation as
``edgetwin replay`` (edge/replay/run.py imports ``pca_features``, ``feature_floor`` and
``fit_pca_detector`` from here; the live runtime never imports the offline replay), so thresholds
tuned offline carry over.

Published (registry keys, OPC UA nodes under ``Assets/<asset>/Detector``): ``Score`` (pca: about 1
at the control limit; ewma / cusum: the largest signal's score, sigma units), ``T2`` and ``Q``
(pca only) and ``Alarm`` (on change). A tick is scored when every input has a new Good value; when
some input has no new value the outputs are held (Good); when an input is not Good they are held
with UncertainSubNormal and the next difference restarts after the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
import structlog

import kernels
from drivers.sample import Status, TagSample
from edge.config import AssetConfig, DetectorConfig
from edge.core.names import asset_output_key, detector_key, detector_output_path, signal_output_key
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.io import gather, sample, severity
from edge.twin.state import AdaptiveState, DetectorState
from kernels.detect import PcaModel, ResidualModel, fit_residual
from kernels.detect_adapt import AdaptiveStats, covariance_of

log = structlog.get_logger("edge.twin.detector")

GOOD = int(Status.Good)
UNCERTAIN = int(Status.UncertainSubNormal)
BAD_WAITING = int(Status.BadWaitingForInitialData)


def detector_infos(asset: AssetConfig) -> list[TagInfo]:
    """Registry entries of an asset's detector (none when it has no ``detector`` section)."""
    if asset.detector is None:
        return []
    a, d = asset.name, asset.detector
    on = d.threshold
    if d.kind == "pca":
        rows: list[tuple[str, str, str | None, str]] = [  # (output, data type, units, description)
            ("score", "float64", "1", "PCA T2/Q score, 1 at the control limit"),
            ("t2", "float64", "1", "Hotelling T2 of the current sample"),
            ("q", "float64", "1", "Q (squared prediction error) of the current sample"),
        ]
    else:
        rows = [("score", "float64", "1", f"largest {d.kind.upper()} score of the signals' innovations, sigma units")]
    rows.append(("alarm", "bool", None, f"score above {on:g}, released below {on * d.release:g}"))
    return [TagInfo(detector_key(a, o), detector_output_path(a, o), dtype, units, description=text) for o, dtype, units, text in rows]


class AssetDetector:
    """The detector of one asset: training window, then one kernel call per tick."""

    def __init__(self, asset: AssetConfig) -> None:
        if asset.detector is None:
            raise ValueError(f"asset {asset.name!r} has no detector section")
        self.asset = asset.name
        self.cfg = asset.detector
        self.kind = self.cfg.kind
        self.signal_tags = [s.tag for s in asset.signals]
        # pca reads the measurements, ewma / cusum the innovations the twin publishes
        self.tags = self.signal_tags if self.kind == "pca" else [signal_output_key(asset.name, s.name, "residual") for s in asset.signals]
        names = [s.name for s in asset.signals]
        self._rate_only = tuple(names.index(r) for r in self.cfg.rate_only)
        self._noise = np.array([s.measurement_noise for s in asset.signals])
        self._asset_alarm = asset_output_key(asset.name, "alarm")
        self._last_source: list[datetime | None] = [None] * len(self.tags)
        self._prev: np.ndarray | None = None  # previous complete row, for the differences
        self._train: list[np.ndarray] = []
        self._train_raw: list[np.ndarray] = []  # pca: the raw rows behind the features (the variance floor)
        self.detector: kernels.AdaptivePca | kernels.ResidualDetector | None = None
        outputs = ("score", "t2", "q") if self.kind == "pca" else ("score",)
        self._keys = [detector_key(asset.name, k) for k in outputs]
        self._alarm_key = detector_key(asset.name, "alarm")
        self._last: tuple[float, ...] = (np.nan,) * len(outputs)
        self._alarm_published: tuple[bool | None, int] | None = None

    @property
    def training_left(self) -> int:
        return 0 if self.detector is not None else self.cfg.train_ticks - len(self._train)

    @property
    def n_features(self) -> int:
        """Columns of ``pca_features`` for this asset's signals (ewma / cusum: one per signal)."""
        p, r = len(self.tags), len(self._rate_only)
        if self.kind != "pca":
            return p
        return p - r + (p if self.cfg.differences else r)

    @property
    def alarm(self) -> bool:
        if self.detector is None:
            return False
        return bool(np.any(self.detector.alarm))

    # -- saved state (edge.twin.persist) -------------------------------------------------------
    def export_state(self) -> DetectorState | None:
        """The fitted PCA detector with its learned statistics, or None while it is still training
        (the window is not saved) or for ewma / cusum (they refit after a restart)."""
        if not isinstance(self.detector, kernels.AdaptivePca):
            return None
        m = self.detector.model
        stat, history, alarm = self.detector.det.runtime_state()
        st = self.detector.stats()
        adaptive = AdaptiveState(st.mean, st.cov, st.count, st.since_refit, self.detector.var_floor.copy())
        return DetectorState(m.mean, m.scale, m.loadings, m.eigvals, m.all_eigvals, m.t2_limit, m.q_limit, stat, history, alarm, adaptive)

    def import_state(self, st: DetectorState) -> None:
        """Use a saved fitted detector (no training window) with the config's alarm policy, smoothing
        and adaptation; ValueError (nothing changed) when it does not fit this asset's signals. A
        state without learned statistics (an older file) restarts them from the model."""
        if self.kind != "pca":
            raise ValueError(f"the saved detector is a PCA detector, this asset's is {self.kind}")
        model = PcaModel(st.mean, st.scale, st.loadings, st.eigvals, st.t2_limit, st.q_limit, st.all_eigvals)
        p = model.mean.shape[0]
        if p != self.n_features:
            raise ValueError(f"saved detector has {p} features, this asset's signals give {self.n_features}")
        c = self.cfg
        det = kernels.PcaDetector(model, kernels.AlarmPolicy(c.threshold, c.release, c.k, c.window), c.smoothing)
        det.set_runtime_state(st.stat, st.history & ((1 << c.window) - 1), st.alarm)  # the window may have shrunk
        if st.adaptive is not None:
            a = st.adaptive
            stats, floor = AdaptiveStats(a.mean, a.cov, a.count, a.since_refit), a.var_floor
        else:
            stats, floor = AdaptiveStats(model.mean, covariance_of(model), c.train_ticks, 0), np.zeros(p)
        adaptation = kernels.Adaptation(c.memory, c.delay, c.refit_every)
        self.detector = kernels.AdaptivePca(det, stats, adaptation, floor, c.explained, alpha=c.alpha, peak_release=c.peak_release)
        self._train, self._train_raw = [], []
        self._prev = None
        self._last = (np.nan,) * len(self._keys)

    def _features(self, row: np.ndarray) -> np.ndarray | None:
        """Features of this row, or None on the first row (no difference yet)."""
        if self.kind != "pca":
            return row
        prev, self._prev = self._prev, row
        if prev is None:
            return None
        return pca_features(np.vstack([prev, row]), self.cfg.differences, self._rate_only)[1]

    def tick(self, registry: TagRegistry, now: datetime) -> list[TagSample]:
        g = gather(registry, self.tags, self._last_source)
        good = bool(np.all(severity(g.status) == 0))
        fresh = good and bool(np.all(g.fresh))
        if not good:
            self._prev = None  # a gap: the next difference would span it
            if isinstance(self.detector, kernels.AdaptivePca):
                self.detector.pending.clear()  # nor are the ticks before it learned
        feats = self._features(g.value) if fresh else None
        if self.detector is None:
            if feats is not None:
                self._train.append(feats)
                self._train_raw.append(g.value)
                if len(self._train) >= self.cfg.train_ticks:
                    self._fit(registry)
            return self._publish(None, BAD_WAITING, now)
        if feats is None and np.isnan(self._last[0]):  # fitted, but nothing scored yet
            return self._publish(None, BAD_WAITING, now)
        if feats is None:  # nothing new (hold, Good) or an input not Good (hold, Uncertain)
            return self._publish(self._last, GOOD if good else UNCERTAIN, now)
        if isinstance(self.detector, kernels.AdaptivePca):
            asset_alarm = registry.latest(self._asset_alarm).value is True  # the twin's own alarm: do not learn either
            t2, q, score, _ = self.detector.step(feats, not asset_alarm)
            self._last = (float(score[0]), float(t2[0]), float(q[0]))
        else:
            scores, _ = self.detector.step(feats)
            self._last = (float(np.max(scores[0])),)
        return self._publish(self._last, GOOD, now)

    def _fit(self, registry: TagRegistry) -> None:
        c = self.cfg
        train = np.array(self._train)
        try:
            if self.kind == "pca":
                floor = feature_floor(
                    np.array(self._train_raw), c.floor_fraction, c.differences, self._rate_only, self._noise, tag_spans(registry, self.signal_tags)
                )
                self.detector = fit_pca_detector(train, c, floor)
            else:
                self.detector = fit_residual_detector(train, c, self._noise)
        except ValueError as exc:  # keep collecting (the older half is dropped) and try again
            log.error("detector_fit_failed", asset=self.asset, error=str(exc))
            self._train = self._train[len(self._train) // 2 :]
            self._train_raw = self._train_raw[len(self._train_raw) // 2 :]
            return
        if isinstance(self.detector, kernels.AdaptivePca):
            self.detector.step(train, False)  # run the window through, as the offline replay does (warms the EWMA; already learned)
            m = self.detector.model
            log.info("detector_fitted", asset=self.asset, kind=self.kind, components=m.components, t2_limit=round(m.t2_limit, 3), q_limit=round(m.q_limit, 4))
        else:
            self.detector.step(train)
            log.info("detector_fitted", asset=self.asset, kind=self.kind, sigma=[float(f"{v:.4g}") for v in self.detector.sigma])
        self._train, self._train_raw = [], []

    def _publish(self, values: tuple[float, ...] | None, status: int, now: datetime) -> list[TagSample]:
        if values is None:
            out = [sample(k, None, status, now, now) for k in self._keys]
            alarm: bool | None = None
        else:
            out = [sample(k, v if np.isfinite(v) else None, status, now, now) for k, v in zip(self._keys, values)]
            alarm = self.alarm
        key = (alarm, status)
        if key != self._alarm_published:
            was = None if self._alarm_published is None else self._alarm_published[0]
            if was is not None and alarm is not None and was != alarm:
                log.warning("detector_alarm" if alarm else "detector_alarm_cleared", asset=self.asset, kind=self.kind, score=round(self._last[0], 3))
            self._alarm_published = key
            out.append(sample(self._alarm_key, alarm, status, now, now))
        return out


def tag_spans(registry: TagRegistry, tags: Sequence[str]) -> np.ndarray:
    """high - low of each tag's engineering range, NaN where the range is not configured."""
    out = np.full(len(tags), np.nan)
    for j, tag in enumerate(tags):
        info = registry.info(tag)
        if info.low is not None and info.high is not None and info.high > info.low:
            out[j] = float(info.high) - float(info.low)
    return out


def fit_residual_detector(train: np.ndarray, c: DetectorConfig, noise: np.ndarray) -> kernels.ResidualDetector:
    """EWMA / CUSUM over the innovations of a training window; each sigma floored at the signal's
    measurement noise (an innovation cannot be quieter than the measurement it comes from)."""
    model = fit_residual(train)
    sigma = np.maximum(model.sigma, noise)
    param = c.smoothing if c.kind == "ewma" else c.cusum_k
    policy = kernels.AlarmPolicy(c.threshold, c.release, c.k, c.window)
    return kernels.ResidualDetector(c.kind, ResidualModel(model.mu, sigma), param, policy)


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


def feature_floor(
    train: np.ndarray,
    fraction: float,
    differences: bool = True,
    rate_only: tuple[int, ...] = (),
    noise: np.ndarray | None = None,
    span: np.ndarray | None = None,
) -> np.ndarray:
    """Variance floor of each ``pca_features`` column, from the raw training values (m, p).

    Per signal j: a noise level n_j (*noise*, the configured measurement noise sd; where it is
    None or NaN, the signal's resolution: its smallest non-zero step in *train*) and a reference
    size r_j (*span*, the tag's range high - low; where None or NaN, the mean absolute level in
    *train*). A level's floor is max(n_j, fraction * r_j)^2, a difference's 2 n_j^2 (the
    difference of two noisy readings). So a signal held constant while the detector trained
    still has a spread: moving it by ``fraction`` of its range scores about one standard deviation.
    """
    X = np.asarray(train, dtype=np.float64)
    X = X[~np.isnan(X).any(axis=1)]
    p = X.shape[1]
    n = np.full(p, np.nan) if noise is None else np.asarray(noise, dtype=np.float64).copy()
    r = np.full(p, np.nan) if span is None else np.asarray(span, dtype=np.float64).copy()
    for j in range(p):
        if not np.isfinite(n[j]):
            steps = np.abs(np.diff(X[:, j]))
            steps = steps[steps > 0]
            n[j] = float(steps.min()) if steps.size else 0.0
        if not np.isfinite(r[j]):
            r[j] = float(np.mean(np.abs(X[:, j]))) if len(X) else 0.0
    levels = [j for j in range(p) if j not in rate_only]
    rates = list(range(p)) if differences else sorted(rate_only)
    level_sd = np.maximum(n, fraction * np.abs(r))
    return np.concatenate([level_sd[levels] ** 2, 2.0 * n[rates] ** 2])


class PcaSettings(Protocol):
    """What ``fit_pca_detector`` reads: ``DetectorConfig`` (live) and the replay's ``DetectorSettings`` both have it."""

    @property
    def threshold(self) -> float: ...

    release: float
    k: int
    window: int
    smoothing: float
    explained: float
    alpha: float
    memory: int
    delay: int
    refit_every: int
    peak_release: float


def fit_pca_detector(train_features: np.ndarray, s: PcaSettings, floor: np.ndarray) -> kernels.AdaptivePca:
    """The PCA detector of the live twin and of the replay, fitted on a window of features."""
    return kernels.AdaptivePca.fit(
        train_features,
        kernels.AlarmPolicy(s.threshold, s.release, s.k, s.window),
        s.smoothing,
        s.explained,
        components=getattr(s, "components", None),  # the replay's --components; the live config keeps `explained`
        alpha=s.alpha,
        var_floor=floor,
        adaptation=kernels.Adaptation(s.memory, s.delay, s.refit_every),
        peak_release=s.peak_release,
    )
