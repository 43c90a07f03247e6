"""SKAB benchmark of the anomaly detectors, with the benchmark's own protocol, held out, and detector speed.

    python benchmarks/bench_skab.py [--data ../shared/datasets/skab] [--quick]

Protocol (see the dataset's README): the 34 labelled files; per file the first 400 rows fit the
detector (no labels used), the rest are the test part. Binary F1 / FAR / MAR on the summed
confusion counts, NAB-style changepoint scores (Standard, LowFP, LowFN) on 60 s windows, summed
over files.

Two detectors, each with a grid of settings (``GRIDS``):

  before   today's fixed model: ``kernels.PcaDetector`` fitted once on the 400 rows, thermal
           signals by their rate only (what docs/detection.md documented before adaptation);
  after    the product's detector (``edge.replay.run.run_detector``, the live code): adapting
           PCA (``kernels.AdaptivePca``) with the variance floor, every signal's level kept,
           without the peak-relative release (``peak_release = 0``: the detector before it);
  released the same with the peak-relative release at the product default (0.1, fixed: not
           part of the grid), as shipped now;
  released, tuned  the union of the two grids: the rule also chooses whether to release.

Every setting is chosen on tuning data only, by one rule (``choose``): among the settings that
keep the anomaly-free run's FAR after its first hour at most 5 % (the live requirement; that run is
not one of the 34 test files, so it is tuning data for every fold; when no setting meets it, as
for the fixed model, the bound is dropped), the best F1 among those whose FAR on the tuning files
is at most 10 %; if none, the lowest FAR. Then it is scored on files it was not chosen on:

  leave one group out  groups valve1, valve2, other: choose on two, score the third; pooled;
  two-fold             files split alternately within each group into halves A and B: choose on
                       A, score B, and the other way round; pooled;
  anomaly-free only    the threshold ``on`` (the rest at the defaults) from the anomaly-free run
                       alone: the smallest ``on`` whose FAR there (fitted on its first 400 rows,
                       as live) is at most 1 % (all rows), or at most 5 % after its first hour
                       (the live requirement); scored on all 34 files;
  defaults             no options at all: ``DetectorSettings()`` (before: the old defaults);
  in-sample            chosen and scored on all 34 files: optimistic, labelled as such.

Also: ``T2+Q, upstream recipe`` (``skab_upstream.py``), our re-implementation of the
leaderboard's causal T^2+Q from its description, which must print the published row (validates
the metric code); the anomaly-free run's FAR after its first hour; and the speed of the detector
kernels, compiled and NumPy (``skab_speed.py``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from itertools import product
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from skab_speed import speed  # noqa: E402
from skab_upstream import upstream_t2q  # noqa: E402

import kernels  # noqa: E402
from edge.replay.metrics import Scores, SignalTable, read_signal_csv  # noqa: E402
from edge.replay.run import DetectorSettings, TwinSettings, run_detector, run_twin  # noqa: E402
from edge.twin.detector import pca_features  # noqa: E402

TRAIN = 400
THERMAL = ("Temperature", "Thermocouple")
SKAB_SETTINGS = DetectorSettings(rate_only=THERMAL, memory=0, floor_fraction=0.0, peak_release=0.0)  # the documented setting before adaptation
OLD_DEFAULTS = DetectorSettings(memory=0, floor_fraction=0.0, peak_release=0.0)
GROUPS = ("valve1", "valve2", "other")
FAR_LIMIT = 10.0  # the selection rule's bound on the tuning files' FAR, %
AF_FAR = 1.0  # anomaly-free thresholds: the largest FAR allowed on the anomaly-free run, %
AF_HOUR_FAR = 5.0  # the selection rule's bound on the anomaly-free run's FAR after its first hour, % (the live requirement)
ON_GRID = (1.0, 1.1, 1.25, 1.5, 2.0)
PEAK_RELEASE = DetectorSettings().peak_release  # the product default, fixed (not tuned) in the "released" grid
DEFAULTS = {"after": DetectorSettings(peak_release=0.0), "released": DetectorSettings()}  # as shipped before / now

# name, F1, FAR, MAR, NAB standard, LowFP, LowFN (dataset README; "-": not given there)
LEADERBOARD = [
    ("leaderboard best F1: Conv-AE (non-causal)", 0.78, 13.55, 28.02, None, 21.54, None),
    ("leaderboard MSET (non-causal)", 0.78, 39.73, None, None, None, None),
    ("leaderboard best causal: T2+Q (PCA)", 0.76, 26.62, 24.92, 25.35, 14.51, 31.33),
    ("leaderboard best NAB standard: MSCRED", None, None, None, 32.42, None, None),
]


def skab_files(data: Path) -> list[Path]:
    files = sorted((data / "data").glob("*/*.csv"))
    return [f for f in files if f.parent.name != "anomaly-free"]


# -- evaluation --------------------------------------------------------------------------------


def evaluate(tables: list[SignalTable], predict: Callable[[SignalTable], np.ndarray]) -> Scores:
    """*predict* returns the test-part prediction (rows TRAIN..end) of one file."""
    scores = Scores()
    for t in tables:
        pred = predict(t)
        scores.add(t.times_s[TRAIN:], t.labels["anomaly"][TRAIN:], t.labels["changepoint"][TRAIN:], pred)
    return scores


def ours_pca(t: SignalTable, settings: DetectorSettings = SKAB_SETTINGS) -> np.ndarray:
    """The product's detector (adapting, floored: the live code), test part."""
    return run_detector(t.values, None, settings, t.names)[1][TRAIN:]


