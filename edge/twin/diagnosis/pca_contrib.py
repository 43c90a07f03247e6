"""Contributors of an episode from the asset's PCA detector: each signal's reconstruction-based
contribution (``rbc``) to the detector's combined index, averaged over the episode's samples.

The PCA detector (edge/twin/detector.py) scores ``pca_features`` of the signals: the levels (except
``rate_only`` signals) and the first differences. A signal is the group of its columns, so its RBC
is what reconstructing its level and its rate together removes from ``T^2 / T2_limit + Q / Q_limit``
(the score is the larger of the two ratios; their sum keeps both in view). Per-sample RBCs are
averaged over the episode (Alcala & Qin's average over the faulty samples) and given as shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge.twin.detector import pca_features
from edge.twin.diagnosis.rbc import combined_matrix, mean_rbc
from kernels.detect import PcaModel


@dataclass(frozen=True, slots=True)
class PcaView:
    """What the contributions need of a fitted PCA detector: its model and its feature layout."""

    model: PcaModel
    differences: bool
    rate_only: tuple[int, ...]  # indexes of the signals monitored by their rate only


def feature_groups(p: int, differences: bool, rate_only: Sequence[int] = ()) -> list[list[int]]:
    """The ``pca_features`` columns of each of *p* signals (levels first, then differences)."""
    levels = [j for j in range(p) if j not in rate_only]
    rates = list(range(p)) if differences else sorted(rate_only)
    groups: list[list[int]] = [[] for _ in range(p)]
    for col, j in enumerate([*levels, *rates]):
        groups[j].append(col)
    return groups


def signal_contributions(view: PcaView, rows: np.ndarray) -> np.ndarray | None:
    """Each signal's share (sum 1) of the mean RBC over *rows* (m, p raw readings, in the
    detector's signal order; rows with a NaN are left out); None when fewer than two rows remain
    or nothing contributes."""
    X = np.asarray(rows, dtype=float)
    m = view.model
    if X.ndim != 2:
        return None
    p = X.shape[1]
    groups = feature_groups(p, view.differences, view.rate_only)
    if sum(len(g) for g in groups) != m.mean.shape[0] or any(not g for g in groups):
        return None  # the detector watches other features than these signals give
    X = X[~np.isnan(X).any(axis=1)]
    if len(X) < 2:
        return None
    feats = pca_features(X, view.differences, view.rate_only)[1:]  # the first row has no difference
    z = (feats - m.mean) / m.scale
    M = combined_matrix(m.loadings, m.eigvals, m.t2_limit, m.q_limit)
    r = mean_rbc(z, M, groups)
    total = float(r.sum())
    if not np.isfinite(total) or total <= 0:
        return None
    return r / total


def pca_view(detector: object | None, signals: Sequence[str]) -> PcaView | None:
    """The ``PcaView`` of an asset's detector (edge.twin.detector.AssetDetector) once it is fitted,
    or None (no detector, not PCA, still training)."""
    if detector is None or getattr(detector, "kind", None) != "pca":
        return None
    fitted = getattr(detector, "detector", None)
    model = getattr(fitted, "model", None)
    if not isinstance(model, PcaModel):
        return None
    cfg = detector.cfg  # type: ignore[attr-defined]
    rate_only = tuple(list(signals).index(s) for s in cfg.rate_only if s in signals)
    return PcaView(model, bool(cfg.differences), rate_only)


def pca_source(lookup: Callable[[str], object | None], asset: str, signals: Sequence[str]) -> Callable[[], PcaView | None]:
    """The view of *asset*'s current detector (``lookup(asset)``), looked up at each call: a reset
    replaces the detector."""
    names = list(signals)
    return lambda: pca_view(lookup(asset), names)
