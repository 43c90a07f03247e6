"""Replay of one or many files, with the detector fitted on separate training files or on each
file's own first rows, and the default thresholds of the residual detectors.

Two ways to fit (``prepare``):

* **separate training files** (``edgetwin replay --train normal.csv test.csv ...``): the twin's
  noise settings and the detector are fitted on the training files (rows of all of them, each
  file run through its own twin from a fresh start); every row of the test file is then scored.
  For the detector the rows are laid out as ``[train 1, gap, train 2, gap, ..., gap, test]``: a
  gap row (all NaN) keeps first differences and residuals from spanning two files, and the
  detector runs through the training rows before the test file as it would live.
* **per file** (no ``--train``): the first ``train_rows`` rows of each file fit the detector and
  only the rows after them are scored, the SKAB protocol.

Default thresholds (``Threshold``, ``resolve_on``): ``pca`` alarms at ``on = 1.25`` (its score is
1 at the control limit, docs/detection.md). ``ewma`` and ``cusum`` have no such scale on real
residuals (autocorrelated, quantised, drifting), so their ``on`` is derived from the training
rows: ``margin x`` the ``quantile`` of the detector's own score over the training rows (defaults
2 x the 99.5 % quantile). An explicit ``on`` always wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.config import AssetConfig
from edge.replay.metrics import Scores
from edge.replay.run import DetectorSettings, ReplayResult, TwinSettings, metrics, run_detector, run_twin
from edge.replay.table import SignalTable
from edge.twin.detector import pca_features

PCA_ON = 1.25
DEFAULT_QUANTILE = 0.995
DEFAULT_MARGIN = 2.0
_PROBE_ON = 1e300  # an alarm level nothing reaches: the probe run only wants the scores


@dataclass(frozen=True)
class Threshold:
    """The alarm level: ``on`` when given, else the per-kind default (see the module doc)."""

    on: float | None = None
    quantile: float = DEFAULT_QUANTILE
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if self.on is not None and not (np.isfinite(self.on) and self.on > 0):
            raise ValueError(f"on must be a finite number > 0, got {self.on!r}")
        if not 0 < self.quantile <= 1:
            raise ValueError(f"the threshold quantile must be in (0, 1], got {self.quantile!r}")
        if not (np.isfinite(self.margin) and self.margin > 0):
            raise ValueError(f"the threshold margin must be a finite number > 0, got {self.margin!r}")

    def describe(self, kind: str) -> str:
        if self.on is not None:
            return f"on {self.on:g}"
        if kind == "pca":
            return f"on {PCA_ON:g} (default)"
        return f"on {self.margin:g} x the {100 * self.quantile:g} % quantile of the training score"


@dataclass
class Prepared:
    """A test file with the twin already run: what scoring with any detector setting needs."""

    table: SignalTable
    names: list[str]  # signals, in detector column order
    values: np.ndarray  # detector input rows: [training rows, gap,] the file's rows
    residual: np.ndarray  # the twin's innovations on the same rows (NaN at each block's first row)
    estimate: np.ndarray  # (m, p) for the file's rows
    forecast: np.ndarray
    horizon: int
    fit_rows: int  # leading rows of `values` the detector is fitted on
    start: int  # index of the file's first row in `values`
    skip: int  # rows of the file that are not scored (its own training rows in per-file mode)


@dataclass
class FileResult:
    prepared: Prepared
    settings: DetectorSettings  # as run: the resolved `on`, train_rows = prepared.fit_rows
    result: ReplayResult  # the file's rows; result.train_rows = prepared.skip
    scores: Scores | None  # None without label columns


def _select(table: SignalTable, asset: AssetConfig | None) -> tuple[np.ndarray, list[str], TwinSettings | None]:
    if asset is None:
        return table.values, list(table.names), None
    twin, cols = TwinSettings.from_asset(asset, table.names)
    return table.values[:, cols], [table.names[c] for c in cols], twin


def _twin(values: np.ndarray, twin: TwinSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    est, res, fc = run_twin(values, twin)
    res[:1] = np.nan  # the first innovation only reflects the initial state
    return est, res, fc


@dataclass
class Training:
    """Separate training files, run through the twin once: ``[file 1, gap, file 2, gap, ...]``."""

    paths: list[str]
    names: list[str]
    values: np.ndarray
    residual: np.ndarray
    twin: TwinSettings


def load_training(tables: list[SignalTable], asset: AssetConfig | None = None) -> Training:
    """Fit the twin's noise settings on all training rows and run each file through it."""
    blocks, names = [], None
    twin: TwinSettings | None = None
    for t in tables:
        v, n, twin = _select(t, asset)
        if names is not None and n != names:
            raise ValueError(f"{t.path}: signals {n} differ from {tables[0].path}'s {names}")
        names = n
        blocks.append(v)
    if names is None:
        raise ValueError("no training files")
    gap = np.full((1, len(names)), np.nan)
    values = np.vstack([x for b in blocks for x in (b, gap)])
    tw = twin or TwinSettings.from_training(values)
    residual = np.vstack([x for b in blocks for x in (_twin(b, tw)[1], gap)])
    return Training([t.path for t in tables], names, values, residual, tw)


