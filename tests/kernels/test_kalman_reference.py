"""The NumPy reference (the spec) against closed forms and against filterpy, not against itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from kernels import kalman_reference as reference
from kernels.kalman import model_matrices


class Bank:
    """Direct driver of ``reference.kalman_step`` for n channels of one model."""

    def __init__(self, kind: str, n: int, dt_s: float, q: float, r: float | np.ndarray, p0: float = 1e3):
        self.F, self.Q, self.H = model_matrices(kind, dt_s, q)
        s = self.H.shape[0]
        self.R = np.broadcast_to(np.asarray(r, dtype=np.float64), (n,)).copy()
        self.x = np.zeros((n, s))
        self.P = np.tile(p0 * np.eye(s), (n, 1, 1))
        self.innov = np.empty(n)
        self.innov_var = np.empty(n)

    def step(self, z: np.ndarray | float) -> None:
        z = np.broadcast_to(np.asarray(z, dtype=np.float64), self.R.shape).copy()
        reference.kalman_step(self.x, self.P, self.F, self.Q, self.H, self.R, z, self.innov, self.innov_var)

    def forecast(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        return reference.kalman_forecast(self.x, self.P, self.F, self.Q, self.H, steps)


def test_scalar_update_by_hand() -> None:
    """x=0, P=1, F=1, Q=0, R=1, z=2: S=2, K=1/2, so x becomes 1 and P becomes 1/2."""
    x, P = np.zeros((1, 1)), np.ones((1, 1, 1))
    innov, innov_var = np.empty(1), np.empty(1)
    reference.kalman_step(x, P, np.eye(1), np.zeros((1, 1)), np.ones(1), np.ones(1), np.array([2.0]), innov, innov_var)
    assert (x[0, 0], P[0, 0, 0], innov[0], innov_var[0]) == (1.0, 0.5, 2.0, 2.0)


def test_random_walk_gain_converges_to_riccati_closed_form() -> None:
    """Scalar random walk: steady prior variance p = (q + sqrt(q^2 + 4 q r)) / 2 and gain K = p / (p + r)."""
    q, r = 0.01, np.array([0.5, 0.01, 20.0])
    bank = Bank("random_walk", 3, 1.0, q, r)  # Q = q dt^2 = q
    rng = np.random.default_rng(7)
    for _ in range(2000):  # the gain does not depend on the data
        bank.step(rng.normal(size=3))
    p_prior = (q + np.sqrt(q * q + 4 * q * r)) / 2
    gain = p_prior / (p_prior + r)
    assert_allclose(bank.innov_var, p_prior + r, rtol=1e-10)
    assert_allclose(bank.P[:, 0, 0], gain * r, rtol=1e-10)  # posterior variance (1 - K) p = K r


def test_constant_signal_is_estimated_within_noise() -> None:
    """A constant seen through noise of sigma 0.1 ends within 5 posterior standard deviations, all channels."""
    n, truth, sigma = 200, 5.0, 0.1
    bank = Bank("random_walk", n, 1.0, 1e-8, sigma**2)
    rng = np.random.default_rng(11)
    for _ in range(500):
        bank.step(truth + sigma * rng.normal(size=n))
    std = np.sqrt(bank.P[:, 0, 0])
    assert np.all(std < sigma / 10)  # 500 samples: about sigma / sqrt(500)
    assert np.all(np.abs(bank.x[:, 0] - truth) < 5 * std)


def test_without_process_noise_the_estimate_is_the_running_mean() -> None:
    """q = 0: the random walk filter is the running mean, shrunk by the prior: sum(z) / (N + r/p0), variance r / (N + r/p0)."""
    n_steps, r, p0 = 50, 0.09, 1e4
    rng = np.random.default_rng(3)
    z = rng.normal(2.0, 0.3, (n_steps, 4))
    bank = Bank("random_walk", 4, 1.0, 0.0, r, p0=p0)
    for row in z:
        bank.step(row)
    assert_allclose(bank.x[:, 0], z.sum(axis=0) / (n_steps + r / p0), rtol=1e-10)
    assert_allclose(bank.P[:, 0, 0], r / (n_steps + r / p0), rtol=1e-10)


def test_constant_velocity_tracks_a_ramp_without_bias() -> None:
    """On a noise-free ramp the constant-velocity filter's innovation goes to 0 and its rate to the slope."""
    dt, slope = 0.5, 0.7
    bank = Bank("constant_velocity", 2, dt, 1e-3, 0.01)
    for k in range(400):
        bank.step(np.array([3.0, -40.0]) + slope * dt * k)
    assert_allclose(bank.innov, 0.0, atol=1e-9)
    assert_allclose(bank.x[:, 1], slope, rtol=1e-9)


def test_random_walk_lags_a_ramp_by_slope_dt_over_gain() -> None:
    """Contrast: a random walk model settles at a constant innovation e = slope * dt / K on the same ramp."""
    dt, slope, q, r = 0.5, 0.7, 1e-3, 0.01
    bank = Bank("random_walk", 1, dt, q, r)
    for k in range(2000):
        bank.step(slope * dt * k)
    qd = q * dt**2
    p_prior = (qd + math.sqrt(qd * qd + 4 * qd * r)) / 2
    assert_allclose(bank.innov, slope * dt * (p_prior + r) / p_prior, rtol=1e-9)


@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_constant_velocity_forecast_mean_is_level_plus_k_rate(dt: float) -> None:
    """H F^k x for x = [level, rate] is exactly level + k dt rate (dt chosen exactly representable)."""
    F, Q, H = model_matrices("constant_velocity", dt, 0.3)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 2))
    P = np.tile(np.eye(2), (6, 1, 1))
    for k in range(12):
        mean, _ = reference.kalman_forecast(x, P, F, Q, H, k)
        assert_array_equal(mean, x[:, 0] + (k * dt) * x[:, 1])


