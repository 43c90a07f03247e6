"""Online identification, forecasting and what-if against known systems (active implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernels import ident_reference
from kernels.ident import IDENT_IMPLEMENTATION, ArxOrders, RlsBank, arx_simulate, interval_half_width, model_params, rls_step


def run_arx(bank: RlsBank, a: list[float], b: list[float], c: float, nk: int, u: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Drive the true ARX system with inputs u (steps, n) and feed *bank*; return the outputs."""
    steps, n = u.shape
    y = np.zeros((steps, n))
    for k in range(steps):
        acc = np.full(n, c) + rng.normal(0, noise, n)
        for i, ai in enumerate(a, start=1):
            if k - i >= 0:
                acc += ai * y[k - i]
        for i, bi in enumerate(b):
            if k - nk - i >= 0:
                acc += bi * u[k - nk - i]
        y[k] = acc
        bank.step(y[k], u[k])
    return y


def test_implementation_is_reported() -> None:
    assert IDENT_IMPLEMENTATION in ("cython", "numpy")


def test_arx_parameters_converge_under_exciting_input() -> None:
    rng = np.random.default_rng(1)
    o = ArxOrders(2, 2, 2)
    bank = RlsBank(o, 20, lam=0.999)
    u = rng.choice([-1.0, 1.0], size=(3000, 20))
    run_arx(bank, [1.2, -0.5], [0.3, 0.2], 0.7, 2, u, 0.05, rng)
    np.testing.assert_allclose(bank.theta.mean(axis=0), [1.2, -0.5, 0.3, 0.2, 0.7], atol=0.01)
    assert np.all(np.abs(np.sqrt(bank.sigma2) - 0.05) < 0.01)
    assert np.all(bank.updates == 3000 - 3)  # the first steps wait for a full regressor


def test_fopdt_gain_time_constant_and_dead_time() -> None:
    rng = np.random.default_rng(2)
    T, tau, K, d = 10.0, 300.0, 0.5, 3
    a = math.exp(-T / tau)
    o = ArxOrders.fopdt(d)
    bank = RlsBank(o, 5, lam=0.998)
    u = np.repeat(rng.choice([20.0, 40.0, 60.0], size=(40, 5)), 60, axis=0)  # steps every 600 s
    run_arx(bank, [a], [K * (1 - a)], 20.0 * (1 - a), 1 + d, u, 0.02, rng)
    mp = model_params(bank.theta, bank.P, bank.sigma2, o, T)
    np.testing.assert_allclose(mp.gain, K, rtol=0.02)
    np.testing.assert_allclose(mp.time_constant_s, tau, rtol=0.05)
    assert mp.dead_time_s == 30.0
    assert np.all(mp.gain_std < 0.02) and np.all(mp.gain_std > 0)


def test_constant_input_does_not_wind_up_the_covariance() -> None:
    """Hours of constant input: the guarded covariance stays bounded and the model stays usable."""
    rng = np.random.default_rng(3)
    o = ArxOrders.fopdt(0)
    a, K = math.exp(-10 / 300), 0.5
    u_exc = np.repeat(rng.choice([20.0, 60.0], size=(20, 2)), 60, axis=0)
    u_flat = np.full((30_000, 2), 40.0)
    guarded = RlsBank(o, 2, lam=0.99, p_max=1e4)
    unguarded = RlsBank(o, 2, lam=0.99, p_max=np.inf)
    for bank in (guarded, unguarded):
        r = np.random.default_rng(4)
        run_arx(bank, [a], [K * (1 - a)], 20 * (1 - a), 1, u_exc, 0.02, r)
        trace_before = np.trace(bank.P, axis1=1, axis2=2).max()
        run_arx(bank, [a], [K * (1 - a)], 20 * (1 - a), 1, np.vstack([u_flat, u_exc[:300]]), 0.02, r)
    trace = np.trace(guarded.P, axis1=1, axis2=2)
    assert np.all(trace <= 1e4 + 1e-6) and trace_before < 1e4
    assert np.all(np.isfinite(guarded.theta))
    # and it re-identifies after the flat stretch
    np.testing.assert_allclose(model_params(guarded.theta, guarded.P, guarded.sigma2, o, 10.0).gain, K, rtol=0.1)
    # without the bound the covariance explodes (0.99^-30000 overflows): the guard is what helps
    assert not np.all(np.isfinite(unguarded.P)) or np.trace(unguarded.P, axis1=1, axis2=2).max() > 1e12


def test_simulate_first_order_step_response_and_variance_closed_form() -> None:
    a, b, c, s2 = 0.9, 0.2, 1.0, 0.04
    theta = np.array([[a, b, c]])
    yh, uh = np.array([[5.0]]), np.array([[0.0]])
    mean, var = arx_simulate(theta, np.zeros((1, 3, 3)), yh, uh, np.full((1, 30), 3.0), np.array([s2]))
    # y[k+1] uses u[k] = 0; after that u = 3 is held
    expect, y = [], 5.0
    for j in range(30):
        y = a * y + b * (0.0 if j == 0 else 3.0) + c
        expect.append(y)
    np.testing.assert_allclose(mean[0], expect, rtol=1e-12)
    j = np.arange(1, 31)
    np.testing.assert_allclose(var[0], s2 * (1 - a ** (2 * j)) / (1 - a**2), rtol=1e-12)
    # the steady state is (b u + c) / (1 - a)
    assert abs(mean[0, -1] - (b * 3.0 + c) / (1 - a)) < 0.5