def fixed_pca(t: SignalTable, settings: DetectorSettings = SKAB_SETTINGS) -> np.ndarray:
    """Today's fixed model (before adaptation): ``PcaDetector`` fitted once, no floor; test part."""
    ro = tuple(t.names.index(r) for r in settings.rate_only)
    X = pca_features(t.values, settings.differences, ro)
    det = kernels.PcaDetector.fit(X[:TRAIN], settings.policy, settings.smoothing, settings.explained, alpha=settings.alpha)
    return det.step(X)[3][TRAIN:]


def ours_residual(kind: str, on: float, param: float) -> Callable[[SignalTable], np.ndarray]:
    def predict(t: SignalTable) -> np.ndarray:
        _, res, _ = run_twin(t.values, TwinSettings.from_training(t.values[:TRAIN]), forecast=False)
        s = DetectorSettings(kind=kind, on=on, smoothing=param, cusum_k=param, release=0.8)
        return run_detector(t.values, res, s, t.names)[1][TRAIN:]

    return predict


def _cell(v: float | None, fmt: str) -> str:
    if isinstance(v, str):
        return v
    return "-" if v is None or math.isnan(v) else format(v, fmt)


def table_row(name: str, f1, far, mar, std, lfp, lfn, extra: str = "") -> str:
    return (
        f"| {name:<66} | {_cell(f1, '.2f'):>5} | {_cell(far, '.2f'):>6} | {_cell(mar, '.2f'):>6} "
        f"| {_cell(std, '.2f'):>6} | {_cell(lfp, '.2f'):>6} | {_cell(lfn, '.2f'):>6} | {extra}"
    )


def score_row(name: str, s: Scores) -> str:
    m = s.summary()
    extra = f"{s.nab.missed} missed, {s.nab.false_positives} FP cps"
    return table_row(name, m["f1"], m["far"], m["mar"], m["nab_standard"], m["nab_low_fp"], m["nab_low_fn"], extra)


# -- held-out evaluation ------------------------------------------------------------------------


def grids(quick: bool) -> dict[str, list[DetectorSettings]]:
    """The settings each detector chooses from (the old grid of docs/detection.md for *before*)."""
    ons = (1.0, 1.25, 1.5) if quick else ON_GRID
    before = [
        replace(SKAB_SETTINGS, explained=e, smoothing=sm, on=on, release=r)
        for e, sm, on, r in product((0.9, 0.95, 0.99), (0.1, 0.2), ons, (0.5, 0.8) if not quick else (0.8,))
    ]
    after = [
        DetectorSettings(explained=e, smoothing=sm, on=on, floor_fraction=f, peak_release=0.0)
        for e, sm, on, f in product((0.95,) if quick else (0.9, 0.95), (0.2,) if quick else (0.1, 0.2), ons, (0.01,) if quick else (0.01, 0.015))
    ]
    released = [replace(s, peak_release=PEAK_RELEASE) for s in after]
    return {"before": before, "after": after, "released": released, "released, tuned": after + released}


PREDICT = {"before": fixed_pca, "after": ours_pca, "released": ours_pca, "released, tuned": ours_pca}
LABELS = {
    "before": "before (fixed model)",
    "after": "after (adapting, floored)",
    "released": f"+ peak release {PEAK_RELEASE:g} (default)",
    "released, tuned": "+ peak release chosen by the rule (0 or 0.1)",
}