def test_forecast_variance_matches_propagating_p_k_times() -> None:
    """var = H P_k H^T with P_k = F P_(k-1) F^T + Q: checked against the recursion itself, no R added."""
    bank = Bank("constant_acceleration", 3, 0.2, 0.05, 0.1)
    rng = np.random.default_rng(9)
    for k in range(30):
        bank.step(np.sin(0.1 * k) + 0.1 * rng.normal(size=3))
    Pk = bank.P.copy()
    for k in range(25):
        _, var = bank.forecast(k)
        assert_allclose(var, np.einsum("i,nij,j->n", bank.H, Pk, bank.H), rtol=1e-12)
        Pk = bank.F @ Pk @ bank.F.T + bank.Q


def test_random_walk_forecast_variance_is_p_plus_k_q() -> None:
    bank = Bank("random_walk", 2, 2.0, 0.3, 1.0)
    bank.step([1.0, 2.0])
    for k in range(10):
        mean, var = bank.forecast(k)
        assert_array_equal(mean, bank.x[:, 0])
        assert_allclose(var, bank.P[:, 0, 0] + k * 0.3 * 2.0**2, rtol=1e-14)


@pytest.mark.parametrize("kind", ["random_walk", "constant_velocity", "constant_acceleration"])
def test_forecast_variance_grows_with_horizon(kind: str) -> None:
    """After filtering (non-negative level/derivative correlation) the forecast variance rises with every step."""
    bank = Bank(kind, 4, 0.1, 0.2, 0.05)
    rng = np.random.default_rng(13)
    for k in range(100):
        bank.step(0.01 * k + 0.2 * rng.normal(size=4))
    variances = np.array([bank.forecast(k)[1] for k in range(40)])
    assert np.all(np.diff(variances, axis=0) > 0)
    assert_array_equal(variances[0], np.einsum("i,nij,j->n", bank.H, bank.P, bank.H))


def test_nan_measurement_predicts_only() -> None:
    """A NaN measurement leaves x = F x, P = F P F^T + Q, innov NaN and innov_var = H P_pred H^T + R."""
    bank = Bank("constant_velocity", 3, 0.5, 0.1, 0.2)
    bank.step([1.0, 2.0, 3.0])
    bank.step([1.5, 2.5, 3.5])
    x0, P0 = bank.x.copy(), bank.P.copy()
    bank.step([np.nan, 2.7, np.nan])
    P_pred = bank.F @ P0 @ bank.F.T + bank.Q
    for i in (0, 2):
        assert_allclose(bank.x[i], bank.F @ x0[i], rtol=1e-14)
        assert_allclose(bank.P[i], P_pred[i], rtol=1e-14)
        assert np.isnan(bank.innov[i])
        assert_allclose(bank.innov_var[i], bank.H @ P_pred[i] @ bank.H + 0.2, rtol=1e-14)
    assert not np.isnan(bank.innov[1])
    assert bank.P[1, 0, 0] < P_pred[1, 0, 0]  # the measured channel was updated


def test_covariance_stays_exactly_symmetric() -> None:
    bank = Bank("constant_acceleration", 5, 0.3, 1.0, 0.5)
    rng = np.random.default_rng(17)
    for _ in range(200):
        bank.step(rng.normal(size=5))
        assert_array_equal(bank.P, bank.P.transpose(0, 2, 1))


def test_nis_ewma_by_hand() -> None:
    """score = (1 - a) score + a innov^2 / innov_var; a NaN innovation leaves the score alone."""
    score = np.array([1.0, 2.0, 3.0])
    reference.nis_ewma(score, np.array([2.0, np.nan, 0.0]), np.array([4.0, 1.0, 2.0]), np.full(3, 0.25))
    assert_array_equal(score, [1.0, 2.0, 2.25])


@pytest.mark.parametrize("kind", ["constant_velocity", "constant_acceleration"])
def test_matches_filterpy_single_channel(kind: str) -> None:
    """Same model, data and prior as filterpy's KalmanFilter (Joseph form): same states and covariances."""
    from filterpy.kalman import KalmanFilter

    dt, q, r, p0 = 0.1, 0.5, 0.04, 10.0
    F, Q, H = model_matrices(kind, dt, q)
    s = H.shape[0]
    kf = KalmanFilter(dim_x=s, dim_z=1)
    kf.F, kf.Q, kf.H, kf.R = F.copy(), Q.copy(), H.reshape(1, s).copy(), np.array([[r]])
    kf.x, kf.P = np.zeros((s, 1)), p0 * np.eye(s)
    bank = Bank(kind, 1, dt, q, r, p0=p0)
    rng = np.random.default_rng(2024)
    for k in range(150):
        z = 1.0 + 0.3 * k * dt + math.sqrt(r) * rng.normal()
        if k % 7 == 3:
            z = math.nan
        kf.predict()
        if not math.isnan(z):
            kf.update(np.array([[z]]))
        bank.step(z)
        # filterpy multiplies full matrices (Joseph form, BLAS order), so results differ by rounding;
        # atol=1e-12 (values here are O(0.01..10)) only covers entries and innovations that pass near 0.
        assert_allclose(bank.x[0], kf.x[:, 0], rtol=1e-9, atol=1e-12)
        assert_allclose(bank.P[0], kf.P, rtol=1e-8, atol=1e-12)
        if not math.isnan(z):
            assert_allclose(bank.innov[0], kf.y[0, 0], rtol=1e-8, atol=1e-12)
            assert_allclose(bank.innov_var[0], kf.S[0, 0], rtol=1e-12)
