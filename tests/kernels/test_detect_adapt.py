"""The adapting PCA monitor (kernels.detect_adapt): it follows a slow drift of the normal operating
point, never learns from an alarm or the rows just before it, floors each feature's variance, and
scores a block exactly as row by row."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from kernels import Adaptation, AdaptivePca, AlarmPolicy, PcaDetector, detect
from kernels.detect_adapt import AdaptiveStats, covariance_of, data_floor, fit_pca_cov

POLICY = AlarmPolicy(on=1.25, release=0.8)


def plant(rows: int, drift_per_row: float = 0.0, seed: int = 0) -> np.ndarray:
    """Three correlated signals driven by one load (flow, pressure, current), the load's operating
    point moving by *drift_per_row* per row."""
    rng = np.random.default_rng(seed)
    load = 10 + drift_per_row * np.arange(rows) + 0.3 * np.sin(np.arange(rows) / 7) + rng.normal(0, 0.1, rows)
    return np.column_stack([load + rng.normal(0, 0.05, rows), 0.3 * load + rng.normal(0, 0.02, rows), 0.1 * load + rng.normal(0, 0.01, rows)])


def test_fit_from_covariance_is_the_data_fit() -> None:
    """With no floor, the model from the mean and covariance is ``fit_pca``'s on the rows."""
    X = plant(400)
    a = detect.fit_pca(X, explained=0.9)
    b = fit_pca_cov(X.mean(axis=0), np.cov(X, rowvar=False), 400, None, explained=0.9)
    assert a.components == b.components
    assert_allclose(b.scale, a.scale, rtol=1e-12)
    assert_allclose(np.abs(b.loadings), np.abs(a.loadings), rtol=1e-9, atol=1e-12)  # eigenvectors up to sign
    assert_allclose(b.all_eigvals, a.all_eigvals, rtol=1e-9, atol=1e-12)
    assert b.t2_limit == pytest.approx(a.t2_limit, rel=1e-12)
    assert b.q_limit == pytest.approx(a.q_limit, rel=1e-9)


def test_without_memory_it_is_the_fixed_detector() -> None:
    X = plant(800, drift_per_row=0.002)
    fixed = PcaDetector(fit_pca_cov(X[:400].mean(axis=0), np.cov(X[:400], rowvar=False), 400), POLICY, 0.2)
    adaptive = AdaptivePca.fit(X[:400], POLICY, 0.2, adaptation=Adaptation(memory=0))
    for a, b in zip(fixed.step(X), adaptive.step(X)):
        assert_array_equal(a, b)
    assert adaptive.learned == 0


def test_learns_a_slow_drift_of_the_normal_operating_point() -> None:
    """The load's operating point rises by 3 (about 13 training standard deviations) over 6,000
    rows: the fixed model alarms on most of the second half, the adapting one on none of it, and
    its mean follows the drift."""
    X = plant(6000, drift_per_row=0.0005)
    fixed = PcaDetector.fit(X[:400], POLICY, 0.2, 0.95)
    adaptive = AdaptivePca.fit(X[:400], POLICY, 0.2, 0.95, adaptation=Adaptation(memory=600, delay=30, refit_every=10))
    _, _, _, fixed_alarm = fixed.step(X[400:])
    _, _, _, alarm = adaptive.step(X[400:])
    assert fixed_alarm[3000:].mean() > 0.9
    assert not alarm.any()
    assert adaptive.learned == 6000 - 400 - 30  # every row but the ones still in the delay buffer
    assert adaptive.model.mean[0] == pytest.approx(X[-300:, 0].mean(), abs=0.3)  # lags by about memory x drift
    assert adaptive.refits == adaptive.learned // 10


def test_never_learns_during_an_alarm_nor_just_before_it() -> None:
    """A pressure sensor bias from row 1,000 to 1,400: the alarm comes within a few rows; nothing
    is learned while it is on, nor the rows in the delay buffer when it came, and the model after
    the fault is the one from before it."""
    X = plant(2400)
    X[1000:1400, 1] += 0.5
    det = AdaptivePca.fit(X[:400], POLICY, 0.2, 0.95, adaptation=Adaptation(memory=2000, delay=60, refit_every=10))
    det.step(X[400:1000])
    learned, mean, cov = det.learned, det.mean.copy(), det.cov.copy()
    assert learned == 600 - 60 and len(det.pending) == 60
    _, _, _, alarm = det.step(X[1000:1400])
    assert alarm[5:].all()
    assert det.learned == learned and len(det.pending) == 0  # the 60 rows before the onset were dropped
    assert_array_equal(det.mean, mean)
    assert_array_equal(det.cov, cov)
    _, _, _, after = det.step(X[1400:])
    assert not after[60:].any()  # released once the bias is gone, and learning again
    assert det.learned > learned
    assert abs(det.mean[1] - mean[1]) < 0.02  # the bias never entered the statistics


