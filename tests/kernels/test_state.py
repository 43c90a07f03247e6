"""Kernel state export and import (what the twin saves across restarts): exact round trips, the
checks that refuse a state that does not fit, and coasting a filter over missed steps. Runs with
either implementation (compiled, or EDGE_KERNELS_PURE=1)."""

from __future__ import annotations

import numpy as np
import pytest

from kernels import AlarmPolicy, ArxOrders, KalmanBank, PcaDetector, RlsBank, RlsChannelState, kalman_step, transition_power
from kernels.detect import PcaModel

KINDS = ("random_walk", "constant_velocity", "constant_acceleration")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [0, 1, 2, 7, 100, 1000])
def test_transition_power_equals_predict_only_steps(kind: str, steps: int) -> None:
    bank = KalmanBank(kind, 3, 0.5, 1e-3, 0.01)
    rng = np.random.default_rng(steps)
    for _ in range(20):
        bank.step(rng.normal(5.0, 0.1, 3))
    x, P = bank.x.copy(), bank.P.copy()
    for _ in range(steps):
        kalman_step(x, P, bank.F, bank.Q, bank.H, bank.R, np.full(3, np.nan), np.empty(3), np.empty(3))
    phi, qk = transition_power(bank.F, bank.Q, steps)
    for i in range(3):
        np.testing.assert_allclose(phi @ bank.x[i], x[i], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(phi @ bank.P[i] @ phi.T + qk, P[i], rtol=1e-9, atol=1e-15)


def test_transition_power_of_a_day_of_ticks_is_cheap_and_finite() -> None:
    bank = KalmanBank("constant_acceleration", 1, 0.1, 1e-6, 0.01)
    phi, qk = transition_power(bank.F, bank.Q, 864_000)
    assert np.all(np.isfinite(phi)) and np.all(np.isfinite(qk)) and np.allclose(qk, qk.T)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        transition_power(bank.F, bank.Q, -1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_kalman_channel_copied_into_another_bank_continues_identically(kind: str) -> None:
    rng = np.random.default_rng(1)
    a, b = KalmanBank(kind, 4, 0.5, 1e-3, 0.01), KalmanBank(kind, 2, 0.5, 1e-3, 0.01)
    for _ in range(30):
        a.step(rng.normal(3.0, 0.1, 4))
        a.update_score(0.1)
    b.set_channel_state(1, *a.channel_state(2))
    z = rng.normal(3.0, 0.1, 10)
    for zk in z:
        a.step(np.full(4, zk))
        b.step(np.full(2, zk))
        a.update_score(0.1)
        b.update_score(0.1)
    np.testing.assert_array_equal(a.x[2], b.x[1])
    np.testing.assert_array_equal(a.P[2], b.P[1])
    assert a.score[2] == b.score[1]


@pytest.mark.parametrize(
    ("x", "P", "score", "message"),
    [
        ([1.0, 2.0], [[1.0]], 1.0, "must have shape"),
        ([np.nan], [[1.0]], 1.0, "must be finite"),
        ([1.0], [[np.inf]], 1.0, "must be finite"),
        ([1.0], [[-1.0]], 1.0, "non-negative diagonal"),
        ([1.0], [[1.0]], -0.5, "score must be finite"),
        ([1.0], [[1.0]], np.nan, "score must be finite"),
    ],
)
def test_a_kalman_state_that_does_not_fit_is_refused_and_changes_nothing(x, P, score, message) -> None:
    bank = KalmanBank("random_walk", 2, 1.0, 1e-3, 0.01)
    before = bank.channel_state(0)
    with pytest.raises(ValueError, match=message):
        bank.set_channel_state(0, x, P, score)
    after = bank.channel_state(0)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_an_asymmetric_covariance_is_refused() -> None:
    bank = KalmanBank("constant_velocity", 1, 1.0, 1e-3, 0.01)
    with pytest.raises(ValueError, match="symmetric"):
        bank.set_channel_state(0, [0.0, 0.0], [[1.0, 0.5], [0.1, 1.0]], 1.0)


def test_update_score_can_skip_channels() -> None:
    bank = KalmanBank("random_walk", 2, 1.0, 1e-3, 0.01)
    bank.step([5.0, 5.0])
    bank.update_score(0.5, skip=[True, False])
    assert bank.score[0] == 1.0 and bank.score[1] != 1.0


@pytest.mark.parametrize("orders", [ArxOrders.fopdt(0), ArxOrders.fopdt(3), ArxOrders(2, 2, 1)])
def test_an_rls_channel_copied_into_another_bank_continues_identically(orders: ArxOrders) -> None:
    rng = np.random.default_rng(2)
    a, b = RlsBank(orders, 3), RlsBank(orders, 1)
    for k in range(200):
        u = np.full(3, 40.0 + 10 * np.sign(np.sin(k / 15)))
        a.step(rng.normal(30.0, 0.5, 3), u)
    b.set_channel_state(0, a.channel_state(1))
    state = b.channel_state(0)
    assert state.updates == a.updates[1]
    for k in range(50):
        y, u = rng.normal(30.0, 0.5), 35.0 + k % 7
        a.step(np.full(3, y), np.full(3, u))
        b.step([y], [u])
    np.testing.assert_array_equal(a.theta[1], b.theta[0])
    np.testing.assert_array_equal(a.P[1], b.P[0])
    assert a.sigma2[1] == b.sigma2[0] and a.updates[1] == b.updates[0]
    ma, va = a.simulate(np.full((3, 20), 50.0))
    mb, vb = b.simulate(np.full((1, 20), 50.0))
    np.testing.assert_array_equal(ma[1], mb[0])
    np.testing.assert_array_equal(va[1], vb[0])


def _rls(**change: object) -> RlsChannelState:
    base = {"theta": np.zeros(3), "P": np.eye(3), "yh": np.array([np.nan]), "uh": np.array([1.0]), "sigma2": np.nan, "updates": 0}
    return RlsChannelState(**{**base, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (_rls(theta=np.zeros(4)), "must have shapes"),
        (_rls(uh=np.zeros(2)), "must have shapes"),
        (_rls(theta=np.array([np.nan, 0, 0])), "must be finite"),
        (_rls(P=np.array([[1.0, 1, 0], [0, 1, 0], [0, 0, 1]])), "symmetric"),
        (_rls(yh=np.array([np.inf])), "finite or NaN"),
        (_rls(sigma2=-1.0), "sigma2"),
        (_rls(updates=-2), "updates"),
    ],
)
def test_an_rls_state_that_does_not_fit_is_refused(state: RlsChannelState, message: str) -> None:
    bank = RlsBank(ArxOrders.fopdt(0), 1)
    with pytest.raises(ValueError, match=message):
        bank.set_channel_state(0, state)
    assert bank.updates[0] == 0 and np.all(np.isnan(bank.yh))


def test_a_pca_detector_rebuilt_from_its_model_and_runtime_state_scores_identically() -> None:
    rng = np.random.default_rng(3)
    load = rng.normal(0, 1, 300)
    train = np.column_stack([load, 0.5 * load + rng.normal(0, 0.1, 300), rng.normal(0, 1, 300)])
    policy = AlarmPolicy(1.5, 0.8, 2, 3)
    a = PcaDetector.fit(train, policy, smoothing=0.2)
    a.step(train[:50] * 1.5)
    m = a.model
    b = PcaDetector(PcaModel(m.mean.copy(), m.scale.copy(), m.loadings.copy(), m.eigvals.copy(), m.t2_limit, m.q_limit, m.all_eigvals.copy()), policy, 0.2)
    b.set_runtime_state(*a.runtime_state())
    test = train[100:160] * 2.0
    for got, want in zip(b.step(test), a.step(test)):
        np.testing.assert_array_equal(got, want)


def test_runtime_state_is_checked() -> None:
    det = PcaDetector.fit(np.random.default_rng(0).normal(size=(50, 3)), AlarmPolicy(1.0, window=4, k=2))
    with pytest.raises(ValueError, match="history"):
        det.set_runtime_state(0.5, 16, False)
    with pytest.raises(ValueError, match="stat"):
        det.set_runtime_state(np.nan, 0, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale": np.ones(2)}, "inconsistent PCA model shapes"),
        ({"loadings": np.ones((3, 4))}, "inconsistent PCA model shapes"),
        ({"eigvals": np.ones(2)}, "inconsistent PCA model shapes"),
        ({"all_eigvals": np.ones(2)}, "all_eigvals"),
        ({"mean": np.array([0.0, np.nan, 0.0])}, "finite"),
        ({"scale": np.array([1.0, 0.0, 1.0])}, "> 0"),
        ({"t2_limit": 0.0}, "control limits"),
        ({"q_limit": np.inf}, "control limits"),
    ],
)
def test_a_pca_model_that_cannot_run_is_refused(change: dict, message: str) -> None:
    base = {"mean": np.zeros(3), "scale": np.ones(3), "loadings": np.ones((3, 1)), "eigvals": np.ones(1), "t2_limit": 5.0, "q_limit": 1.0}
    base["all_eigvals"] = np.ones(3)
    with pytest.raises(ValueError, match=message):
        PcaModel(**{**base, **change})
