"""`edgetwin replay` on several files, with separate training files, --components and the default
thresholds of the residual detectors."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import kernels
from edge.cli import main
from edge.replay import batch
from edge.replay.run import DetectorSettings, run_detector
from edge.replay.table import read_signal_csv
from edge.twin.detector import pca_features
from tests.edge.replay.recordings import recording
from tests.skab_data import SKAB, require


def _table_rows(text: str) -> dict[str, list[str]]:
    """Rows of a printed metrics table, keyed by their label."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s+(\S.*?)\s{2,}(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", line)
        if m:
            out[m.group(1)] = list(m.groups()[1:])
    return out


def test_train_file_fits_and_every_test_row_is_scored(tmp_path: Path, capsys) -> None:
    normal = recording(tmp_path / "normal.csv", seed=9, fault=None)
    tests = [recording(tmp_path / f"t{i}.csv", seed=i) for i in (1, 2)]
    out = tmp_path / "out"
    assert main(["replay", "--train", str(normal), *map(str, tests), "--no-plot", "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"fitted on 600 rows of {normal} (scored: every row)" in text
    rows = _table_rows(text)
    per_file = [v for k, v in rows.items() if k.startswith("t")]
    total = rows["all 2 files (counts summed)"]
    assert [r[0] for r in per_file] == ["600", "600"]  # no row of a test file is spent on training
    for col in range(1, 5):  # summed counts, not averaged ratios
        assert int(total[col]) == sum(int(r[col]) for r in per_file)
    assert float(total[5]) > 0.8  # the bias is caught by the detector fitted on the normal file
    assert sorted(p.name for p in out.iterdir()) == ["t1.replay.csv", "t2.replay.csv"]
    assert len(read_signal_csv(out / "t1.replay.csv", columns=["score"]).times_s) == 600


def test_training_rows_are_laid_out_with_gaps(tmp_path: Path) -> None:
    """Two training files and a test file: the detector sees [train 1, gap, train 2, gap, test]."""
    t1, t2 = (read_signal_csv(recording(tmp_path / f"n{i}.csv", seed=i, rows=300, fault=None)) for i in (7, 8))
    test = read_signal_csv(recording(tmp_path / "test.csv"))
    training = batch.load_training([t1, t2])
    prep = batch.prepare(test, 400, training)
    assert prep.fit_rows == prep.start == 602 and prep.skip == 0 and prep.values.shape == (1202, 3)
    assert np.isnan(prep.values[[300, 601]]).all() and not np.isnan(prep.values[602:]).any()
    assert np.isnan(prep.residual[[0, 300, 301, 601, 602]]).all()  # each block's first innovation is dropped
    np.testing.assert_array_equal(prep.values[602:], test.values)
    fr = batch.score(prep, DetectorSettings(), batch.Threshold())
    assert fr.result.alarm.shape == (600,) and fr.scores is not None and fr.scores.confusion.tn + fr.scores.confusion.fp == 530


def test_columns_of_test_files_must_match_the_training_files(tmp_path: Path, capsys) -> None:
    normal = recording(tmp_path / "normal.csv", fault=None)
    other = tmp_path / "other.csv"
    other.write_text("time_s,flow,speed\n0,1,2\n1,1,2\n")
    assert main(["replay", "--train", str(normal), str(other), "--no-plot", "--out-dir", str(tmp_path)]) == 1
    assert f"{other}:1: no column(s) ['pressure', 'current']" in capsys.readouterr().err
    bad_train = tmp_path / "bad_train.csv"
    bad_train.write_text("time_s,flow\n0,?\n")
    bad_test = tmp_path / "bad_test.csv"
    bad_test.write_text("time_s,flow\n0,1,2\n")
    assert main(["replay", "--train", str(bad_train), str(bad_test), str(normal), "--no-plot", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err  # the training file's and the test files' problems, together
    assert f"{bad_train}:2: column 'flow': '?' is not a number" in err and f"{bad_test}:2: expected 2 fields, got 3" in err
    assert "Traceback" not in err


def test_several_files_without_train_use_each_files_first_rows(tmp_path: Path, capsys) -> None:
    a, b = recording(tmp_path / "a" / "rec.csv", seed=1), recording(tmp_path / "b" / "rec.csv", seed=2)
    out = tmp_path / "out"
    assert main(["replay", str(a), str(b), "--out-dir", str(out), "--no-plot"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert rows["all 2 files (counts summed)"][0] == "400"  # 2 x (600 - 400 training rows)
    assert sorted(p.name for p in out.iterdir()) == ["a-rec.replay.csv", "b-rec.replay.csv"]  # same stem: the folder is added


def test_out_and_plot_name_a_single_file_only(tmp_path: Path, capsys) -> None:
    a, b = recording(tmp_path / "a.csv"), recording(tmp_path / "b.csv")
    assert main(["replay", str(a), str(b), "--out", str(tmp_path / "x.csv")]) == 2
    assert "--out-dir" in capsys.readouterr().err
    assert main(["replay", str(a), "--split"]) == 2
    assert main(["replay", str(a), "--grid", "on=1"]) == 2


def test_components_replace_explained(tmp_path: Path, capsys) -> None:
    table = read_signal_csv(recording(tmp_path / "rec.csv"))

    def t2(**kw: object) -> np.ndarray:
        return run_detector(table.values, None, DetectorSettings(**kw), table.names)[2]["t2"]  # type: ignore[arg-type]

    # explained 0.5 keeps one component; components=3 keeps three whatever explained says
    np.testing.assert_array_equal(t2(components=3, explained=0.5), t2(components=3, explained=0.99))
    np.testing.assert_array_equal(t2(components=1, explained=0.99), t2(explained=0.01))
    assert not np.allclose(t2(components=3, explained=0.5), t2(explained=0.5), equal_nan=True)
    X = pca_features(table.values, True, ())
    assert kernels.PcaDetector.fit(X[:400], DetectorSettings().policy, explained=0.01).model.components == 1
    with pytest.raises(ValueError, match="components must be >= 1"):
        DetectorSettings(components=0)
    # 3 levels + 3 differences = 6 features: 5 components at most, said so rather than clamped
    assert main(["replay", str(tmp_path / "rec.csv"), "--components", "6", "--no-plot", "--out-dir", str(tmp_path)]) == 1
    assert "components 6: the PCA has 6 features, so at most 5 components" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "rec.csv"), "--components", "5", "--no-plot", "--out-dir", str(tmp_path)]) == 0


@pytest.mark.parametrize("kind", ["ewma", "cusum"])
def test_residual_detectors_default_to_a_threshold_from_the_training_rows(tmp_path: Path, capsys, kind: str) -> None:
    """On a normal file the default alarms on few rows; the old fixed 1.25 flagged most of them."""
    normal = recording(tmp_path / "normal.csv", seed=5, rows=900, fault=None)
    prep = batch.prepare(read_signal_csv(normal), 400)
    settings = DetectorSettings(kind=kind)
    derived = batch.score(prep, settings, batch.Threshold())
    fixed = batch.score(prep, settings, batch.Threshold(on=1.25))
    assert derived.scores is not None and fixed.scores is not None
    assert derived.scores.confusion.far < 2 and fixed.scores.confusion.far > 30, (derived.scores.confusion, fixed.scores.confusion)
    # the rule: margin x the quantile of the detector's own score over the training rows
    probe, _, _ = run_detector(prep.values, prep.residual, replace(settings, on=1e300), prep.names)
    assert derived.settings.on == pytest.approx(2.0 * np.quantile(probe[1:400], 0.995))
    assert batch.resolve_on(prep, settings, batch.Threshold(quantile=1.0, margin=1.0)) == pytest.approx(np.max(probe[1:400]))
    assert batch.resolve_on(prep, settings, batch.Threshold(on=7.0)) == 7.0
    assert batch.resolve_on(prep, DetectorSettings(), batch.Threshold()) == batch.PCA_ON
    assert main(["replay", str(normal), "--detector", kind, "--no-plot", "--out-dir", str(tmp_path)]) == 0
    assert "on 2 x the 99.5 % quantile of the training score = " in capsys.readouterr().out


@pytest.mark.slow  # 9,405 rows through the twin: ~3 s compiled, ~45 s with the NumPy reference on a busy machine
def test_residual_detector_defaults_on_skab_anomaly_free(tmp_path: Path) -> None:
    """SKAB's 2.6 h anomaly-free run, fitted on its first 400 rows: few false alarms by default."""
    f = SKAB / "anomaly-free" / "anomaly-free.csv"
    require(f)
    prep = batch.prepare(read_signal_csv(f), 400)
    far = {k: 100 * batch.score(prep, DetectorSettings(kind=k), batch.Threshold()).result.alarm[400:].mean() for k in ("ewma", "cusum")}
    assert far["ewma"] < 2 and far["cusum"] < 7, far  # measured 0.87 % and 5.00 %


def test_output_and_display_names() -> None:
    paths = [Path("d/valve1/1.csv"), Path("d/other/1.csv"), Path("d/other/2.csv")]
    assert batch.output_names(paths) == ["valve1-1", "other-1", "2"]
    assert batch.display_names(paths) == ["valve1/1.csv", "other/1.csv", "other/2.csv"]
    assert batch.display_names([Path("a/x/1.csv"), Path("b/x/1.csv")]) == ["a/x/1.csv", "b/x/1.csv"]
