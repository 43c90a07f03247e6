"""Model matrices: the documented F, Q = q G G^T and H, and argument errors that name the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from kernels.kalman import STATE_SIZE, model_matrices


@pytest.mark.parametrize("kind", sorted(STATE_SIZE))
def test_shapes_and_measurement_row(kind: str) -> None:
    s = STATE_SIZE[kind]
    F, Q, H = model_matrices(kind, 0.5, 2.0)
    assert (F.shape, Q.shape, H.shape) == ((s, s), (s, s), (s,))
    assert all(a.dtype == np.float64 for a in (F, Q, H))
    assert_array_equal(H, np.eye(s)[0])
    assert_array_equal(Q, Q.T)
    assert np.linalg.eigvalsh(Q).min() >= -1e-12 * np.abs(Q).max()


def test_constant_acceleration_matrices() -> None:
    dt, q = 0.2, 3.0
    F, Q, _ = model_matrices("constant_acceleration", dt, q)
    assert_allclose(F, [[1, dt, dt * dt / 2], [0, 1, dt], [0, 0, 1]], rtol=1e-15)
    G = np.array([dt**3 / 6, dt**2 / 2, dt])  # white-noise jerk held over the step
    assert_allclose(Q, q * np.outer(G, G), rtol=1e-15)


def test_random_walk_noise_is_q_dt_squared() -> None:
    F, Q, H = model_matrices("random_walk", 0.5, 4.0)
    assert (F[0, 0], Q[0, 0], H[0]) == (1.0, 1.0, 1.0)


def test_constant_velocity_equals_filterpy_discrete_white_noise() -> None:
    from filterpy.common import Q_discrete_white_noise

    F, Q, _ = model_matrices("constant_velocity", 0.3, 1.7)
    assert_allclose(F, [[1, 0.3], [0, 1]], rtol=1e-15)
    assert_allclose(Q, Q_discrete_white_noise(2, dt=0.3, var=1.7), rtol=1e-14)


def test_zero_process_noise_gives_zero_q() -> None:
    _, Q, _ = model_matrices("constant_velocity", 1.0, 0.0)
    assert not Q.any()


def test_returns_fresh_arrays() -> None:
    F1, _, _ = model_matrices("random_walk", 1.0, 1.0)
    F1[0, 0] = 5.0
    assert model_matrices("random_walk", 1.0, 1.0)[0][0, 0] == 1.0


@pytest.mark.parametrize(
    ("kind", "dt_s", "q", "argument"),
    [
        ("brownian", 1.0, 1.0, "kind"),
        (None, 1.0, 1.0, "kind"),
        ("random_walk", 0.0, 1.0, "dt_s"),
        ("random_walk", -1.0, 1.0, "dt_s"),
        ("random_walk", math.nan, 1.0, "dt_s"),
        ("random_walk", math.inf, 1.0, "dt_s"),
        ("constant_velocity", 1.0, -1e-9, "q"),
        ("constant_velocity", 1.0, math.nan, "q"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kind: object, dt_s: float, q: float, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"^{argument} "):
        model_matrices(kind, dt_s, q)  # type: ignore[arg-type]


def test_state_size_is_read_only() -> None:
    with pytest.raises(TypeError):
        STATE_SIZE["x"] = 4  # type: ignore[index]
