"""Synthetic recordings for the replay tests: correlated signals, an optional pressure-sensor bias."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def recording(path: Path, seed: int = 1, rows: int = 600, fault: tuple[int, int] | None = (450, 520), bias: float = 0.8, labels: bool = True) -> Path:
    """flow, pressure and current follow one load cycle; between the *fault* rows the pressure
    reads *bias* too high (the correlation breaks). Labels mark the fault and its two edges."""
    rng = np.random.default_rng(seed)
    load = 10 + 0.5 * np.sin(2 * np.pi * np.arange(rows) / 150 + seed) + rng.normal(0, 0.05, rows)
    flow = load + rng.normal(0, 0.05, rows)
    pressure = 0.3 * load + rng.normal(0, 0.03, rows)
    current = 0.1 * load + rng.normal(0, 0.01, rows)
    anomaly = np.zeros(rows, int)
    cp = np.zeros(rows, int)
    if fault is not None:
        anomaly[fault[0] : fault[1]] = 1
        cp[[fault[0], min(fault[1], rows - 1)]] = 1
    pressure = pressure + bias * anomaly
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_s", "flow", "pressure", "current", *(["anomaly", "changepoint"] if labels else [])])
        for i in range(rows):
            w.writerow([f"{i:.1f}", f"{flow[i]:.5f}", f"{pressure[i]:.5f}", f"{current[i]:.5f}", *([anomaly[i], cp[i]] if labels else [])])
    return path
