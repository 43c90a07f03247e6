"""The compiled kernels against the NumPy reference.

Both accumulate every sum over a state index left to right with separate multiplies and adds, so
they agree to the last bit in practice; the assertions use rtol=1e-12 with atol=0 as the contract.
No atol is needed even for values that pass near zero (innovations, states crossing zero), because
the two never disagree by more than the rounding of the same operations.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import kernels
from kernels import kalman_reference as reference
from tests.kernels.problems import Problem, random_problem

_kalman = pytest.importorskip("kernels._kalman", reason="compiled kernels not built (EDGE_KERNELS_PURE or no compiler)")

SIZES = [1, 2, 3, 4, 6, 8]  # 1..3 hand unrolled, 4..8 the generic loop
CHANNELS = [0, 1, 7, 1000]


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert_allclose(actual, expected, rtol=1e-12, atol=0, equal_nan=True)


def run_both(p: Problem, steps: int = 1) -> None:
    """Step both implementations *steps* times from the same state and compare every output."""
    ours, ref = p.copy_state(), p.copy_state()
    for _ in range(steps):
        _kalman.kalman_step(ours[0], ours[1], p.F, p.Q, p.H, p.R, p.z, ours[2], ours[3])
        reference.kalman_step(ref[0], ref[1], p.F, p.Q, p.H, p.R, p.z, ref[2], ref[3])
        for a, b in zip(ours, ref):
            close(a, b)


@pytest.mark.parametrize("n", CHANNELS)
@pytest.mark.parametrize("s", SIZES)
def test_step_matches_reference(s: int, n: int) -> None:
    run_both(random_problem(np.random.default_rng(1234 + 10 * s + n), n, s), steps=10)


@pytest.mark.parametrize("steps", [0, 1, 5, 60])
@pytest.mark.parametrize("n", CHANNELS)
@pytest.mark.parametrize("s", SIZES)
def test_forecast_matches_reference(s: int, n: int, steps: int) -> None:
    p = random_problem(np.random.default_rng(99 + s + n), n, s)
    F = p.F / max(1.0, np.abs(np.linalg.eigvals(p.F)).max())  # keep F^60 finite and O(1)
    for a, b in zip(_kalman.kalman_forecast(p.x, p.P, F, p.Q, p.H, steps), reference.kalman_forecast(p.x, p.P, F, p.Q, p.H, steps)):
        assert a.dtype == np.float64 and a.shape == (n,)
        close(a, b)


@pytest.mark.parametrize("n", CHANNELS)
def test_nis_ewma_matches_reference(n: int) -> None:
    rng = np.random.default_rng(n)
    innov = rng.normal(size=n)
    innov[rng.random(n) < 0.3] = np.nan
    innov_var = rng.uniform(0.1, 3.0, n)
    for alpha in (np.broadcast_to(0.05, (n,)), rng.uniform(0.01, 1.0, n)):
        ours = rng.uniform(0, 5, n)
        ref = ours.copy()
        _kalman.nis_ewma(ours, innov, innov_var, alpha)
        reference.nis_ewma(ref, innov, innov_var, alpha)
        close(ours, ref)


@pytest.mark.parametrize("s", SIZES)
def test_all_measurements_missing(s: int) -> None:
    p = random_problem(np.random.default_rng(5), 50, s, nan_fraction=1.0)
    run_both(p, steps=3)


@pytest.mark.parametrize("s", SIZES)
def test_huge_measurement_variance(s: int) -> None:
    """R = 1e12: the gain is ~1e-12 and the update barely moves the prediction."""
    p = random_problem(np.random.default_rng(6), 50, s)
    p.R[:] = 1e12
    run_both(p, steps=3)


@pytest.mark.parametrize("s", SIZES)
def test_zero_process_noise(s: int) -> None:
    p = random_problem(np.random.default_rng(7), 50, s)
    p.Q[:] = 0.0
    run_both(p, steps=20)


@pytest.mark.parametrize("s", SIZES)
def test_large_scale_values(s: int) -> None:
    """States of 1e6 with measurements near them: innovations are small differences of large numbers."""
    p = random_problem(np.random.default_rng(8), 50, s)
    p.x += 1e6
    p.z = 1e6 * p.H.sum() + p.z
    run_both(p, steps=5)


@pytest.mark.parametrize("s", SIZES)
def test_steady_state_tracking(s: int) -> None:
    """Many steps of a stable filter on one channel set, so errors would have time to build up."""
    p = random_problem(np.random.default_rng(10), 200, s)
    p.F = p.F / max(1.0, np.abs(np.linalg.eigvals(p.F)).max())
    run_both(p, steps=300)


def test_public_wrapper_accepts_non_contiguous_inputs() -> None:
    """Strided and Fortran-ordered read-only inputs are copied by the wrapper and give the reference result."""
    p = random_problem(np.random.default_rng(11), 40, 3)
    x, P, innov, innov_var = p.copy_state()
    F_f = np.asfortranarray(p.F)
    H_strided = np.repeat(p.H, 2)[::2]
    R_strided = np.repeat(p.R, 3)[::3]
    z_strided = np.repeat(p.z, 2)[1::2]
    assert not (F_f.flags.c_contiguous or H_strided.flags.c_contiguous or R_strided.flags.c_contiguous)
    kernels.kalman_step(x, P, F_f, np.asfortranarray(p.Q), H_strided, R_strided, z_strided, innov, innov_var)
    ref = p.copy_state()
    reference.kalman_step(ref[0], ref[1], p.F, p.Q, p.H, p.R, p.z, ref[2], ref[3])
    for a, b in zip((x, P, innov, innov_var), ref):
        close(a, b)
    P_f = np.asfortranarray(ref[1])
    x_strided = np.repeat(ref[0], 2, axis=0)[::2]
    for a, b in zip(kernels.kalman_forecast(x_strided, P_f, F_f, p.Q, H_strided, 4), reference.kalman_forecast(ref[0], ref[1], p.F, p.Q, p.H, 4)):
        close(a, b)


def test_max_state_size_agrees() -> None:
    assert _kalman.MAX_STATE_SIZE == kernels.MAX_STATE_SIZE


@pytest.mark.parametrize("s", [0, 9])
def test_compiled_module_refuses_unsupported_state_size(s: int) -> None:
    """The compiled module guards its stack scratch even when called directly, without the wrapper."""
    n = 2
    with pytest.raises(ValueError):
        _kalman.kalman_step(
            np.zeros((n, s)), np.zeros((n, s, s)), np.zeros((s, s)), np.zeros((s, s)), np.zeros(s), np.ones(n), np.ones(n), np.zeros(n), np.zeros(n)
        )
    with pytest.raises(ValueError):
        _kalman.kalman_forecast(np.zeros((n, s)), np.zeros((n, s, s)), np.zeros((s, s)), np.zeros((s, s)), np.zeros(s), 1)


def test_compiled_module_refuses_mismatched_shapes() -> None:
    n, s = 3, 2
    args = [np.zeros((n, s)), np.zeros((n, s, s)), np.eye(s), np.eye(s), np.ones(s), np.ones(n), np.ones(n), np.zeros(n), np.zeros(n)]
    for i, bad in [(1, np.zeros((n + 1, s, s))), (4, np.ones(s + 1)), (5, np.ones(n - 1)), (8, np.zeros(n + 1))]:
        with pytest.raises(ValueError):
            _kalman.kalman_step(*args[:i], bad, *args[i + 1 :])
