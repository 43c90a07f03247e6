"""Speed of the detector kernels, compiled and NumPy reference (for ``bench_skab.py``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from kernels import detect, detect_reference


def best_ns(step: Callable[[], None], units: int, budget_s: float) -> float:
    best = math.inf
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - start < budget_s:
            step()
            calls += 1
        best = min(best, (time.perf_counter() - start) / (calls * units) * 1e9)
    return best


def speed(budget_s: float) -> list[str]:
    rng = np.random.default_rng(0)
    impls = {"numpy": detect_reference}
    try:
        from kernels import _detect

        impls["cython"] = _detect
    except ImportError:
        pass
    lines = ["| kernel | shape per call | " + " | ".join(f"{k} ns" for k in impls) + " |", "|---|---|" + "---|" * len(impls)]
    for n in (1, 100, 10_000):
        e = rng.normal(size=(1, n))
        mu, sig, lam, on, off = np.zeros(n), np.ones(n), np.full(n, 0.2), np.full(n, 3.0), np.full(n, 2.4)
        for name in ("ewma", "cusum"):
            cells = []
            for impl in impls.values():
                st = [np.zeros(n), np.zeros(n), np.zeros(n, np.uint64), np.zeros(n, np.uint8)]
                out = (np.empty((1, n)), np.empty((1, n), np.uint8))
                if name == "ewma":
                    fn = partial(impl.ewma_detect, e, mu, sig, lam, on, off, 1, 1, st[0], st[2], st[3], *out)
                else:
                    fn = partial(impl.cusum_detect, e, mu, sig, lam, on, off, 1, 1, st[0], st[1], st[2], st[3], *out)
                cells.append(f"{best_ns(fn, n, budget_s):.1f}")
            lines.append(f"| {name} (one tick) | {n} channels | " + " | ".join(cells) + " |")
    for m, p, a in ((1, 14, 6), (1000, 14, 6), (1000, 64, 16)):
        model = detect.fit_pca(rng.normal(size=(400, p)) @ rng.normal(size=(p, p)), components=a)
        X = rng.normal(size=(m, p))
        cells = []
        for impl in impls.values():
            st = (np.zeros(1), np.zeros(1, np.uint64), np.zeros(1, np.uint8))
            out = (np.empty(m), np.empty(m), np.empty(m), np.empty(m, np.uint8))
            args = (model.mean, model.scale, model.loadings, model.eigvals, model.t2_limit, model.q_limit, 0.2, 1.25, 1.0, 1, 1)
            fn = partial(impl.pca_detect, X, *args, *st, *out)
            cells.append(f"{best_ns(fn, m, budget_s):.1f}")
        lines.append(f"| pca T2+Q | {m} samples x {p} features, {a} components | " + " | ".join(cells) + " |")
    return lines
