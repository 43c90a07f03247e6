"""Properties of the active implementation over generated models and data (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.kalman import STATE_SIZE


def assert_symmetric_psd(P: np.ndarray) -> None:
    """Exactly symmetric (the update mirrors the upper triangle) and PSD up to rounding of each matrix."""
    np.testing.assert_array_equal(P, P.transpose(0, 2, 1))
    scale = np.abs(P).max(axis=(1, 2))
    assert np.all(np.linalg.eigvalsh(P).min(axis=1) >= -1e-9 * scale)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(STATE_SIZE)),
    dt_s=st.floats(1e-3, 10.0),
    q=st.one_of(st.just(0.0), st.floats(1e-8, 1e2)),
    r=st.floats(1e-3, 1e3),
    p0=st.floats(1e-2, 1e4),
    missing=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_model_covariance_stays_symmetric_psd(kind: str, dt_s: float, q: float, r: float, p0: float, missing: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 4
    bank = kernels.KalmanBank(kind, n, dt_s, q, r * rng.uniform(0.5, 2.0, n), p0=p0)
    level = rng.normal(0.0, 100.0, n)
    for k in range(150):
        z = level + 0.01 * k * rng.normal(size=n) + np.sqrt(r) * rng.normal(size=n)
        z[rng.random(n) < missing] = np.nan
        bank.step(z)
        assert np.all(bank.innovation_var > 0)
    assert_symmetric_psd(bank.P)


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, kernels.MAX_STATE_SIZE), seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 100))
def test_random_stable_model_covariance_stays_symmetric_psd(s: int, seed: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3
    F = rng.normal(size=(s, s))
    F /= max(1.0, np.abs(np.linalg.eigvals(F)).max())  # spectral radius <= 1
    B = rng.normal(size=(s, s)) * rng.random(s)  # some directions without noise
    Q = B @ B.T
    Q = np.triu(Q) + np.triu(Q, 1).T  # exactly symmetric
    x, P = np.zeros((n, s)), np.tile(10.0 * np.eye(s), (n, 1, 1))
    innov, innov_var = np.empty(n), np.empty(n)
    H, R = rng.normal(size=s), rng.uniform(0.01, 10.0, n)
    for _ in range(steps):
        z = rng.normal(size=n)
        z[rng.random(n) < 0.2] = np.nan
        kernels.kalman_step(x, P, F, Q, H, R, z, innov, innov_var)
        assert_symmetric_psd(P)
