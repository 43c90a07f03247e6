"""The compiled detectors (kernels._detect) against the NumPy reference (kernels.detect_reference), rtol 1e-12.

Both run the same operations in the same order, so they agree to the last bit in practice; the
contract is rtol=1e-12, atol=0, and alarms, histories and states must be identical.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from kernels import detect, detect_reference

_detect = pytest.importorskip("kernels._detect", reason="compiled detectors not built (EDGE_KERNELS_PURE or no compiler)")


def close(a: np.ndarray, b: np.ndarray) -> None:
    assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)


def residual_case(rng: np.random.Generator, m: int, n: int):
    e = rng.normal(size=(m, n)) + np.where(rng.random((m, n)) < 0.2, rng.normal(0, 4, (m, n)), 0.0)
    e[rng.random((m, n)) < 0.1] = np.nan
    mu, sigma = rng.normal(size=n), rng.uniform(0.5, 2.0, n)
    on = rng.uniform(1.0, 3.0, n)
    return e, mu, sigma, on, on * rng.uniform(0.3, 1.0, n)


@pytest.mark.parametrize(("m", "n", "k", "w"), [(1, 1, 1, 1), (50, 7, 1, 1), (200, 33, 3, 5), (64, 1000, 2, 64), (0, 3, 1, 1), (5, 0, 1, 1)])
def test_ewma_matches_reference(m: int, n: int, k: int, w: int) -> None:
    rng = np.random.default_rng(m * 31 + n)
    e, mu, sigma, on, off = residual_case(rng, m, n)
    lam = rng.uniform(0.01, 1.0, n)
    states = [(rng.normal(size=n), rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2, n).astype(np.uint8)) for _ in range(1)]
    ours = [a.copy() for a in states[0]]
    ref = [a.copy() for a in states[0]]
    out_o = (np.empty((m, n)), np.empty((m, n), np.uint8))
    out_r = (np.empty((m, n)), np.empty((m, n), np.uint8))
    _detect.ewma_detect(e, mu, sigma, lam, on, off, k, w, *ours, *out_o)
    detect_reference.ewma_detect(e, mu, sigma, lam, on, off, k, w, *ref, *out_r)
    close(ours[0], ref[0])
    assert_array_equal(ours[1], ref[1])
    assert_array_equal(ours[2], ref[2])
    close(out_o[0], out_r[0])
    assert_array_equal(out_o[1], out_r[1])


@pytest.mark.parametrize(("m", "n", "k", "w"), [(1, 1, 1, 1), (80, 9, 1, 1), (300, 20, 4, 8), (10, 1000, 1, 64)])
def test_cusum_matches_reference(m: int, n: int, k: int, w: int) -> None:
    rng = np.random.default_rng(7 + m + n)
    e, mu, sigma, on, off = residual_case(rng, m, n)
    kref = rng.uniform(0.0, 1.0, n)
    init = (rng.uniform(0, 2, n), rng.uniform(0, 2, n), rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2, n).astype(np.uint8))
    ours, ref = [a.copy() for a in init], [a.copy() for a in init]
    out_o = (np.empty((m, n)), np.empty((m, n), np.uint8))
    out_r = (np.empty((m, n)), np.empty((m, n), np.uint8))
    _detect.cusum_detect(e, mu, sigma, kref, on, off, k, w, *ours, *out_o)
    detect_reference.cusum_detect(e, mu, sigma, kref, on, off, k, w, *ref, *out_r)
    for a, b in zip(ours, ref):
        close(a.astype(np.float64), b.astype(np.float64))
    close(out_o[0], out_r[0])
    assert_array_equal(out_o[1], out_r[1])


@pytest.mark.parametrize(
    ("m", "p", "comps", "lam", "k", "w"), [(1, 2, 1, 1.0, 1, 1), (300, 8, 3, 0.1, 1, 1), (500, 16, 5, 0.3, 3, 6), (100, 40, 39, 1.0, 2, 2)]
)
def test_pca_matches_reference(m: int, p: int, comps: int, lam: float, k: int, w: int) -> None:
    rng = np.random.default_rng(m + p)
    train = rng.normal(size=(max(3 * p, 50), p)) @ rng.normal(size=(p, p))
    model = detect.fit_pca(train, components=comps)
    X = rng.normal(size=(m, p)) @ rng.normal(size=(p, p)) * rng.uniform(0.5, 3.0)
    X[rng.random(m) < 0.1, rng.integers(0, p)] = np.nan
    init = (np.array([rng.uniform(0, 2)]), np.array([5], dtype=np.uint64), np.array([0], dtype=np.uint8))
    ours, ref = [a.copy() for a in init], [a.copy() for a in init]
    outs = [(np.empty(m), np.empty(m), np.empty(m), np.empty(m, np.uint8)) for _ in range(2)]
    args = (model.mean, model.scale, model.loadings, model.eigvals, model.t2_limit, model.q_limit, lam, 1.0, 0.7, k, w)
    _detect.pca_detect(X, *args, *ours, *outs[0])
    detect_reference.pca_detect(X, *args, *ref, *outs[1])
    for a, b in zip(ours, ref):
        close(a.astype(np.float64), b.astype(np.float64))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        close(a, b)
    assert_array_equal(outs[0][3], outs[1][3])
    assert np.isnan(outs[0][0]).sum() == np.isnan(X).any(axis=1).sum()


def test_shape_mismatch_raises_instead_of_overrunning() -> None:
    z = np.zeros(3)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _detect.ewma_detect(
            np.zeros((2, 3)),
            z,
            z + 1,
            z + 0.5,
            z + 1,
            z,
            1,
            1,
            np.zeros(2),
            np.zeros(3, np.uint64),
            np.zeros(3, np.uint8),
            np.empty((2, 3)),
            np.empty((2, 3), np.uint8),
        )
