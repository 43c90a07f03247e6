"""Reconstruction-based contributions (Alcala & Qin 2009) to T^2, Q and the combined index: known
answers, a fault along one variable's direction ranks that variable first, and each RBC is exactly
what a brute-force reconstruction removes from the index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from edge.twin.diagnosis.pca_contrib import PcaView, feature_groups, signal_contributions
from edge.twin.diagnosis.rbc import combined_matrix, mean_rbc, q_matrix, rbc, reconstructed_index, t2_matrix
from kernels.detect import fit_pca


def correlated(rng: np.random.Generator, n: int = 2000, p: int = 6) -> np.ndarray:
    """Normal data of p variables driven by two latent factors (strongly correlated), plus noise."""
    mix = rng.normal(size=(2, p))
    latent = rng.normal(size=(n, 2))
    return latent @ mix + 0.1 * rng.normal(size=(n, p))


def matrices(model) -> dict[str, np.ndarray]:
    return {
        "t2": t2_matrix(model.loadings, model.eigvals),
        "q": q_matrix(model.loadings),
        "combined": combined_matrix(model.loadings, model.eigvals, model.t2_limit, model.q_limit),
    }


def test_a_hand_worked_two_variable_example() -> None:
    M = np.array([[2.0, 1.0], [1.0, 2.0]])
    z = np.array([1.0, 0.0])  # index z'Mz = 2; Mz = (2, 1)
    np.testing.assert_allclose(rbc(z, M), [2.0**2 / 2.0, 1.0**2 / 2.0])  # (xi'Mz)^2 / (xi'M xi)
    # reconstructing variable 2 by hand: 2 + 2f + 2f^2 is least at f = -1/2, where it is 1.5
    assert reconstructed_index(z, M, [1]) == pytest.approx(1.5)
    assert reconstructed_index(z, M, [0]) == pytest.approx(0.0)
    np.testing.assert_allclose(rbc(z, M, [[0, 1]]), [2.0])  # every variable together: the whole index


def test_with_the_identity_metric_rbc_is_the_squared_deviation() -> None:
    z = np.array([3.0, -1.0, 0.5])
    np.testing.assert_allclose(rbc(z, np.eye(3)), z**2)


@pytest.mark.parametrize("index", ["t2", "q", "combined"])
@pytest.mark.parametrize("fault_var", range(6))
def test_a_fault_along_one_variables_direction_gets_the_largest_rbc(index: str, fault_var: int) -> None:
    """Alcala & Qin's Theorem 1: a pure fault along xi_j gives variable j the largest RBC
    (Cauchy-Schwarz in M's metric); on top of normal variation, once the fault is large against it."""
    rng = np.random.default_rng(7)
    model = fit_pca(correlated(rng), components=2)
    M = matrices(model)[index]
    pure = np.zeros(6)
    pure[fault_var] = 3.0
    r = rbc(pure, M)
    assert r[fault_var] == pytest.approx(9.0 * M[fault_var, fault_var])  # f^2 xi_j' M xi_j
    assert r[fault_var] >= r.max() * (1 - 1e-12), (index, r)
    normal = (correlated(np.random.default_rng(7), n=2001)[-1] - model.mean) / model.scale  # a normal sample of the same process
    z = normal.copy()
    z[fault_var] += 20.0
    assert int(np.argmax(rbc(z, M))) == fault_var, (index, rbc(z, M))


def test_rbc_blames_the_faulty_variable_where_the_squared_deviation_does_not() -> None:
    """Variables 0 and 1 normally move together (correlation 0.9), variable 2 alone. Both of the
    first are high together (normal covariation) and variable 2 is off by a fault: the squared
    standardized deviation (the diagonal shortcut) blames variable 0, RBC under the full inverse
    covariance blames variable 2."""
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    M = np.linalg.inv(cov)  # T^2 with every component kept
    z = np.array([2.8, 2.8, 2.5])
    assert int(np.argmax(z**2)) == 0
    r = rbc(z, M)
    np.testing.assert_allclose(r, [(2.8 * 0.1 / 0.19) ** 2 / (1 / 0.19)] * 2 + [6.25])  # (xi'Mz)^2 / (xi'M xi)
    assert int(np.argmax(r)) == 2


def _brute(z: np.ndarray, M: np.ndarray, group: list[int]) -> float:
    """The index after reconstruction, by numerical minimisation over the group's values."""

    def index(f: np.ndarray) -> float:
        x = z.copy()
        x[group] = f
        return float(x @ M @ x)

    res = minimize(index, z[group], method="BFGS", options={"gtol": 1e-10})
    return float(res.fun)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), index=st.sampled_from(["t2", "q", "combined"]), size=st.integers(1, 3))
