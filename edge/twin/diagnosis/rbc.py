"""Reconstruction-based contributions (RBC) of signals to a PCA detector's T^2, Q or combined index.

Pure NumPy. Alcala & Qin (2009), "Reconstruction-based contribution for process monitoring",
Automatica 45: a fault index of the standardized sample ``z`` is the quadratic form ``z' M z``,
with

* ``M = P diag(1/lambda) P'`` for Hotelling's T^2 (``t2_matrix``),
* ``M = I - P P'`` for Q, the squared prediction error (``q_matrix``),
* ``M = M_T2 / T2_limit + M_Q / Q_limit`` for the combined index (Alcala & Qin 2010,
  ``combined_matrix``), the sum of the two ratios the detector's score takes the larger of.

The RBC of a set of variables (the columns ``Xi`` of the identity they pick) is how much of the
index reconstructing ``z`` along them removes: the index drops to ``min_f (z - Xi f)' M (z - Xi f)``
and

    RBC = z' M Xi (Xi' M Xi)^+ Xi' M z,     for one variable i:  (xi_i' M z)^2 / (xi_i' M xi_i).

A fault of size ``f`` along variable i's direction gives it ``f^2 (xi_i' M xi_i)``, the largest RBC
of all variables (Alcala & Qin's Theorem 1); the plain contributions ``z_i (M z)_i`` or a diagonal
share do not have that guarantee once the variables are correlated. A signal that feeds the
detector more than one feature (its level and its first difference) is one group of columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["combined_matrix", "mean_rbc", "q_matrix", "rbc", "reconstructed_index", "t2_matrix"]

_TINY = 1e-12  # Xi' M Xi below this (a direction the index does not see): RBC 0


def t2_matrix(loadings: np.ndarray, eigvals: np.ndarray) -> np.ndarray:
    """``P diag(1/lambda) P'``: T^2 of a standardized sample z is ``z' M z``."""
    P = np.asarray(loadings, dtype=float)
    lam = np.asarray(eigvals, dtype=float)
    if P.ndim != 2 or lam.shape != (P.shape[1],) or not np.all(lam > 0):
        raise ValueError(f"loadings (p, a) and a eigenvalues > 0 needed, got {P.shape} and {lam.shape}")
    return (P / lam) @ P.T


def q_matrix(loadings: np.ndarray) -> np.ndarray:
    """``I - P P'``: Q (SPE) of a standardized sample z is ``z' M z``."""
    P = np.asarray(loadings, dtype=float)
    if P.ndim != 2:
        raise ValueError(f"loadings must be (p, a), got {P.shape}")
    return np.eye(P.shape[0]) - P @ P.T


def combined_matrix(loadings: np.ndarray, eigvals: np.ndarray, t2_limit: float, q_limit: float) -> np.ndarray:
    """``M_T2 / T2_limit + M_Q / Q_limit``: each index in units of its control limit, summed."""
    if not (t2_limit > 0 and q_limit > 0):
        raise ValueError(f"control limits must be > 0, got T2 {t2_limit!r}, Q {q_limit!r}")
    return t2_matrix(loadings, eigvals) / t2_limit + q_matrix(loadings) / q_limit


def _groups(p: int, groups: Sequence[Sequence[int]] | None) -> list[list[int]]:
    out = [[i] for i in range(p)] if groups is None else [list(g) for g in groups]
    for g in out:
        if not g or any(not 0 <= i < p for i in g):
            raise ValueError(f"a group of variables must name columns in 0..{p - 1}, got {g}")
    return out


def rbc(z: np.ndarray, M: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """RBC of each group of variables (default: each variable alone) to the index ``z' M z``.

    *z*: one standardized sample (p,) or rows (m, p); *M*: (p, p) symmetric positive semidefinite.
    Returns (k,) or (m, k) for k groups. Rows holding NaN give NaN.
    """
    Z = np.asarray(z, dtype=float)
    one = Z.ndim == 1
    Z = Z.reshape(1, -1) if one else Z
    M = np.asarray(M, dtype=float)
    p = Z.shape[1]
    if M.shape != (p, p):
        raise ValueError(f"M must be ({p}, {p}) for samples of {p} variables, got {M.shape}")
    MZ = Z @ M  # (m, p): rows of (M z)'
    out = np.empty((Z.shape[0], 0))
    cols = []
    for g in _groups(p, groups):
        sub = M[np.ix_(g, g)]  # Xi' M Xi
        if len(g) == 1:
            d = float(sub[0, 0])
            cols.append(MZ[:, g[0]] ** 2 / d if d > _TINY else np.zeros(Z.shape[0]))
            continue
        pinv = np.linalg.pinv(sub, rcond=1e-10, hermitian=True)
        v = MZ[:, g]  # (Xi' M z)'
        cols.append(np.einsum("mi,ij,mj->m", v, pinv, v))
    out = np.column_stack(cols) if cols else out
    return out[0] if one else out


def mean_rbc(z: np.ndarray, M: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """The mean over the rows of *z* (m, p; rows with NaN left out) of ``rbc``, without a row loop:
    each group's mean is ``sum(G * S[g, g])`` with ``G = (Xi' M Xi)^+`` and ``S`` the second moment of
    ``M z`` (p x p), so the cost grows with m p^2, not with m times the groups. Zeros for no rows."""
    Z = np.asarray(z, dtype=float)
    M = np.asarray(M, dtype=float)
    if Z.ndim != 2 or M.shape != (Z.shape[1], Z.shape[1]):
        raise ValueError(f"z must be (m, p) and M (p, p), got {Z.shape} and {M.shape}")
    Z = Z[~np.isnan(Z).any(axis=1)]
    gs = _groups(Z.shape[1], groups)
    if len(Z) == 0:
        return np.zeros(len(gs))
    MZ = Z @ M
    S = (MZ.T @ MZ) / len(Z)
    out = np.empty(len(gs))
    for k, g in enumerate(gs):
        sub = M[np.ix_(g, g)]
        if len(g) == 1:
            out[k] = S[g[0], g[0]] / sub[0, 0] if sub[0, 0] > _TINY else 0.0
        else:
            out[k] = float(np.sum(np.linalg.pinv(sub, rcond=1e-10, hermitian=True) * S[np.ix_(g, g)]))
    return out


def reconstructed_index(z: np.ndarray, M: np.ndarray, group: Sequence[int]) -> float:
    """The index ``z' M z`` after reconstructing *z* along the variables of *group* (least squares in
    M's metric): ``z' M z`` minus the group's RBC. For checks and reports."""
    zz = np.asarray(z, dtype=float)
    return float(zz @ M @ zz - rbc(zz, M, [group])[0])