def test_forecast_interval_covers_95_percent_of_outcomes() -> None:
    """Identify on data, forecast 10 steps with the input held, then run the true system on."""
    rng = np.random.default_rng(5)
    n, a, b, c, noise, h = 4000, 0.85, 0.3, 0.5, 0.1, 10
    bank = RlsBank(ArxOrders(1, 1, 1), n, lam=0.995)
    u = rng.normal(0, 1, size=(400, n))
    y = run_arx(bank, [a], [b], c, 1, u, noise, rng)
    mean, var = bank.forecast_held(h)
    yk, uk = y[-1], u[-1]
    for _ in range(h):
        yk = a * yk + b * uk + c + rng.normal(0, noise, n)
    inside = np.abs(yk - mean) <= interval_half_width(var, 0.95)
    assert 0.93 <= inside.mean() <= 0.97, inside.mean()


def test_missing_output_skips_the_update_and_blocks_the_regressor() -> None:
    bank = RlsBank(ArxOrders(1, 1, 1), 1)
    for y in (1.0, 2.0, 3.0):
        bank.step([y], [1.0])
    before = bank.theta.copy()
    bank.step([np.nan], [1.0])
    assert np.isnan(bank.err[0]) and np.array_equal(bank.theta, before)
    bank.step([4.0], [1.0])  # regressor holds the NaN y: still no update
    assert np.isnan(bank.err[0]) and bank.updates[0] == 2
    bank.step([5.0], [1.0])
    assert bank.updates[0] == 3
    bank.reset()
    assert bank.updates[0] == 0 and np.isnan(bank.yh).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lam": 0.0}, "lam"), ({"lam": 1.5}, "lam"), ({"p_max": 1.0}, "p_max")],
)
def test_bank_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RlsBank(ArxOrders(1, 1, 1), 2, **kwargs)


def test_orders_are_checked() -> None:
    for bad in ((9, 1, 1), (1, 0, 1), (1, 1, 0)):
        with pytest.raises(ValueError):
            ArxOrders(*bad)


def test_public_step_checks_in_place_arrays() -> None:
    bank = RlsBank(ArxOrders(1, 1, 1), 2)
    with pytest.raises(ValueError, match="in place"):
        rls_step(bank.theta.astype(np.float32), bank.P, bank.yh, bank.uh, [1, 2], [0, 0], 0.99, 1e4, bank.sigma2, bank.err)


def test_reference_is_the_spec_for_a_hand_computed_update() -> None:
    """One update from theta=0, P=I, lam=1 by hand: g = phi, s = 1 + |phi|^2, theta = phi y / s."""
    theta, P = np.zeros((1, 3)), np.eye(3)[None].copy()
    yh, uh = np.array([[2.0]]), np.array([[1.0]])
    s2, err = np.array([np.nan]), np.empty(1)
    ident_reference.rls_step(theta, P, yh, uh, np.array([3.0]), np.array([0.5]), np.ones(1), np.full(1, 1e9), s2, err)
    phi = np.array([2.0, 1.0, 1.0])
    s = 1 + phi @ phi
    np.testing.assert_allclose(theta[0], phi * 3.0 / s)
    np.testing.assert_allclose(P[0], np.eye(3) - np.outer(phi, phi) / s)
    assert err[0] == 3.0 and s2[0] == pytest.approx(9.0 / s)
    assert yh[0, 0] == 3.0 and uh[0, 0] == 0.5


def test_rls_without_forgetting_equals_regularised_batch_least_squares() -> None:
    """theta = (P0^-1 + Phi^T Phi)^-1 Phi^T y exactly, for lam = 1 and no covariance bound."""
    rng = np.random.default_rng(8)
    o = ArxOrders(2, 2, 2)
    p0 = 50.0
    bank = RlsBank(o, 1, lam=1.0, p_max=np.inf, p0=p0)
    y, u = rng.normal(size=200), rng.normal(size=200)
    rows, targets = [], []
    for k in range(200):
        if k >= 3:  # the bank's regressor is complete from here on
            rows.append([y[k - 1], y[k - 2], u[k - 2], u[k - 3], 1.0])
            targets.append(y[k])
        bank.step([y[k]], [u[k]])
    Phi, t = np.array(rows), np.array(targets)
    expect = np.linalg.solve(np.eye(5) / p0 + Phi.T @ Phi, Phi.T @ t)
    np.testing.assert_allclose(bank.theta[0], expect, rtol=1e-8)
    np.testing.assert_allclose(bank.P[0], np.linalg.inv(np.eye(5) / p0 + Phi.T @ Phi), rtol=1e-6, atol=1e-12)
