"""SKAB-protocol metrics on hand-computed cases (the CSV reader: test_table.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.replay.metrics import Confusion, NabCounts, Scores, nab_counts, nab_windows, predicted_changepoints


def test_confusion_hand_counts() -> None:
    truth = [1, 1, 0, 0, 1, 0, 0]
    pred = [1, 0, 0, 1, 1, 0, 1]
    c = Confusion.of(np.array(truth), np.array(pred))
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 2, 1, 2)
    assert c.f1 == pytest.approx(2 / (2 + 3 / 2))
    assert c.far == pytest.approx(50.0)
    assert c.mar == pytest.approx(100 / 3)


def test_confusion_sums_before_ratios() -> None:
    """Files are summed as counts, not averaged as ratios."""
    total = Confusion()
    total += Confusion.of(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # F1 1
    total += Confusion.of(np.array([1, 0]), np.array([0, 1]))  # F1 0
    assert (total.tp, total.fp, total.fn, total.tn) == (4, 1, 1, 0)
    assert total.f1 == pytest.approx(4 / 5)


def test_predicted_changepoints_start_with_first_prediction() -> None:
    assert predicted_changepoints(np.array([1, 1, 0, 0, 1])).tolist() == [True, False, True, False, True]
    assert predicted_changepoints(np.array([0, 0, 1])).tolist() == [False, False, True]


def test_overlapping_windows_start_where_the_previous_ends() -> None:
    assert nab_windows([100.0, 0.0, 30.0], 60.0) == [(0.0, 60.0), (60.0, 90.0), (100.0, 160.0)]


def _standard(index: int) -> float:
    """Standard profile score of a detection at grid index *index* (0..999), written out."""
    x = -math.pi / 2 + index * math.pi / 999
    return 0.555 * (-math.tanh(x) / math.tanh(math.pi / 2)) + 0.555 - 0.11


def test_nab_window_example() -> None:
    """One changepoint at t=50 s: window [50, 110]. The prediction switches on at 80 s (half way,
    grid index 500) and off at 150 s (outside every window: one false positive)."""
    t = np.arange(200.0)
    truth = np.zeros(200, bool)
    truth[50] = True
    pred = (t >= 80) & (t < 150)
    counts = nab_counts(t, truth, pred)
    assert (counts.windows, counts.missed, counts.false_positives, counts.positions) == (1, 0, 1, [500])
    raw = _standard(500) - 0.11
    assert counts.raw("standard") == pytest.approx(raw, rel=1e-12)
    assert counts.score("standard") == pytest.approx(100 * (raw + 1) / 2, rel=1e-12)
    assert _standard(500) == pytest.approx(0.44405, abs=1e-5)  # tanh(x) ~ x near the window's middle


def test_nab_extremes_and_profiles() -> None:
    t = np.arange(100.0)
    truth = np.zeros(100, bool)
    truth[[10, 70]] = True
    on_time = nab_counts(t, truth, t >= 10)  # one switch, at the first window's start; none in the second
    assert on_time.missed == 1 and on_time.positions == [0]
    never = nab_counts(t, truth, np.zeros(100, bool))
    assert never.score("standard") == 0.0 and never.score("low_fn") == 0.0
    perfect = NabCounts(windows=2, positions=[0, 0])
    for profile in ("standard", "low_fp", "low_fn"):
        assert perfect.score(profile) == pytest.approx(100.0)
    fp_only = NabCounts(windows=1, missed=1, false_positives=1)
    assert fp_only.score("low_fp") == pytest.approx(100 * -0.22 / 2)
    assert fp_only.score("low_fn") == pytest.approx(100 * -0.11 / 3)


def test_scores_lines_report_counts() -> None:
    s = Scores()
    t = np.arange(10.0)
    s.add(t, np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 0]), np.eye(10, dtype=bool)[2], np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0]))
    text = "\n".join(s.lines())
    assert "TP 2, FP 1, FN 1, TN 6" in text and "1 windows, 0 missed" in text
