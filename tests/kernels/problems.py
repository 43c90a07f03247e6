"""Seeded random filter problems shared by the kernel tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Problem:
    """Inputs of one ``kalman_step`` call; ``fresh_outputs`` gives the in-place arrays."""

    x: np.ndarray  # (n, s)
    P: np.ndarray  # (n, s, s), symmetric positive definite
    F: np.ndarray  # (s, s)
    Q: np.ndarray  # (s, s), symmetric positive semi-definite
    H: np.ndarray  # (s,)
    R: np.ndarray  # (n,), > 0
    z: np.ndarray  # (n,), about nan_fraction of it NaN

    def copy_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """New ``(x, P, innov, innov_var)`` arrays to be updated in place."""
        n = self.x.shape[0]
        return self.x.copy(), self.P.copy(), np.full(n, -1.0), np.full(n, -1.0)


def random_problem(rng: np.random.Generator, n: int, s: int, *, nan_fraction: float = 0.2) -> Problem:
    """A well-scaled problem: F near identity, covariances of order 1, R in [0.1, 2]."""
    F = np.eye(s) + rng.normal(0.0, 0.3, (s, s))
    B = rng.normal(size=(s, s))
    Q = 0.1 * (B @ B.T)
    A = rng.normal(size=(n, s, s))
    P = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(s)
    z = rng.normal(0.0, 2.0, n)
    z[rng.random(n) < nan_fraction] = np.nan
    return Problem(
        x=rng.normal(size=(n, s)),
        P=np.ascontiguousarray(P),
        F=F,
        Q=Q,
        H=rng.normal(size=s),
        R=rng.uniform(0.1, 2.0, n),
        z=z,
    )
