"""Choosing the detector setting on tuning files only: grid, selection, folds, groups, and the
--split / --logo command."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.replay import tuning
from edge.replay.batch import Threshold
from edge.replay.metrics import Confusion, Scores
from edge.replay.run import DetectorSettings
from tests.edge.replay.recordings import recording


def test_parse_grid() -> None:
    assert tuning.parse_grid("on=1,1.5; smoothing=0.2 ;components=2,3") == {"on": (1.0, 1.5), "smoothing": (0.2,), "components": (2.0, 3.0)}
    for bad, message in [
        ("on", "is not key=v1"),
        ("speed=1", "is not key=v1"),
        ("on=a,b", "is not a list of numbers"),
        ("on=", "one or more finite numbers"),
        ("on=nan", "one or more finite numbers"),
        ("k=1.5", "whole numbers"),
        ("on=1;on=2", "appears twice"),
        (" ; ", "empty"),
    ]:
        with pytest.raises(ValueError, match=message):
            tuning.parse_grid(bad)


def test_candidates_vary_only_what_the_user_did_not_fix() -> None:
    base, th = DetectorSettings(), Threshold()
    grid = tuning.DEFAULT_GRID["pca"]
    assert len(tuning.candidates(base, th, grid)) == 4 * 3 * 3
    fixed = tuning.candidates(base, th, grid, fixed=["on"])
    assert len(fixed) == 9 and all(c.threshold.on is None for c in fixed)
    with_components = tuning.candidates(DetectorSettings(components=2), th, grid)
    assert len(with_components) == 12 and all(c.settings.explained == 0.95 and c.settings.components == 2 for c in with_components)
    cands = tuning.candidates(base, th, {"on": (2.0,), "margin": (1.0, 3.0), "components": (1.0, 2.0), "window": (3.0,), "k": (2.0,)})
    assert [(c.threshold.on, c.settings.components, c.settings.k, c.settings.window) for c in cands] == [(2.0, 1, 2, 3), (2.0, 2, 2, 3)]
    assert cands[0].label == "on=2 components=1 window=3 k=2"
    ewma = tuning.candidates(DetectorSettings(kind="ewma"), th, tuning.DEFAULT_GRID["ewma"])
    assert {(c.threshold.margin, c.settings.smoothing) for c in ewma} == {(m, s) for m in (1.5, 2, 3, 4) for s in (0.05, 0.1, 0.2, 0.4)}
    assert "on 3 x the 99.5 % quantile" in tuning.describe(ewma[-5])


def _scores(tp: int, fp: int, fn: int, tn: int) -> Scores:
    s = Scores()
    s.confusion += Confusion(tp, fp, fn, tn)
    s.files = 1
    return s


def test_select_best_f1_within_the_far_bound_on_the_given_files_only() -> None:
    # candidates x files; file 2 would favour candidate 0, files 0-1 favour candidate 1
    matrix = [
        [_scores(5, 0, 5, 90), _scores(5, 0, 5, 90), _scores(10, 0, 0, 90)],
        [_scores(9, 5, 1, 85), _scores(9, 5, 1, 85), _scores(0, 0, 10, 90)],
        [_scores(10, 50, 0, 40), _scores(10, 50, 0, 40), _scores(10, 50, 0, 40)],  # best F1 nowhere within 10 % FAR
    ]
    assert tuning.select(matrix, [0, 1], max_far=10) == 1
    assert tuning.select(matrix, [2], max_far=10) == 0
    assert tuning.select(matrix, [0, 1], max_far=3) == 0  # candidate 1's FAR 5.6 % is out
    assert tuning.select(matrix, [0, 1], max_far=100) == 1  # F1 0.78 beats 0.29 of candidate 2
    assert tuning.select([matrix[2], matrix[2]], [0], max_far=1) == 0  # none within: the lowest FAR, first on ties
    total = tuning.total(matrix, 1, [0, 2])
    assert (total.confusion.tp, total.confusion.fn, total.files) == (9, 11, 2)


def test_folds_and_groups() -> None:
    groups = ["v1", "v1", "v1", "v2", "v2", "o", "o", "o", "o"]
    (n1, a, b), (n2, b2, a2) = tuning.two_folds(groups)
    assert (a, b) == ([0, 2, 3, 5, 7], [1, 4, 6, 8]) and (a2, b2) == (a, b) and (n1, n2) == ("fold 1", "fold 2")
    shuffled = tuning.two_folds(groups, seed=3)
    assert shuffled == tuning.two_folds(groups, seed=3)
    for _, tune, held in shuffled:
        assert sorted(tune + held) == list(range(9)) and {groups[i] for i in held} == {"v1", "v2", "o"}
    logo = tuning.logo_folds(groups)
    assert [(name, held) for name, _, held in logo] == [("group v1", [0, 1, 2]), ("group v2", [3, 4]), ("group o", [5, 6, 7, 8])]
    assert all(not set(tune) & set(held) for _, tune, held in logo)
    with pytest.raises(ValueError, match="at least two groups"):
        tuning.logo_folds(["a", "a"])
    assert tuning.group_of(Path("data/valve1/3.csv"), None) == "valve1"
    rules = tuning.parse_groups("valve*/*=valves; other/1?.csv=late ;*=rest")
    assert [tuning.group_of(Path(p), rules) for p in ("d/valve2/0.csv", "d/other/12.csv", "d/other/2.csv")] == ["valves", "late", "rest"]
    with pytest.raises(ValueError, match="no --groups pattern matches it"):
        tuning.group_of(Path("x/y.csv"), tuning.parse_groups("valve*/*=v"))
    with pytest.raises(ValueError, match="is not pattern=group"):
        tuning.parse_groups("valve1")


def _files(tmp_path: Path, labels_of_a: bool = True) -> list[Path]:
    files = [recording(tmp_path / "a" / f"r{i}.csv", seed=i, labels=True) for i in (1, 2)]
    files += [recording(tmp_path / "b" / f"r{i}.csv", seed=i, fault=(420 + 20 * i, 560), bias=0.3) for i in (3, 4)]
    if not labels_of_a:  # the held-out group's labels made nonsense: must not change what is chosen for it
        for f in files[:2]:
            text = f.read_text().splitlines()
            f.write_text("\n".join([text[0], *(re.sub(r",\d,\d$", ",1,0", row) for row in text[1:])]) + "\n")
    return files


def _chosen(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(group \w+|fold \d): .*\n  chosen: (.*)$", text, flags=re.M))


GRID = "on=1,3;smoothing=0.2,0.5"


def test_logo_chooses_on_the_other_groups_and_labels_held_out_figures(tmp_path: Path, capsys) -> None:
    files = _files(tmp_path / "real")
    out = tmp_path / "out"
    assert main(["replay", *map(str, files), "--logo", "--grid", GRID, "--no-plot", "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "leave one group out: 2 folds, 4 candidate settings" in text
    assert "group a: tuned on 2 files (b 2), held out 2 (a 2)" in text and "group b: tuned on 2 files (a 2), held out 2 (b 2)" in text
    assert text.count("IN-SAMPLE, tuning files with the chosen setting") == 2 and "HELD-OUT total, group a" in text
    assert "HELD-OUT, every file scored once by a setting chosen without it:" in text and "IN-SAMPLE reference, one setting chosen on all 4 files" in text
    assert len(list(out.iterdir())) == 4  # each file's outputs, from the fold that held it out
    # the setting chosen for group a never sees group a's labels
    files2 = _files(tmp_path / "scrambled", labels_of_a=False)
    assert main(["replay", *map(str, files2), "--logo", "--grid", GRID, "--no-plot", "--out-dir", str(out)]) == 0
    text2 = capsys.readouterr().out
    assert _chosen(text2)["group a"] == _chosen(text)["group a"]


def test_held_out_rows_match_a_plain_replay_with_the_chosen_setting(tmp_path: Path, capsys) -> None:
    files = _files(tmp_path)
    assert main(["replay", *map(str, files), "--split", "--grid", "on=1.5", "--smoothing", "0.5", "--no-plot", "--out-dir", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "two-fold split: 2 folds, 1 candidate settings" in text and "fold 1: tuned on 2 files (a 1, b 1), held out 2 (a 1, b 1)" in text
    held = re.search(r"^  a/r1\.csv \(a\)\s+(.*)$", text, flags=re.M)
    assert held is not None
    assert main(["replay", str(files[0]), "--on", "1.5", "--smoothing", "0.5", "--no-plot", "--out-dir", str(tmp_path / "p")]) == 0
    single = capsys.readouterr().out
    tp, fp, fn, tn = map(int, held.group(1).split()[1:5])
    assert f"(TP {tp}, FP {fp}, FN {fn}, TN {tn})" in single


def test_groups_option_maps_files_to_groups(tmp_path: Path, capsys) -> None:
    files = _files(tmp_path)
    args = ["replay", *map(str, files), "--logo", "--grid", "on=1.5", "--no-plot", "--out-dir", str(tmp_path / "o")]
    assert main([*args, "--groups", "*/r1.csv=first; *=rest"]) == 0
    text = capsys.readouterr().out
    assert "group first: tuned on 3 files (rest 3), held out 1 (first 1)" in text and "group rest: tuned on 1 files" in text
    assert main([*args, "--groups", "a/*=a"]) == 1
    assert "b/r3.csv: no --groups pattern matches it" in capsys.readouterr().err


def test_tuning_needs_labels(tmp_path: Path, capsys) -> None:
    files = [recording(tmp_path / g / "r.csv", seed=i, labels=False) for i, g in enumerate("ab")]
    assert main(["replay", *map(str, files), "--logo", "--no-plot", "--out-dir", str(tmp_path)]) == 1
    assert "no 'anomaly' or 'changepoint' label column, so it cannot be used to choose a setting" in capsys.readouterr().err


def test_default_grids_are_valid_settings() -> None:
    for kind, grid in tuning.DEFAULT_GRID.items():
        cands = tuning.candidates(DetectorSettings(kind=kind), Threshold(), grid)
        assert len({c.label for c in cands}) == len(cands) == int(np.prod([len(v) for v in grid.values()]))
