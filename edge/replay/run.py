"""Offline replay: run the twin and a detector over a recorded CSV as if live.

Per row, in order, using only that row and earlier ones:

* the twin: one Kalman filter per signal (``kernels.KalmanBank``) gives the estimate, the
  residual (innovation) and a forecast ``horizon`` ticks ahead; the CSV gets, for each row, the
  forecast that was made ``horizon`` rows earlier for that row, so it can be read against the
  measurement;
* the detector, fitted on the first ``train_rows`` rows (a window of normal operation):
  ``pca``   Hotelling T^2 + Q on the signals (optionally with their first differences),
            combined score max(T^2/limit, Q/limit), EWMA-smoothed, alarm with hysteresis;
  ``ewma``  / ``cusum`` per-signal detectors on the twin's residuals, standardised by their
            training-window mean and spread; the asset alarm is on while any signal alarms.

Rows of the training window are scored too (they are part of the timeline) but metrics only use
the rows after it, as in the SKAB protocol. Everything here is pure computation except
``replay_file``, which reads and writes files.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import kernels
from edge.config import AssetConfig
from edge.replay.metrics import Scores, SignalTable, read_signal_csv
from edge.twin.detector import feature_floor, fit_pca_detector, pca_features

DETECTORS = ("pca", "ewma", "cusum")


@dataclass(frozen=True)
class DetectorSettings:
    """How the detector is fitted and when it alarms. Defaults: the SKAB configuration in docs/detection.md."""

    kind: str = "pca"
    train_rows: int = 400
    on: float = 1.25  # pca: multiple of the control limit; ewma/cusum: sigma units
    release: float = 0.8  # alarm clears below release * on
    k: int = 1  # alarm after k exceedances within window ticks
    window: int = 1
    smoothing: float = 0.2  # pca: EWMA factor of the combined score; ewma: lambda
    cusum_k: float = 0.5  # cusum allowance, sigma units
    explained: float = 0.95  # pca: variance share the retained components explain
    components: int | None = None  # pca: principal components kept (None: the fewest that reach `explained`)
    alpha: float = 0.99  # pca: confidence of the T^2 and Q control limits
    differences: bool = True  # pca: also monitor the first difference of each signal
    rate_only: tuple[str, ...] = ()  # pca: signals monitored by their first difference only
    # pca adaptation and variance floor (kernels.detect_adapt; docs/detection.md "Adaptation")
    memory: int = 1800  # rows: forgetting factor 1 - 1/memory of the learned statistics; 0 = fixed model
    delay: int = 60  # rows between scoring a row and learning it (an exceedance or alarm empties the buffer)
    refit_every: int = 10  # learned rows between refits of the model and its limits
    floor_fraction: float = 0.01  # variance floor (sd) of a level: this fraction of its span, else of its mean level
    peak_release: float = 0.1  # pca: an alarm ends once the score is below this fraction of its peak (0 = off)

    def __post_init__(self) -> None:
        if self.kind not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}; got {self.kind!r}")
        if self.components is not None and self.components < 1:
            raise ValueError(f"components must be >= 1, got {self.components}")
        if self.train_rows < 2:
            raise ValueError(f"train_rows must be >= 2, got {self.train_rows}")
        if not 0 < self.explained <= 1 or not 0 < self.alpha < 1:
            raise ValueError("explained must be in (0, 1] and alpha in (0, 1)")
        kernels.AlarmPolicy(self.on, self.release, self.k, self.window)  # validates
        kernels.Adaptation(self.memory, self.delay, self.refit_every)  # validates
        if not (math.isfinite(self.peak_release) and 0 <= self.peak_release < 1):
            raise ValueError(f"peak_release must be in [0, 1), got {self.peak_release!r}")
        if not (math.isfinite(self.floor_fraction) and self.floor_fraction >= 0):
            raise ValueError(f"floor_fraction must be finite and >= 0, got {self.floor_fraction!r}")

    @property
    def policy(self) -> kernels.AlarmPolicy:
        return kernels.AlarmPolicy(self.on, self.release, self.k, self.window)

    @property
    def threshold(self) -> float:
        return self.on

    @property
    def adaptation(self) -> kernels.Adaptation:
        return kernels.Adaptation(self.memory, self.delay, self.refit_every)


@dataclass
class TwinSettings:
    """Per-signal Kalman settings; from an asset config or estimated from the training window."""

    model: list[str]
    q: list[float]  # process noise (variance per tick, as KalmanBank takes it)
    r: list[float]  # measurement variance
    horizon: int  # forecast horizon, ticks

    @classmethod
    def from_training(cls, train: np.ndarray, horizon: int = 30) -> TwinSettings:
        """Random walk per signal; q = r = var(first difference) / 3 (var(diff) = q + 2 r)."""
        d = np.diff(train, axis=0)
        v = np.nanvar(d, axis=0) if len(d) > 1 else np.ones(train.shape[1])
        v = np.where(np.isfinite(v) & (v > 0), v, 1e-6)
        return cls(["random_walk"] * train.shape[1], list(v / 3), list(v / 3), horizon)

    @classmethod
    def from_asset(cls, asset: AssetConfig, names: list[str]) -> tuple[TwinSettings, list[int]]:
        """Signals of *asset* matched to CSV columns by signal name or by tag (``device.tag`` or ``tag``)."""
        cols, model, q, r, horizons = [], [], [], [], []
        for sig in asset.signals:
            candidates = [sig.name, sig.tag, sig.tag.split(".", 1)[-1]]
            hit = next((names.index(c) for c in candidates if c in names), None)
            if hit is None:
                raise ValueError(f"asset {asset.name!r}: no CSV column for signal {sig.name!r} (tried {', '.join(candidates)})")
            cols.append(hit)
            model.append(sig.model)
            q.append(sig.process_noise)
            r.append(sig.measurement_noise**2)
            horizons.append(sig.forecast_horizon_s)
        horizon = max(1, round(max(horizons) / asset.tick_s))
        return cls(model, q, r, horizon), cols


@dataclass
class ReplayResult:
    names: list[str]
    estimate: np.ndarray  # (m, p)
    forecast: np.ndarray  # (m, p), made `horizon` rows earlier
    residual: np.ndarray  # (m, p)
    score: np.ndarray  # (m,)
    alarm: np.ndarray  # (m,) bool
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # t2, q, per-signal scores
    horizon: int = 0
    train_rows: int = 0
    diagnosis: list[str] | None = None  # fault pattern per row ("" normal), with --patterns (edge.replay.diagnosis)


def run_twin(values: np.ndarray, twin: TwinSettings, forecast: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kalman estimate, residual and forecast (NaN when not *forecast*) per signal, row by row.

    One bank per (model kind, process noise), stepped once per row for all its signals.
    """
    m, p = values.shape
    est, res, fc = np.full((m, p), np.nan), np.full((m, p), np.nan), np.full((m, p), np.nan)
    # One bank per model kind: the filter is scale-equivariant (z / s with q / s^2 and r / s^2 gives
    # x / s), so each channel is scaled by sqrt(q_j) and the bank runs with q = 1 (q_j = 0: own bank).
    groups: dict[tuple[str, bool], list[int]] = {}
    for j, (kind, q) in enumerate(zip(twin.model, twin.q)):
        groups.setdefault((kind, q > 0), []).append(j)
    for (kind, noisy), idx in groups.items():
        sc = np.array([math.sqrt(twin.q[j]) if noisy else 1.0 for j in idx])
        v = values[:, idx] / sc
        first = v[~np.isnan(v).any(axis=1)]
        bank = kernels.KalmanBank(kind, len(idx), 1.0, 1.0 if noisy else 0.0, np.array([twin.r[j] for j in idx]) / sc**2, x0=first[0] if len(first) else 0.0)
        for t in range(m):
            bank.step(v[t])
            est[t, idx] = bank.estimate * sc
            res[t, idx] = bank.innovation * sc
            if forecast and t + twin.horizon < m:
                fc[t + twin.horizon, idx] = bank.forecast(twin.horizon)[0] * sc
    return est, res, fc


