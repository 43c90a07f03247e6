"""The diagnosis in a replay (``edgetwin replay --patterns FILE``): each alarm episode of the replay
is matched against a fault-pattern library exactly as the live diagnoser does
(``edge.twin.diagnosis.live.AssetDiagnoser.step``, fed row by row with the replay's alarm).

The sensor noise of each signal is taken from the training rows (the standard deviation of the
first differences over sqrt(2)); the tick is the median time step of the file. Adds the columns
``diagnosis`` and ``diagnosis_confidence`` to the output CSV and the named episodes to the plot.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edge.replay.metrics import SignalTable
from edge.replay.run import ReplayResult
from edge.twin.diagnosis.library import PatternFile
from edge.twin.diagnosis.live import AssetDiagnoser, Settings
from edge.twin.diagnosis.match import DEFAULT_MIN_SIMILARITY


def diagnose(table: SignalTable, result: ReplayResult, patterns: Path, min_similarity: float = DEFAULT_MIN_SIMILARITY) -> tuple[list[str], np.ndarray]:
    """(fault name per row, "" when normal; confidence per row) of *result*'s alarm episodes."""
    cols = [table.names.index(n) for n in result.names]
    values = table.values[:, cols]
    train = values[: max(2, result.train_rows)]
    noise = tuple(max(float(np.nanstd(np.diff(train[:, i]))) / math.sqrt(2.0), 1e-9) if len(train) > 2 else 1e-9 for i in range(len(cols)))
    steps = np.diff(table.times_s)
    tick = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 1.0
    settings = Settings("replay", tuple(result.names), tuple(result.names), noise, min_similarity, 300.0, 60.0)
    diag = AssetDiagnoser(settings, tick, PatternFile(patterns, patterns.stem))
    faults, conf = [], np.zeros(len(values))
    no_flags = ("",) * len(cols)
    for t in range(len(values)):
        d = diag.step(float(table.times_s[t]), tuple(float(v) for v in values[t]), no_flags, bool(result.alarm[t]))
        faults.append(d.fault)
        conf[t] = d.confidence
    return faults, conf