def test_rows_marked_not_learnable_are_scored_but_not_learned() -> None:
    """Not learnable (an input not Good, another alarm): scored, never learned, and the rows waiting
    in the delay buffer are dropped as for an exceedance."""
    X = plant(1000)
    det = AdaptivePca.fit(X[:400], POLICY, 0.2, 0.95, adaptation=Adaptation(memory=2000, delay=10, refit_every=10))
    det.step(X[400:420])
    assert det.learned == 10 and len(det.pending) == 10
    _, _, score, _ = det.step(X[420:], False)
    assert np.isfinite(score).all()
    assert det.learned == 10 and len(det.pending) == 0 and det.count == 410


def test_a_block_scores_and_learns_exactly_as_row_by_row() -> None:
    X = plant(3000, drift_per_row=0.0005, seed=5)
    X[1500:1600, 2] += 0.3  # an alarm in between, so the guard acts
    ok = np.ones(len(X), bool)
    ok[2000:2050] = False
    mk = lambda: AdaptivePca.fit(X[:400], POLICY, 0.2, 0.95, adaptation=Adaptation(memory=500, delay=20, refit_every=7))  # noqa: E731
    a, b = mk(), mk()
    block = a.step(X[400:], ok[400:])
    rows = [b.step(X[t], bool(ok[t])) for t in range(400, len(X))]
    for i in range(4):
        assert_array_equal(block[i], np.concatenate([r[i] for r in rows]))
    assert_array_equal(a.cov, b.cov)
    assert a.learned == b.learned and a.refits == b.refits


def test_variance_floor_scores_an_unseen_but_normal_move_sanely() -> None:
    """A valve position held at exactly 50 % while the detector trained, then moved to 50.5 %: with
    no floor the score is astronomical; with a floor of sd 1 (1 % of a 0-100 % range) the move
    scores like normal noise (at most the 1 % of rows past the 99 % limits)."""
    rng = np.random.default_rng(1)
    flow = 20 + rng.normal(0, 0.1, 1000)
    valve = np.full(1000, 50.0)
    X = np.column_stack([flow, 0.5 * flow + rng.normal(0, 0.02, 1000), valve])
    moved = X[400:].copy()
    moved[:, 2] = 50.5
    bare = AdaptivePca.fit(X[:400], POLICY, 1.0)
    floored = AdaptivePca.fit(X[:400], POLICY, 1.0, var_floor=np.array([0.0, 0.0, 1.0]))
    assert bare.step(moved)[2].max() > 1e6
    still = floored.step(X[400:])[2]
    score = floored.step(moved)[2]
    assert np.isfinite(score).all() and np.mean(score > 1.25) < 0.02
    assert np.median(score) < 2 * np.median(still)
    assert floored.model.scale[2] == pytest.approx(1.0)


def test_data_floor_is_resolution_or_a_fraction_of_the_magnitude() -> None:
    X = np.column_stack([np.array([1.0, 1.5, 1.5, 2.0]), np.full(4, 200.0), np.zeros(4)])
    assert_allclose(data_floor(X, 0.0), [0.25, 0.0, 0.0])
    assert_allclose(data_floor(X, 0.01), [0.25, 4.0, 0.0])


def test_covariance_of_a_model_reproduces_it() -> None:
    X = plant(500)
    m = detect.fit_pca(X, components=2)
    back = fit_pca_cov(m.mean, covariance_of(m), 500, components=2)
    assert_allclose(back.scale, m.scale, rtol=1e-9)
    assert_allclose(np.abs(back.loadings), np.abs(m.loadings), rtol=1e-6, atol=1e-9)
    assert_allclose(back.eigvals, m.eigvals, rtol=1e-9)


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        (AdaptiveStats(np.zeros(2), np.eye(3), 10, 0), "do not match"),
        (AdaptiveStats(np.zeros(3), np.eye(3), 0, 0), "count must be >= 1"),
        (AdaptiveStats(np.full(3, np.nan), np.eye(3), 10, 0), "finite"),
    ],
)
def test_inconsistent_statistics_are_refused(stats: AdaptiveStats, message: str) -> None:
    det = PcaDetector.fit(plant(100), POLICY)
    with pytest.raises(ValueError, match=message):
        AdaptivePca(det, stats, Adaptation(100), np.zeros(3))


def test_adaptation_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="refit_every >= 1"):
        Adaptation(100, 10, 0)
