"""`edgetwin replay` end to end: a synthetic recording with a known fault, and a SKAB file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge.cli import main
from edge.replay.metrics import read_signal_csv
from edge.replay.run import DetectorSettings, TwinSettings, replay_file, run_twin
from edge.twin.detector import pca_features
from tests.skab_data import SKAB, require

ROOT = Path(__file__).resolve().parents[3]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_csv(path: Path, sep: str = ",", rows: int = 700, fault: tuple[int, int] = (500, 600)) -> None:
    """Three correlated signals (flow, pressure, current) and a drifting temperature; between the
    fault rows the pressure reads 0.8 too high (a sensor bias that breaks the correlation)."""
    rng = np.random.default_rng(42)
    load = 10 + 0.5 * np.sin(2 * np.pi * np.arange(rows) / 150) + rng.normal(0, 0.05, rows)  # a duty cycle
    flow = load + rng.normal(0, 0.05, rows)
    pressure = 0.3 * load + rng.normal(0, 0.03, rows)
    current = 0.1 * load + rng.normal(0, 0.01, rows)
    temp = 40 + np.linspace(0, 8, rows) + rng.normal(0, 0.05, rows)
    anomaly = np.zeros(rows, int)
    anomaly[fault[0] : fault[1]] = 1
    pressure = pressure + 0.8 * anomaly
    cp = np.zeros(rows, int)
    cp[list(fault)] = 1
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=sep)
        w.writerow(["time_s", "flow", "pressure", "current", "temp", "anomaly", "changepoint"])
        for i in range(rows):
            w.writerow([f"{i * 0.5:.1f}", f"{flow[i]:.5f}", f"{pressure[i]:.5f}", f"{current[i]:.5f}", f"{temp[i]:.4f}", anomaly[i], cp[i]])


def test_replay_cli_on_synthetic_recording(tmp_path: Path, capsys) -> None:
    src = tmp_path / "rec.csv"
    synthetic_csv(src, sep="\t")
    out, png = tmp_path / "out.csv", tmp_path / "out.png"
    rc = main(["replay", str(src), "--out", str(out), "--plot", str(png), "--rate-only", "temp"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "700 rows, 4 signals" in text and "alarm on " in text and "binary: F1" in text and "changepoint (NAB)" in text
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 700
    assert {"flow.measured", "flow.estimate", "flow.forecast", "flow.residual", "score", "alarm", "t2", "q", "anomaly"} <= set(rows[0])
    alarm = np.array([int(r["alarm"]) for r in rows])
    assert alarm[510:600].mean() > 0.9  # the bias is caught within a few ticks
    assert alarm[400:500].sum() == 0 and alarm[640:].sum() == 0  # and nothing before, released after
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000


def test_replay_without_labels_prints_no_metrics(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "work").mkdir()
    src = tmp_path / "plain.csv"
    synthetic_csv(src)
    lines = src.read_text().splitlines()
    src.write_text("\n".join(",".join(line.split(",")[:5]) for line in lines) + "\n")
    monkeypatch.chdir(tmp_path / "work")
    assert main(["replay", str(src), "--no-plot", "--detector", "cusum", "--on", "8"]) == 0
    text = capsys.readouterr().out
    assert "detector cusum" in text and "binary" not in text
    assert (tmp_path / "work" / "plain.replay.csv").exists()  # in the current directory, not beside the input
    assert not (tmp_path / "plain.replay.csv").exists() and not (tmp_path / "work" / "plain.replay.png").exists()


def test_replay_reports_bad_input_without_a_traceback(tmp_path: Path, capsys) -> None:
    src = tmp_path / "short.csv"
    synthetic_csv(src, rows=100, fault=(60, 80))
    assert main(["replay", str(src), "--no-plot"]) == 1
    assert "short.csv: need more than train_rows = 400 rows, got 100" in capsys.readouterr().err
    assert main(["replay", str(src), "--no-plot", "--config", "x.toml"]) == 2


def test_twin_estimates_follow_the_signal_and_forecast_is_causal(tmp_path: Path) -> None:
    src = tmp_path / "rec.csv"
    synthetic_csv(src)
    table = read_signal_csv(src)
    tw = TwinSettings.from_training(table.values[:400], horizon=5)
    est, _, fc = run_twin(table.values, tw)
    assert np.all(np.isnan(fc[:5])) and not np.isnan(fc[5:]).any()
    assert np.nanstd(est - table.values) < np.nanstd(np.diff(table.values, axis=0))
    # changing the future does not change the past
    later = table.values.copy()
    later[300:] += 100
    est2, _, fc2 = run_twin(later, tw)
    assert np.array_equal(est[:300], est2[:300]) and np.array_equal(fc[:300], fc2[:300], equal_nan=True)


def test_pca_features_are_levels_then_differences() -> None:
    v = np.array([[1.0, 10.0], [2.0, 30.0], [4.0, 60.0]])
    assert pca_features(v, True, (1,)).tolist() == [[1, 0, 0], [2, 1, 20], [4, 2, 30]]
    assert pca_features(v, False, (1,)).tolist() == [[1, 0], [2, 20], [4, 30]]


def test_replay_skab_file(tmp_path: Path) -> None:
    """valve1/3.csv: closing the inlet valve. The alarm must cover most of the fault and stay quiet before it."""
    require(SKAB / "valve1" / "3.csv")
    settings = DetectorSettings(rate_only=("Temperature", "Thermocouple"))
    png = tmp_path / "v3.png"
    table, result, scores = replay_file(SKAB / "valve1" / "3.csv", settings, out=tmp_path / "v3.csv", plot=png)
    assert len(table.names) == 8 and scores is not None
    c = scores.confusion
    assert c.tp + c.fp + c.fn + c.tn == len(table.times_s) - 400
    assert c.f1 > 0.8 and c.far < 5
    first_fault = int(np.argmax(table.labels["anomaly"]))
    assert not result.alarm[:first_fault].any()
    assert png.read_bytes()[:8] == PNG_MAGIC
