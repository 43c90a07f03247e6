"""Anomaly detectors: hand-computed sequences, alarm logic, control limits and quantile functions.

These run on whichever implementation is active (kernels.IMPLEMENTATION); the parity tests pin the
compiled one to the reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from kernels import AlarmPolicy, PcaDetector, ResidualDetector, detect
from kernels.detect import ResidualModel

ONE = ResidualModel(np.zeros(1), np.ones(1))


def test_ewma_hand_computed() -> None:
    """lam 0.5: s = 1, 1.5, 0.75, 0.375; score = |s| / sqrt(0.5 / 1.5)."""
    det = ResidualDetector("ewma", ONE, 0.5, AlarmPolicy(on=2.0, release=0.5))
    score, alarm = det.step([[2.0], [2.0], [0.0], [0.0]])
    assert_allclose(score[:, 0], np.array([1.0, 1.5, 0.75, 0.375]) / math.sqrt(1 / 3), rtol=1e-15)
    assert alarm[:, 0].tolist() == [False, True, True, False]  # on above 2, off below 1


def test_cusum_hand_computed() -> None:
    det = ResidualDetector("cusum", ResidualModel(np.array([1.0]), np.array([2.0])), 0.5, AlarmPolicy(on=2.0))
    score, alarm = det.step(np.array([3.0, 3.0, 3.0, -5.0])[:, None])  # z = 1, 1, 1, -3
    assert_allclose(score[:, 0], [0.5, 1.0, 1.5, 2.5])
    assert_allclose(det.stat, [0.0])
    assert_allclose(det.lo, [2.5])
    assert alarm[:, 0].tolist() == [False, False, False, True]


def test_persistence_k_of_w() -> None:
    """k=2 of w=3: a single exceedance does not alarm, two within three ticks do."""
    det = ResidualDetector("ewma", ONE, 1.0, AlarmPolicy(on=1.0, release=1.0, k=2, window=3))
    _, alarm = det.step(np.array([2, 0, 0, 0, 2, 0, 2, 2, 0.5])[:, None])
    assert alarm[:, 0].tolist() == [False, False, False, False, False, False, True, True, False]


def test_release_clears_history() -> None:
    """After a release the alarm needs k fresh exceedances again."""
    det = ResidualDetector("ewma", ONE, 1.0, AlarmPolicy(on=1.0, release=0.5, k=2, window=4))
    _, alarm = det.step(np.array([2, 2, 0, 2, 2])[:, None])
    assert alarm[:, 0].tolist() == [False, True, False, False, True]


def test_nan_keeps_state() -> None:
    det = ResidualDetector("ewma", ResidualModel(np.zeros(2), np.ones(2)), 0.5, AlarmPolicy(on=1.0))
    det.step([4.0, 4.0])
    before = det.stat.copy()
    score, alarm = det.step([np.nan, 0.0])
    assert np.isnan(score[0, 0]) and not np.isnan(score[0, 1])
    assert det.stat[0] == before[0] and det.stat[1] == before[1] / 2
    assert alarm[0].tolist() == [True, True]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.sampled_from(["ewma", "cusum"]), st.integers(0, 2**32 - 1))
def test_block_equals_tick_by_tick(m: int, n: int, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 2, (m, n))
    e[rng.random((m, n)) < 0.2] = np.nan
    model = ResidualModel(rng.normal(size=n), rng.uniform(0.5, 2, n))
    pol = AlarmPolicy(on=1.5, release=0.6, k=2, window=3)
    a, b = ResidualDetector(kind, model, 0.3, pol), ResidualDetector(kind, model, 0.3, pol)
    sa, aa = a.step(e)
    rows = [b.step(e[t]) for t in range(m)]
    assert_allclose(sa, np.vstack([r[0] for r in rows]), rtol=0, atol=0, equal_nan=True)
    assert (aa == np.vstack([r[1] for r in rows])).all()


def test_pca_detects_a_broken_correlation_and_not_normal_data() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(2000, 1))
    X = np.hstack([base, 2 * base, -base]) + 0.05 * rng.normal(size=(2000, 3))
    det = PcaDetector.fit(X[:500], AlarmPolicy(on=1.0, release=0.8, k=3, window=5), explained=0.9, alpha=0.999)
    assert det.model.components == 1
    _, _, _, normal_alarm = det.step(X[500:1500])
    assert normal_alarm.mean() < 0.01
    broken = X[1500:].copy()
    broken[:, 2] += 0.5  # a sensor bias on one signal: off the model's line, so Q, not T^2
    t2, q, _, alarm = det.step(broken)
    assert alarm[10:].all()
    assert np.median(q / det.model.q_limit) > 3 and np.median(t2 / det.model.t2_limit) < 1


def test_t2_limit_false_alarm_rate_on_gaussian_data() -> None:
    """alpha = 0.99: about 1 % of fresh normal samples exceed the T^2 limit (all components kept)."""
    rng = np.random.default_rng(11)
    rates = []
    for _ in range(20):
        cov = np.diag([4.0, 1.0, 0.25])
        train = rng.multivariate_normal(np.zeros(3), cov, 300)
        model = detect.fit_pca(np.hstack([train, train[:, :1] + 1e-3 * rng.normal(size=(300, 1))]), components=3, alpha=0.99)
        det = PcaDetector(model, AlarmPolicy(on=1e9))
        test = rng.multivariate_normal(np.zeros(3), cov, 2000)
        t2, *_ = det.step(np.hstack([test, test[:, :1] + 1e-3 * rng.normal(size=(2000, 1))]))
        rates.append(np.mean(t2 > model.t2_limit))
    assert 0.006 < np.mean(rates) < 0.015


def test_jackson_mudholkar_against_monte_carlo() -> None:
    """Q = sum lambda_i chi2_1 for Gaussian residuals; the JM limit approximates its quantile."""
    rng = np.random.default_rng(5)
    lam = np.array([0.5, 0.3, 0.1, 0.05])
    q = (rng.normal(size=(400_000, 4)) ** 2) @ lam
    for alpha in (0.95, 0.99):
        assert detect.jackson_mudholkar_limit(alpha, lam) == pytest.approx(np.quantile(q, alpha), rel=0.06)  # JM is slightly conservative for few eigenvalues


@pytest.mark.parametrize(("p", "x"), [(0.5, 0.0), (0.975, 1.959963984540054), (0.999, 3.090232306167813), (1e-10, -6.361340902404056)])
def test_norm_quantile_known_values(p: float, x: float) -> None:
    assert detect.norm_quantile(p) == pytest.approx(x, abs=1e-12)


@pytest.mark.parametrize(("p", "d1", "d2", "x"), [(0.95, 3, 10, 3.708264819), (0.99, 1, 5, 16.25813), (0.95, 5, 1000, 2.223052)])
def test_f_quantile_table_values(p: float, d1: int, d2: int, x: float) -> None:
    assert detect.f_quantile(p, d1, d2) == pytest.approx(x, rel=1e-5)


def test_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy not installed; table values above still run")
    for p in (0.9, 0.95, 0.99, 0.999):
        assert detect.norm_quantile(p) == pytest.approx(stats.norm.ppf(p), rel=1e-12)
        for d1, d2 in ((1, 3), (2, 50), (7, 393), (30, 370)):
            assert detect.f_quantile(p, d1, d2) == pytest.approx(stats.f.ppf(p, d1, d2), rel=1e-9)


def test_beta_inc_identities() -> None:
    for x in (0.1, 0.5, 0.93):
        assert detect.beta_inc(1, 1, x) == pytest.approx(x, rel=1e-13)
        assert detect.beta_inc(3.5, 1, x) == pytest.approx(x**3.5, rel=1e-12)
        assert detect.beta_inc(2.5, 4, x) == pytest.approx(1 - detect.beta_inc(4, 2.5, 1 - x), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on": 0.0}, "on must be"),
        ({"on": 1.0, "release": 1.5}, "release"),
        ({"on": 1.0, "window": 65}, "window"),
        ({"on": 1.0, "k": 3, "window": 2}, "k must"),
    ],
)
def test_alarm_policy_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmPolicy(**kwargs)


def test_detector_argument_checks() -> None:
    with pytest.raises(ValueError, match="lambda"):
        ResidualDetector("ewma", ONE, 0.0, AlarmPolicy(1.0))
    with pytest.raises(ValueError, match="kind"):
        ResidualDetector("shewhart", ONE, 0.5, AlarmPolicy(1.0))
    det = ResidualDetector("cusum", ResidualModel(np.zeros(3), np.ones(3)), 0.5, AlarmPolicy(1.0))
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(m, 3\)"):
        det.step(np.zeros(4))
    with pytest.raises(ValueError, match="complete training rows"):
        detect.fit_pca(np.zeros((3, 4)))


def test_one_implementation_for_all_compiled_modules() -> None:
    """Without the compiled detectors the package falls back to NumPy for every kernel, not half."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env["PYTHONPATH"] = str(root)
    code = (
        "import sys; sys.modules['kernels._detect'] = None; import kernels; "
        "print(kernels.IMPLEMENTATION, kernels.kalman._impl.__name__, kernels.detect._impl.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["numpy", "kernels.kalman_reference", "kernels.detect_reference"]
    strict = subprocess.run([sys.executable, "-c", code], env={**env, "EDGE_REQUIRE_CYTHON": "1"}, cwd=root, capture_output=True, text=True, timeout=60)
    assert strict.returncode != 0 and "kernels._detect" in strict.stderr