def prepare(table: SignalTable, train_rows: int, training: Training | None = None, asset: AssetConfig | None = None) -> Prepared:
    """Run the twin over *table*; the detector will fit on *training*, or on the first *train_rows* rows."""
    values, names, twin = _select(table, asset)
    if training is None:
        if len(values) <= train_rows:
            raise ValueError(f"{table.path}: need more than train_rows = {train_rows} rows, got {len(values)}")
        tw = twin or TwinSettings.from_training(values[:train_rows])
        est, res, fc = _twin(values, tw)
        return Prepared(table, names, values, res, est, fc, tw.horizon, train_rows, 0, train_rows)
    if names != training.names:
        raise ValueError(f"{table.path}: signals {names} differ from the training files' {training.names}")
    est, res, fc = _twin(values, training.twin)
    n = len(training.values)
    return Prepared(table, names, np.vstack([training.values, values]), np.vstack([training.residual, res]), est, fc, training.twin.horizon, n, n, 0)


def check_components(settings: DetectorSettings, n_signals: int) -> None:
    """``components`` must leave at least one PCA feature for the residual Q (no silent clamp)."""
    if settings.kind != "pca" or settings.components is None:
        return
    rate_only = tuple(range(len(settings.rate_only)))  # only the count matters
    features = pca_features(np.zeros((2, n_signals)), settings.differences, rate_only).shape[1]
    if settings.components > features - 1:
        raise ValueError(f"components {settings.components}: the PCA has {features} features, so at most {features - 1} components (one is left for Q)")


def resolve_on(prep: Prepared, settings: DetectorSettings, threshold: Threshold) -> float:
    """The alarm level for *settings* on this file's training rows (see the module doc)."""
    if threshold.on is not None:
        return threshold.on
    if settings.kind == "pca":
        return PCA_ON
    probe = replace(settings, on=_PROBE_ON, train_rows=prep.fit_rows)
    score, _, _ = run_detector(prep.values, prep.residual, probe, prep.names)
    train = score[: prep.fit_rows]
    train = train[np.isfinite(train)]
    level = float(np.quantile(train, threshold.quantile)) if train.size >= 2 else 0.0
    if not level > 0:
        raise ValueError(f"{prep.table.path}: the {settings.kind} score is 0 or missing on every training row, so no threshold can be derived; give --on")
    return threshold.margin * level


def score(prep: Prepared, settings: DetectorSettings, threshold: Threshold) -> FileResult:
    """Run the detector with *settings* and *threshold* over the prepared file."""
    run = replace(settings, on=resolve_on(prep, settings, threshold), train_rows=prep.fit_rows)
    sc, alarm, extra = run_detector(prep.values, prep.residual, run, prep.names)
    s = prep.start
    res = prep.residual[s:]
    result = ReplayResult(prep.names, prep.estimate, prep.forecast, res, sc[s:], alarm[s:], {k: v[s:] for k, v in extra.items()}, prep.horizon, prep.skip)
    return FileResult(prep, run, result, metrics(prep.table, result))


def output_names(paths: list[Path]) -> list[str]:
    """Output stems: the file's stem, or ``<folder>-<stem>`` when two files share a stem."""
    stems = [p.stem for p in paths]
    out = [s if stems.count(s) == 1 else f"{p.parent.name}-{s}" for p, s in zip(paths, stems)]
    if len(set(out)) != len(out):
        out = [f"{i}-{s}" for i, s in enumerate(out)]
    return out


def display_names(paths: list[Path]) -> list[str]:
    """Short labels for tables: ``folder/name`` when that is unique, else the path as given."""
    short = [f"{p.parent.name}/{p.name}" if p.parent.name else p.name for p in paths]
    return short if len(set(short)) == len(short) else [str(p) for p in paths]
