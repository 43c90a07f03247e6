"""PNG of a replay: per signal measured / estimate / forecast, then the detector score and alarms.

True anomalies (the ``anomaly`` label, when present) are shaded red in every panel, alarms are
shaded orange in the score panel, and the training window is shaded grey. Needs matplotlib
(``pip install edgetwin[plot]``); imported only when a plot is asked for.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from edge.replay.metrics import SignalTable
from edge.replay.run import DetectorSettings, ReplayResult

MAX_SIGNAL_PANELS = 8


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where *mask* is true."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _shade(ax, x: np.ndarray, mask: np.ndarray, color: str, alpha: float, label: str | None = None) -> None:
    for i, (a, b) in enumerate(_spans(mask)):
        ax.axvspan(x[a], x[min(b, len(x) - 1)], color=color, alpha=alpha, lw=0, label=label if i == 0 else None)


def render(path: str | Path, table: SignalTable, result: ReplayResult, settings: DetectorSettings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    datetimes = not all(_is_number(s) for s in table.timestamps[:3])
    x = np.array([datetime.fromtimestamp(t) for t in table.times_s]) if datetimes else table.times_s
    names = result.names[:MAX_SIGNAL_PANELS]
    truth = table.labels.get("anomaly")
    train = np.arange(len(x)) < result.train_rows
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(13, 1.7 * len(names) + 3.2), sharex=True, gridspec_kw={"height_ratios": [1] * len(names) + [1.8]})
    cols = [table.names.index(nm) for nm in names]
    for i, (ax, nm, j) in enumerate(zip(axes, names, cols)):
        _shade(ax, x, train, "0.85", 0.6, "training window" if i == 0 else None)
        if truth is not None:
            _shade(ax, x, truth, "tab:red", 0.12, "true anomaly" if i == 0 else None)
        ax.plot(x, table.values[:, j], color="0.25", lw=0.8, label="measured")
        ax.plot(x, result.estimate[:, i], color="tab:blue", lw=1.0, label="estimate")
        ax.plot(x, result.forecast[:, i], color="tab:green", lw=0.8, ls="--", label=f"forecast ({result.horizon} ticks ahead)")
        ax.set_ylabel(nm, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.margins(x=0)
    axes[0].legend(loc="upper left", fontsize=7, ncol=5, framealpha=0.9)
    if len(result.names) > len(names):
        axes[0].set_title(f"first {len(names)} of {len(result.names)} signals", fontsize=8, loc="right")
    ax = axes[-1]
    _shade(ax, x, train, "0.85", 0.6)
    if truth is not None:
        _shade(ax, x, truth, "tab:red", 0.12, "true anomaly")
    _shade(ax, x, result.alarm, "tab:orange", 0.35, "alarm")
    if result.diagnosis is not None:  # the named fault of each episode, where it is first named
        for a, b in _spans(np.array([bool(f) for f in result.diagnosis])):
            names = [f for f in result.diagnosis[a:b] if f]
            name = max(set(names), key=names.count)
            conf = result.extra.get("diagnosis_confidence")
            text = f"{name} ({float(np.max(conf[a:b])):.2f})" if conf is not None else name
            ax.annotate(text, (x[a], 0.97), xycoords=("data", "axes fraction"), fontsize=7, va="top", color="tab:brown")
    ax.plot(x, result.score, color="k", lw=0.9, label=f"{settings.kind} score")
    ax.axhline(settings.on, color="tab:red", lw=1, ls="--", label=f"on {settings.on:g}")
    ax.axhline(settings.on * settings.release, color="tab:purple", lw=0.8, ls=":", label=f"off {settings.on * settings.release:g}")
    finite = result.score[np.isfinite(result.score)]
    if finite.size and finite.max() > 20 * settings.on:  # a big fault would flatten the thresholds: log scale
        ax.set_yscale("log")
        ax.set_ylim(max(float(np.quantile(finite, 0.01)), settings.on * 1e-2), finite.max() * 2)
    elif finite.size:
        ax.set_ylim(0, max(float(finite.max()) * 1.1, settings.on * 1.5))
    ax.margins(x=0)
    ax.set_ylabel("score", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper left", fontsize=7, ncol=6, framealpha=0.9)
    if datetimes:
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.set_xlabel(f"time ({x[0]:%Y-%m-%d})", fontsize=8)
    else:
        ax.set_xlabel(table.time_column, fontsize=8)
    fig.suptitle(f"{Path(table.path).name}: replay with the {settings.kind} detector", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
