"""Compiled identification kernels (kernels._ident) against the NumPy reference, rtol=1e-12."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from kernels import ident_reference as reference
from kernels.ident import ArxOrders

_ident = pytest.importorskip("kernels._ident", reason="compiled kernels not built (EDGE_KERNELS_PURE or no compiler)")

ORDERS = [ArxOrders(1, 1, 1), ArxOrders.fopdt(3), ArxOrders(2, 2, 1), ArxOrders(0, 2, 2), ArxOrders(4, 3, 5), ArxOrders(8, 8, 1)]
CHANNELS = [0, 1, 7, 500]


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert_allclose(actual, expected, rtol=1e-12, atol=0, equal_nan=True)


def random_state(rng: np.random.Generator, o: ArxOrders, n: int) -> dict[str, np.ndarray]:
    p = o.n_params
    A = rng.normal(size=(n, p, p))
    theta = rng.normal(0, 0.3, (n, p))
    theta[:, : o.na] *= 0.5 / max(o.na, 1)  # keep the poles inside the unit circle
    return {
        "theta": theta,
        "P": np.ascontiguousarray(A @ A.transpose(0, 2, 1) + 0.1 * np.eye(p)),
        "yh": rng.normal(size=(n, o.na)),
        "uh": rng.normal(size=(n, o.n_input_history)),
        "sigma2": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0.01, 1.0, n)),
        "err": np.full(n, -1.0),
    }


@pytest.mark.parametrize("n", CHANNELS)
@pytest.mark.parametrize("o", ORDERS, ids=str)
def test_rls_step_matches_reference(o: ArxOrders, n: int) -> None:
    rng = np.random.default_rng(17 + n + 31 * o.n_params)
    ours = random_state(rng, o, n)
    ref = {k: v.copy() for k, v in ours.items()}
    lam = rng.uniform(0.95, 1.0, n)
    # small bounds for some channels so both branches of the anti-windup rule run
    p_max = np.where(rng.random(n) < 0.5, 1e6, rng.uniform(0.5, 5.0, n))
    for step in range(12):
        y = rng.normal(size=n)
        y[rng.random(n) < 0.15] = np.nan
        u = rng.normal(size=n)
        if step == 3:
            u[rng.random(n) < 0.2] = np.nan  # a NaN input blocks updates until it leaves the regressor
        for s, rls_step in ((ours, _ident.rls_step), (ref, reference.rls_step)):
            rls_step(s["theta"], s["P"], s["yh"], s["uh"], y, u, lam, p_max, s["sigma2"], s["err"])
        for key in ours:
            close(ours[key], ref[key])


@pytest.mark.parametrize("h", [0, 1, 6, 60])
@pytest.mark.parametrize("n", CHANNELS)
@pytest.mark.parametrize("o", ORDERS, ids=str)
def test_arx_simulate_matches_reference(o: ArxOrders, n: int, h: int) -> None:
    rng = np.random.default_rng(5 + n + h + 7 * o.n_params)
    s = random_state(rng, o, n)
    uf = rng.normal(size=(n, h))
    out = [np.full((n, h), -1.0) for _ in range(4)]
    _ident.arx_simulate(s["theta"], s["P"], s["yh"], s["uh"], uf, s["sigma2"], out[0], out[1])
    reference.arx_simulate(s["theta"], s["P"], s["yh"], s["uh"], uf, s["sigma2"], out[2], out[3])
    close(out[0], out[2])
    close(out[1], out[3])


def test_shape_guards_raise_instead_of_overrunning() -> None:
    o = ArxOrders(1, 1, 1)
    s = random_state(np.random.default_rng(0), o, 3)
    with pytest.raises(ValueError):
        _ident.rls_step(s["theta"], s["P"], s["yh"], s["uh"], np.zeros(2), np.zeros(3), np.ones(3), np.ones(3), s["sigma2"], s["err"])
    with pytest.raises(ValueError):
        _ident.arx_simulate(s["theta"], s["P"], s["yh"], s["uh"], np.zeros((3, 4)), s["sigma2"], np.empty((3, 3)), np.empty((3, 4)))