class Results:
    """Per-file scores of every (detector, setting), computed once; protocols are sums over them."""

    def __init__(self, tables: list[SignalTable], groups: list[str], af: SignalTable | None) -> None:
        self.tables, self.groups, self.af = tables, groups, af
        self._cache: dict[tuple[Callable[..., np.ndarray], DetectorSettings], list[Scores]] = {}
        self._af: dict[tuple[Callable[..., np.ndarray], DetectorSettings], float] = {}

    def af_far(self, kind: str, s: DetectorSettings) -> float:
        """FAR (%) of the anomaly-free run after its first hour (it is tuning data for every fold)."""
        assert self.af is not None
        key = (PREDICT[kind], s)  # the detectors that share a code path share their results
        if key not in self._af:
            self._af[key] = anomaly_free_far(self.af, kind, s, 3600)
        return self._af[key]

    def per_file(self, kind: str, s: DetectorSettings) -> list[Scores]:
        key = (PREDICT[kind], s)
        if key not in self._cache:
            out = []
            for t in self.tables:
                sc = Scores()
                sc.add(t.times_s[TRAIN:], t.labels["anomaly"][TRAIN:], t.labels["changepoint"][TRAIN:], PREDICT[kind](t, s))
                out.append(sc)
            self._cache[key] = out
        return self._cache[key]

    def pooled(self, kind: str, s: DetectorSettings, files: list[int]) -> Scores:
        per = self.per_file(kind, s)
        total = Scores()
        for i in files:
            total.confusion += per[i].confusion
            total.nab += per[i].nab
            total.files += 1
        return total


def choose(res: Results, kind: str, grid: list[DetectorSettings], files: list[int]) -> DetectorSettings:
    """The rule: among the settings that keep the anomaly-free run's FAR after its first hour at
    most AF_HOUR_FAR (the live requirement; all of them when none does), the best F1 with FAR <=
    FAR_LIMIT on *files*; else the lowest FAR."""
    if res.af is not None:
        ok_af = [s for s in grid if res.af_far(kind, s) <= AF_HOUR_FAR]
        grid = ok_af or grid
    scored = [(res.pooled(kind, s, files).summary(), s) for s in grid]
    ok = [(m["f1"], s) for m, s in scored if m["far"] <= FAR_LIMIT]
    if ok:
        return max(ok, key=lambda x: x[0])[1]
    return min(scored, key=lambda x: x[0]["far"])[1]


def held_out(res: Results, kind: str, grid: list[DetectorSettings], folds: list[tuple[list[int], list[int]]]) -> tuple[Scores, list[DetectorSettings]]:
    """Choose on each fold's tuning files, score its test files, pool the test counts."""
    total, chosen = Scores(), []
    for tune, test in folds:
        s = choose(res, kind, grid, tune)
        chosen.append(s)
        part = res.pooled(kind, s, test)
        total.confusion += part.confusion
        total.nab += part.nab
        total.files += part.files
    return total, chosen


def anomaly_free_far(af: SignalTable, kind: str, s: DetectorSettings, after_s: float = 0.0) -> float:
    """FAR (%) on the anomaly-free run fitted on its first 400 rows, over rows after *after_s* seconds (and the training rows)."""
    if kind != "before":
        alarm = run_detector(af.values, None, s, af.names)[1]
    else:
        ro = tuple(af.names.index(r) for r in s.rate_only)
        X = pca_features(af.values, s.differences, ro)
        alarm = kernels.PcaDetector.fit(X[:TRAIN], s.policy, s.smoothing, s.explained, alpha=s.alpha).step(X)[3]
    start = max(TRAIN, int(np.searchsorted(af.times_s - af.times_s[0], after_s)))
    return 100.0 * float(alarm[start:].mean())


def af_threshold(af: SignalTable, kind: str, base: DetectorSettings, limit: float, after_s: float) -> DetectorSettings:
    """The smallest ``on`` of ON_GRID whose anomaly-free FAR after *after_s* is at most *limit* % (else the largest)."""
    for on in ON_GRID:
        s = replace(base, on=on)
        if anomaly_free_far(af, kind, s, after_s) <= limit:
            return s
    return replace(base, on=ON_GRID[-1])


def describe(s: DetectorSettings) -> str:
    out = f"on {s.on:g} expl {s.explained:g} sm {s.smoothing:g}"
    if s.release != 0.8:
        out += f" rel {s.release:g}"
    if s.memory:
        out += f" floor {s.floor_fraction:g}"
    if s.peak_release:
        out += f" peak release {s.peak_release:g}"
    return out


