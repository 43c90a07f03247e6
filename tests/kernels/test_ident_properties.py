"""Properties of the identification kernels over generated data (hypothesis, active implementation)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.ident import ArxOrders, RlsBank, arx_simulate
from tests.kernels.test_kalman_properties import assert_symmetric_psd

orders = st.builds(ArxOrders, st.integers(0, 3), st.integers(1, 3), st.integers(1, 4))


@settings(max_examples=40, deadline=None)
@given(o=orders, lam=st.floats(0.9, 1.0), bound=st.floats(10.0, 1e6), scale=st.floats(1e-2, 1e3), seed=st.integers(0, 2**32 - 1))
def test_covariance_stays_symmetric_psd_and_bounded(o: ArxOrders, lam: float, bound: float, scale: float, seed: int) -> None:
    """Whatever the data (here: a constant input half the time), P stays symmetric PSD and its trace
    never exceeds the bound; the parameters stay finite."""
    rng = np.random.default_rng(seed)
    n = 8
    bank = RlsBank(o, n, lam=lam, p_max=bound, p0=bound / (10 * o.n_params))
    u_const = rng.normal(0, scale, n)
    for k in range(120):
        u = u_const if (k // 30) % 2 else rng.normal(0, scale, n)
        bank.step(rng.normal(0, scale, n), u)
        assert np.all(np.trace(bank.P, axis1=1, axis2=2) <= bound * (1 + 1e-12))
    assert_symmetric_psd(bank.P)
    assert np.all(np.isfinite(bank.theta))


@settings(max_examples=40, deadline=None)
@given(o=orders, h=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_simulation_is_affine_in_the_inputs(o: ArxOrders, h: int, seed: int) -> None:
    """The model is linear: sim(u1 + u2) - sim(0) = (sim(u1) - sim(0)) + (sim(u2) - sim(0)); the
    prediction variance is positive."""
    rng = np.random.default_rng(seed)
    n, p = 5, o.n_params
    theta = rng.normal(0, 0.3, (n, p))
    theta[:, : o.na] /= 2 * max(o.na, 1)  # stable poles
    A = rng.normal(size=(n, p, p))
    P = A @ A.transpose(0, 2, 1)
    yh, uh, s2 = rng.normal(size=(n, o.na)), rng.normal(size=(n, o.n_input_history)), rng.uniform(0.1, 1, n)
    u1, u2 = rng.normal(size=(n, h)), rng.normal(size=(n, h))
    sim = lambda u: arx_simulate(theta, P, yh, uh, u, s2)  # noqa: E731
    m0, v0 = sim(np.zeros((n, h)))
    m1, v1 = sim(u1)
    m2, _ = sim(u2)
    m12, _ = sim(u1 + u2)
    np.testing.assert_allclose(m12 - m0, (m1 - m0) + (m2 - m0), atol=1e-9 * (1 + np.abs(m12).max()))
    assert np.all(v0 > 0) and np.all(v1 > 0)
