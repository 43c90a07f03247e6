"""The replay command's work on prepared files: score them with one setting, or choose the setting
on tuning files and score held-out ones (two-fold or leave one group out); write the per-file
outputs and return the report lines. ``edge.replay.cli`` parses the arguments and reads the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.replay import report, tuning
from edge.replay.batch import FileResult, Prepared, Threshold, score
from edge.replay.metrics import Scores
from edge.replay.run import DetectorSettings, write_csv


@dataclass
class Outputs:
    """Where per-file outputs go: CSV and PNG per file (None: not written)."""

    csv: list[Path | None]
    png: list[Path | None]
    patterns: Path | None = None  # a fault-pattern library: the episodes are diagnosed (edge.replay.diagnosis)

    def write(self, i: int, fr: FileResult) -> None:
        if self.patterns is not None and fr.result.diagnosis is None:
            from edge.replay.diagnosis import diagnose

            fr.result.diagnosis, fr.result.extra["diagnosis_confidence"] = diagnose(fr.prepared.table, fr.result, self.patterns)
        if self.csv[i] is not None:
            write_csv(self.csv[i], fr.prepared.table, fr.result)  # type: ignore[arg-type]
        if self.png[i] is not None:
            from edge.replay.plot import render  # matplotlib only when a plot is asked for

            render(self.png[i], fr.prepared.table, fr.result, fr.settings)  # type: ignore[arg-type]

    def lines(self) -> list[str]:
        csvs, pngs = [p for p in self.csv if p], [p for p in self.png if p]
        out = []
        if csvs:
            out.append(f"outputs: {csvs[0]}" if len(csvs) == 1 else f"outputs: {len(csvs)} files in {csvs[0].parent} (<name>.replay.csv)")
        if pngs:
            out.append(f"plot: {pngs[0]}" if len(pngs) == 1 else f"plots: {len(pngs)} files in {pngs[0].parent} (<name>.replay.png)")
        return out


def _fitted_on(prep: Prepared, train_desc: str | None) -> str:
    return f"fitted on {prep.fit_rows} rows" if train_desc is None else f"fitted on {train_desc}"


def replay_one(prep: Prepared, settings: DetectorSettings, threshold: Threshold, outputs: Outputs, train_desc: str | None) -> list[str]:
    """One test file: the summary line, the metrics and where the outputs are."""
    fr = score(prep, settings, threshold)
    outputs.write(0, fr)
    t = prep.table
    level = f"{threshold.describe(settings.kind)}" + ("" if threshold.on is not None or settings.kind == "pca" else f" = {fr.settings.on:.4g}")
    scored = fr.result.alarm[prep.skip :]
    share = f"{100 * scored.mean():.2f} %" if scored.size else "-"
    after = "after the training window" if prep.skip else "of the file"
    lines = [
        f"{t.path}: {len(t.times_s)} rows, {len(prep.names)} signals, detector {settings.kind} {_fitted_on(prep, train_desc)}; {level}",
        f"alarm on {int(scored.sum())} of the {scored.size} rows {after} ({share})",
    ]
    if fr.scores is not None:
        where = "the rows after the training window" if prep.skip else "every row (the detector was fitted on the training files)"
        lines.append(f"metrics over {where}:")
        lines += ["  " + line for line in fr.scores.lines()]
    return lines + outputs.lines()


def replay_many(
    preps: list[Prepared], names: list[str], settings: DetectorSettings, threshold: Threshold, outputs: Outputs, train_desc: str | None
) -> list[str]:
    """Several test files with one setting: a row per file and the summed row."""
    what = f"each file's first {settings.train_rows} rows (scored: the rows after them)" if train_desc is None else f"{train_desc} (scored: every row)"
    lines = [f"detector {settings.kind}, fitted on {what}; {threshold.describe(settings.kind)}"]
    rows, parts = [], []
    for i, (prep, name) in enumerate(zip(preps, names)):
        fr = score(prep, settings, threshold)
        outputs.write(i, fr)
        parts.append(fr.scores)
        rows.append(report.row(f"{name} (on {fr.settings.on:.4g}, {int(fr.result.alarm.sum())} alarm rows)", fr.scores))
    rows.append(report.row(f"all {len(preps)} files (counts summed)", report.summed(parts)))
    return lines + report.table(rows) + outputs.lines()


def cross_validate(
    preps: list[Prepared],
    names: list[str],
    folds: list[tuple[str, list[int], list[int]]],
    cands: list[tuning.Candidate],
    max_far: float,
    outputs: Outputs,
    mode: str,
    groups: Sequence[str],
) -> list[str]:
    """Choose a setting per fold on its tuning files, score its held-out files; report both, clearly apart."""

    def run(c: int, f: int) -> Scores | None:
        return score(preps[f], cands[c].settings, cands[c].threshold).scores

    matrix = tuning.score_matrix(len(cands), len(preps), run, lambda f: names[f])
    lines = [f"{mode}: {len(folds)} folds, {len(cands)} candidate settings, chosen by the best F1 on the tuning files with FAR <= {max_far:g} %"]
    held_parts: list[Scores | None] = []
    for title, tune, held in folds:
        best = tuning.select(matrix, tune, max_far)
        cand = cands[best]
        lines.append("")
        lines.append(f"{title}: tuned on {len(tune)} files ({_groups(groups, tune)}), held out {len(held)} ({_groups(groups, held)})")
        lines.append(f"  chosen: {cand.label} ({tuning.describe(cand)})")
        lines.append(f"  IN-SAMPLE, tuning files with the chosen setting: {report.one_line(tuning.total(matrix, best, tune))}")
        rows, fold_parts = [], []
        for f in held:
            fr = score(preps[f], cand.settings, cand.threshold)
            outputs.write(f, fr)
            fold_parts.append(fr.scores)
            rows.append(report.row(names[f], fr.scores))
        held_parts += fold_parts
        rows.append(report.row(f"HELD-OUT total, {title}", report.summed(fold_parts)))
        lines += report.table(rows)
    everything = list(range(len(preps)))
    best_all = tuning.select(matrix, everything, max_far)
    lines.append("")
    lines.append("HELD-OUT, every file scored once by a setting chosen without it:")
    lines += report.table([report.row(f"all {len(preps)} files (counts summed)", report.summed(held_parts))])
    reference = report.one_line(tuning.total(matrix, best_all, everything))
    lines.append(f"IN-SAMPLE reference, one setting chosen on all {len(preps)} files ({cands[best_all].label}): {reference}")
    return lines + outputs.lines()


def _groups(groups: Sequence[str], idx: list[int]) -> str:
    counts: dict[str, int] = {}
    for i in idx:
        counts[groups[i]] = counts.get(groups[i], 0) + 1
    return ", ".join(f"{g} {n}" for g, n in counts.items())