def evaluation(tables: list[SignalTable], groups: list[str], af: SignalTable | None, quick: bool) -> list[str]:
    res = Results(tables, groups, af)
    everything = list(range(len(tables)))
    logo = [([i for i in everything if groups[i] != g], [i for i in everything if groups[i] == g]) for g in GROUPS]
    half: dict[str, int] = {}
    side = []
    for g in groups:  # alternate within each group
        side.append(half.get(g, 0) % 2)
        half[g] = half.get(g, 0) + 1
    a, b = [i for i in everything if side[i] == 0], [i for i in everything if side[i] == 1]
    twofold = [(a, b), (b, a)]
    lines = []
    for kind, grid in grids(quick).items():
        label = LABELS[kind]
        if kind == "before":  # the setting docs/detection.md documented, tuned on all 34 files: today's headline figure
            lines.append(score_row(f"{label}: documented setting (in-sample)", res.pooled(kind, SKAB_SETTINGS, everything)) + f"; {describe(SKAB_SETTINGS)}")
        s_in = choose(res, kind, grid, everything)
        lines.append(score_row(f"{label}: in-sample (optimistic)", res.pooled(kind, s_in, everything)) + f"; {describe(s_in)}")
        sc, chosen = held_out(res, kind, grid, logo)
        lines.append(score_row(f"{label}: leave one group out", sc) + "; " + ", ".join(f"{g}: {describe(c)}" for g, c in zip(GROUPS, chosen)))
        for g, (_, test), c in zip(GROUPS, logo, chosen):
            lines.append(score_row(f"  held-out {g}", res.pooled(kind, c, test)))
        sc, chosen = held_out(res, kind, grid, twofold)
        lines.append(score_row(f"{label}: two-fold", sc) + "; " + ", ".join(describe(c) for c in chosen))
        if kind == "released, tuned":
            continue  # its anomaly-free and default rows are those of "released"
        if af is not None:
            base = SKAB_SETTINGS if kind == "before" else DEFAULTS[kind]
            for limit, after_s, text in ((AF_FAR, 0.0, "FAR <= 1 % there"), (AF_HOUR_FAR, 3600.0, "FAR <= 5 % after 1 h")):
                s_af = af_threshold(af, kind, base, limit, after_s)
                name = f"{label}: on from anomaly-free only ({text})"
                lines.append(score_row(name, res.pooled(kind, s_af, everything)) + f"; {describe(s_af)}")
        defaults = OLD_DEFAULTS if kind == "before" else DEFAULTS[kind]
        lines.append(score_row(f"{label}: defaults, no options", res.pooled(kind, defaults, everything)))
    if af is not None:
        lines.append("")
        lines.append("Anomaly-free run (9,405 rows, 2.8 h), fitted on its first 400 rows as live, FAR after the first hour:")
        for kind, s in (("before", OLD_DEFAULTS), ("before", SKAB_SETTINGS), ("after", DEFAULTS["after"]), ("released", DEFAULTS["released"])):
            lines.append(f"  {kind}: {describe(s)}{' rate_only thermal' if s.rate_only else ''}: {anomaly_free_far(af, kind, s, 3600):.1f} %")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "skab"), help="SKAB folder (with data/)")
    ap.add_argument("--quick", action="store_true", help="smaller setting grids and shorter timing loops (under a minute)")
    args = ap.parse_args()
    data = Path(args.data)
    files = skab_files(data)
    if len(files) != 34:
        print(f"expected the 34 labelled SKAB files under {data / 'data'}, found {len(files)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    tables = [read_signal_csv(f) for f in files]
    groups = [f.parent.name for f in files]
    af_path = data / "data" / "anomaly-free" / "anomaly-free.csv"
    af = read_signal_csv(af_path) if af_path.exists() else None
    print(f"SKAB: {len(tables)} files, {sum(len(t.times_s) - TRAIN for t in tables)} test rows; detector kernels: {kernels.IMPLEMENTATION}\n")
    print(table_row("detector", "F1", "FAR %", "MAR %", "NAB std", "LowFP", "LowFN", "changepoints; settings chosen"))
    print("|" + "---|" * 8)
    for row in LEADERBOARD:
        print(table_row(*row))
    print(score_row("T2+Q, upstream recipe (ours, reproduction)", evaluate(tables, lambda t: upstream_t2q(t.values))))
    print(score_row("ours: EWMA on twin residuals (any signal)", evaluate(tables, ours_residual("ewma", 4.0, 0.05))))
    print(score_row("ours: CUSUM on twin residuals (any signal)", evaluate(tables, ours_residual("cusum", 60.0, 0.5))))
    for line in evaluation(tables, groups, af, args.quick):
        print(line)
    print(f"\n(evaluation {time.perf_counter() - start:.1f} s on a shared, loaded machine)\n")
    print("Detector speed (best of 3 time-boxed loops; ns per channel-update for ewma/cusum, per sample for pca):\n")
    for line in speed(0.02 if args.quick else 0.3):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
