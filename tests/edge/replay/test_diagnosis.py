"""``edgetwin replay --patterns``: the replay's alarm episodes are named from a pattern library."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.twin.diagnosis.library import Library, Pattern, save
from edge.twin.diagnosis.signature import Signature


def _recording(path: Path) -> None:
    """1,200 rows at 1 s: flow, current and vibration; from row 800 vibration and current climb."""
    rng = np.random.default_rng(2)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t", "flow", "current", "vibration"])
        for k in range(1200):
            wear = max(0, k - 800) / 60.0
            w.writerow([k, 20 + 0.2 * rng.standard_normal(), 5 + 0.05 * rng.standard_normal() + 0.2 * wear, 1.5 + 0.03 * rng.standard_normal() + 0.5 * wear])


def _library(path: Path, with_wear: bool) -> None:
    signals = ("flow", "current", "vibration")
    lib = Library("skid").with_pattern(
        Pattern("meter_dead", signatures=(Signature(signals, (-50.0, 0.0, 0.0), (-5.0, 0.0, 0.0), (-2.0, 0.0, 0.0), ("", "", "")),))
    )
    if with_wear:
        lib = lib.with_pattern(
            Pattern("wear", action="grease it", signatures=(Signature(signals, (0.0, 8.0, 30.0), (0.0, 3.0, 15.0), (0.0, 0.0, 0.0), ("", "", "")),))
        )
    save(lib, path)


@pytest.mark.parametrize(("with_wear", "expected"), [(True, "wear"), (False, "unknown")])
def test_replay_names_the_episode(tmp_path: Path, with_wear: bool, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    data, lib, out = tmp_path / "rec.csv", tmp_path / "lib.json", tmp_path / "out.csv"
    _recording(data)
    _library(lib, with_wear)
    assert main(["replay", str(data), "--patterns", str(lib), "--out", str(out), "--no-plot", "--train-rows", "400"]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    named = {r["diagnosis"] for r in rows[850:] if r["diagnosis"]}
    assert named == {expected}
    assert all(r["diagnosis"] == "" for r in rows[:700])
    assert float(rows[-1]["diagnosis_confidence"]) > (0.7 if with_wear else -1)


def test_an_unreadable_library_is_an_error_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, lib = tmp_path / "rec.csv", tmp_path / "lib.json"
    _recording(data)
    lib.write_text("{")
    assert main(["replay", str(data), "--patterns", str(lib), "--no-plot", "--out", str(tmp_path / "o.csv")]) == 1
    assert "lib.json:1: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