def run_detector(
    values: np.ndarray,
    residual: np.ndarray | None,
    settings: DetectorSettings,
    names: list[str] | None = None,
    noise: np.ndarray | None = None,
    span: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Fit on the first ``train_rows`` rows, then score every row in order: (score, alarm, extra).

    *names* (one per column) resolve ``settings.rate_only``. ``pca`` runs the live detector's
    code (``edge.twin.detector``: ``pca_features``, ``feature_floor``, ``fit_pca_detector``): the same features, variance floor and adaptation;
    *noise* and *span* (one per column, NaN: unknown) feed the floor as the live asset's
    ``measurement_noise`` and tag range do.
    """
    n = settings.train_rows
    if values.shape[0] <= n:
        raise ValueError(f"need more than train_rows = {n} rows, got {values.shape[0]}")
    if settings.kind == "pca":
        unknown = [r for r in settings.rate_only if r not in (names or [])]
        if unknown:
            raise ValueError(f"rate_only names no signal: {unknown}; signals are {names}")
        rate_only = tuple((names or []).index(r) for r in settings.rate_only)
        X = pca_features(values, settings.differences, rate_only)
        floor = feature_floor(values[:n], settings.floor_fraction, settings.differences, rate_only, noise, span)
        det = fit_pca_detector(X[:n], settings, floor)
        head = det.step(X[:n], False)  # the training rows are in the statistics already
        tail = det.step(X[n:], True)
        t2, q, score, alarm = (np.concatenate([a, b]) for a, b in zip(head, tail))
        return score, alarm, {"t2": t2, "q": q}
    if residual is None:
        raise ValueError(f"the {settings.kind} detector needs the twin's residuals")
    e = residual.copy()
    e[0] = np.nan  # the first innovation only reflects the initial state
    param = settings.smoothing if settings.kind == "ewma" else settings.cusum_k
    rdet = kernels.ResidualDetector.fit(settings.kind, e[1:n], param, settings.policy)
    score, alarm = rdet.step(e)
    return np.nanmax(np.where(np.isnan(score), -np.inf, score), axis=1), alarm.any(axis=1), {"signal_score": score}


def replay(table: SignalTable, settings: DetectorSettings, twin: TwinSettings | None = None, columns: list[int] | None = None) -> ReplayResult:
    """Run the twin and the detector over *table* (all pure; see ``replay_file`` for I/O)."""
    cols = list(range(len(table.names))) if columns is None else columns
    values = table.values[:, cols]
    names = [table.names[j] for j in cols]
    tw = twin or TwinSettings.from_training(values[: settings.train_rows])
    est, res, fc = run_twin(values, tw)
    score, alarm, extra = run_detector(values, res, settings, names)
    return ReplayResult(names, est, fc, res, score, alarm, extra, tw.horizon, settings.train_rows)


def metrics(table: SignalTable, result: ReplayResult) -> Scores | None:
    """SKAB-protocol metrics over the rows after the training window, when the CSV has labels."""
    if not table.labels:
        return None
    n = result.train_rows
    anomaly, changepoint = table.labels.get("anomaly"), table.labels.get("changepoint")
    s = Scores()
    s.add(table.times_s[n:], None if anomaly is None else anomaly[n:], None if changepoint is None else changepoint[n:], result.alarm[n:])
    return s


def _fmt(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6g}"


def write_csv(path: str | Path, table: SignalTable, result: ReplayResult) -> None:
    header = [table.time_column]
    for nm in result.names:
        header += [f"{nm}.measured", f"{nm}.estimate", f"{nm}.forecast", f"{nm}.residual"]
    extra_cols = [k for k, v in result.extra.items() if v.ndim == 1]
    header += ["score", "alarm", *extra_cols, *(["diagnosis"] if result.diagnosis is not None else []), *table.labels]
    cols = [table.names.index(nm) for nm in result.names]
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for t, stamp in enumerate(table.timestamps):
            row = [stamp]
            for i, j in enumerate(cols):
                row += [_fmt(table.values[t, j]), _fmt(result.estimate[t, i]), _fmt(result.forecast[t, i]), _fmt(result.residual[t, i])]
            row += [_fmt(result.score[t]), int(result.alarm[t]), *(_fmt(result.extra[k][t]) for k in extra_cols)]
            if result.diagnosis is not None:
                row.append(result.diagnosis[t])
            row += [int(v[t]) for v in table.labels.values()]
            w.writerow(row)


def replay_file(
    csv_path: str | Path,
    settings: DetectorSettings,
    *,
    sep: str | None = None,
    time_column: str | None = None,
    columns: list[str] | None = None,
    asset: AssetConfig | None = None,
    out: str | Path | None = None,
    plot: str | Path | None = None,
) -> tuple[SignalTable, ReplayResult, Scores | None]:
    """Read *csv_path*, replay it, write the outputs CSV and the PNG when asked; return everything."""
    table = read_signal_csv(csv_path, sep=sep, time_column=time_column, columns=columns)
    twin, cols = None, None
    if asset is not None:
        twin, cols = TwinSettings.from_asset(asset, table.names)
    result = replay(table, settings, twin, cols)
    scores = metrics(table, result)
    if out is not None:
        write_csv(out, table, result)
    if plot is not None:
        from edge.replay.plot import render  # matplotlib only when a plot is asked for

        render(plot, table, result, settings)
    return table, result, scores