def test_rbc_equals_what_brute_force_reconstruction_removes(seed: int, index: str, size: int) -> None:
    rng = np.random.default_rng(seed)
    model = fit_pca(correlated(rng), components=2)
    M = matrices(model)[index]
    z = rng.normal(size=6) * 3.0
    group = sorted(rng.choice(6, size=size, replace=False).tolist())
    full = float(z @ M @ z)
    expected = full - _brute(z, M, group)
    assert rbc(z, M, [group])[0] == pytest.approx(expected, rel=1e-5, abs=1e-6 * max(1.0, full))


@pytest.mark.parametrize("index", ["t2", "q", "combined"])
def test_mean_rbc_is_the_mean_of_the_rows_rbc(index: str) -> None:
    rng = np.random.default_rng(11)
    model = fit_pca(correlated(rng), components=2)
    M = matrices(model)[index]
    z = rng.normal(size=(300, 6)) * 2.0
    z[5, 2] = np.nan  # left out
    groups = [[0], [1, 2], [3, 4, 5]]
    ok = ~np.isnan(z).any(axis=1)
    np.testing.assert_allclose(mean_rbc(z, M, groups), rbc(z[ok], M, groups).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(mean_rbc(z, M), rbc(z[ok], M).mean(axis=0), rtol=1e-10)
    assert mean_rbc(np.full((3, 6), np.nan), M).tolist() == [0.0] * 6


def test_rows_give_one_row_of_contributions_each_and_nan_rows_stay_nan() -> None:
    M = np.eye(2)
    out = rbc(np.array([[1.0, 2.0], [np.nan, 1.0]]), M)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[0], [1.0, 4.0])
    assert np.isnan(out[1, 0])


@pytest.mark.parametrize(
    ("groups", "message"), [([[0, 5]], "columns in 0..2"), ([[]], "columns in 0..2")]
)  # fmt: skip
def test_bad_groups_are_refused_with_the_reason(groups: list[list[int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rbc(np.zeros(3), np.eye(3), groups)


def test_a_metric_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"M must be \(3, 3\)"):
        rbc(np.zeros(3), np.eye(2))


@pytest.mark.parametrize(
    ("p", "differences", "rate_only", "expected"),
    [
        (3, True, (), [[0, 3], [1, 4], [2, 5]]),
        (3, False, (), [[0], [1], [2]]),
        (3, True, (1,), [[0, 2], [3], [1, 4]]),  # levels of 0 and 2, then the rates of all three
        (3, False, (1,), [[0], [2], [1]]),
    ],
)
def test_feature_groups_follow_the_pca_feature_layout(p: int, differences: bool, rate_only: tuple[int, ...], expected: list[list[int]]) -> None:
    assert feature_groups(p, differences, rate_only) == expected


def test_signal_contributions_name_the_signal_that_stepped() -> None:
    """A PCA detector over levels and differences of correlated signals; a step on one signal
    during the episode makes that signal the largest contributor."""
    from edge.twin.detector import pca_features

    data = correlated(np.random.default_rng(3), n=1620, p=4)
    train, episode = data[:1500], data[1500:]
    model = fit_pca(pca_features(train), components=4)
    view = PcaView(model, True, ())
    for faulty in range(4):
        rows = episode.copy()
        rows[60:, faulty] += 1.5  # a step of a few of its standard deviations
        c = signal_contributions(view, rows)
        assert c is not None and c.sum() == pytest.approx(1.0)
        assert int(np.argmax(c)) == faulty, c


def test_signal_contributions_give_none_when_the_layout_does_not_fit() -> None:
    model = fit_pca(correlated(np.random.default_rng(1), p=4), components=2)  # 4 features, not 2 x 4
    assert signal_contributions(PcaView(model, True, ()), np.ones((10, 4))) is None
    assert signal_contributions(PcaView(model, False, ()), np.full((10, 4), np.nan)) is None
