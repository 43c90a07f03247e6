"""Benchmark of one Kalman predict + update, in nanoseconds per channel-update.

    python benchmarks/bench_kalman.py [--quick]

Columns, for state sizes s = 2, 3, 6 and n = 1, 100, 10,000 channels:
    cython    kernels._kalman.kalman_step called directly (no argument checks)
    wrapper   kernels.kalman_step (argument checks + the compiled kernel); shows the per-call overhead
    numpy     kernels.kalman_reference.kalman_step
    filterpy  filterpy.kalman.KalmanFilter, one object per channel, predict() + update() in a Python loop
and the ratios numpy/cython and filterpy/cython.

filterpy's cost per channel does not depend on n (each channel is its own filter object), so only
min(n, 20) channels are stepped and the per-channel time is extrapolated to n. Every timing is the
best of 3 runs of a time-boxed loop; the whole benchmark stays well under a minute.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import kernels
from kernels import kalman_reference as reference
from kernels.kalman import model_matrices

try:
    from kernels import _kalman
except ImportError:
    _kalman = None

FILTERPY_CHANNELS = 20
FILTERPY_STEPS = 20


def model(s: int, dt_s: float = 0.1, q: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """s = 2, 3: constant velocity / acceleration; s = 6: two coupled constant-acceleration axes."""
    if s in (2, 3):
        return model_matrices("constant_velocity" if s == 2 else "constant_acceleration", dt_s, q)
    F3, Q3, _ = model_matrices("constant_acceleration", dt_s, q)
    F, Q = np.zeros((6, 6)), np.zeros((6, 6))
    F[:3, :3] = F[3:, 3:] = F3
    F[0, 3] = 0.01
    Q[:3, :3] = Q[3:, 3:] = Q3
    return F, Q, np.array([1.0, 0.0, 0.0, 0.5, 0.0, 0.0])


def best_ns_per_update(step: Callable[[], None], updates_per_call: int, budget_s: float) -> float:
    """Best of 3 time-boxed loops (each at least 3 calls) of *step*; ns per channel-update."""
    best = float("inf")
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while True:
            step()
            calls += 1
            elapsed = time.perf_counter() - start
            if calls >= 3 and elapsed >= budget_s:
                break
        best = min(best, elapsed / (calls * updates_per_call))
    return best * 1e9


def bench_kernel(fn: Callable[..., None], F: np.ndarray, Q: np.ndarray, H: np.ndarray, n: int, budget_s: float) -> float:
    rng = np.random.default_rng(0)
    s = H.shape[0]
    x, P = np.zeros((n, s)), np.tile(10.0 * np.eye(s), (n, 1, 1))
    R, z = np.full(n, 0.04), rng.normal(size=n)
    innov, innov_var = np.empty(n), np.empty(n)
    return best_ns_per_update(lambda: fn(x, P, F, Q, H, R, z, innov, innov_var), n, budget_s)


def bench_filterpy(F: np.ndarray, Q: np.ndarray, H: np.ndarray, n: int) -> float:
    from filterpy.kalman import KalmanFilter

    s = H.shape[0]
    filters = []
    for _ in range(min(n, FILTERPY_CHANNELS)):
        kf = KalmanFilter(dim_x=s, dim_z=1)
        kf.F, kf.Q, kf.H, kf.R, kf.P = F.copy(), Q.copy(), H.reshape(1, s).copy(), np.array([[0.04]]), 10.0 * np.eye(s)
        filters.append(kf)
    zs = np.random.default_rng(0).normal(size=FILTERPY_STEPS)

    def run() -> None:
        for z in zs:
            for kf in filters:
                kf.predict()
                kf.update(z)

    return best_ns_per_update(run, len(filters) * FILTERPY_STEPS, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter time boxes (noisier numbers)")
    args = parser.parse_args()
    budget_s = 0.03 if args.quick else 0.15

    print(f"kernels.IMPLEMENTATION={kernels.IMPLEMENTATION}  compiled={'yes' if _kalman else 'no'}  cpus={os.cpu_count()}  numpy={np.__version__}")
    print(f"filterpy: {FILTERPY_CHANNELS} channels x {FILTERPY_STEPS} steps timed, per-channel cost extrapolated to n")
    header = f"{'s':>2} {'n':>6} | {'cython':>9} {'wrapper':>9} {'numpy':>10} {'filterpy':>10} | {'numpy/cy':>9} {'filterpy/cy':>11}"
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for s in (2, 3, 6):
        F, Q, H = model(s)
        fp = bench_filterpy(F, Q, H, 1)  # per channel, same for every n
        for n in (1, 100, 10_000):
            np_ns = bench_kernel(reference.kalman_step, F, Q, H, n, budget_s)
            if _kalman is not None:
                cy_ns = bench_kernel(_kalman.kalman_step, F, Q, H, n, budget_s)
                wr_ns = bench_kernel(kernels.kalman_step, F, Q, H, n, budget_s)
                ratios = f"{np_ns / cy_ns:9.0f}x {fp / cy_ns:10.0f}x"
                cy, wr = f"{cy_ns:9.1f}", f"{wr_ns:9.1f}"
            else:
                cy = wr = f"{'n/a':>9}"
                ratios = f"{'n/a':>9} {'n/a':>11}"
            print(f"{s:>2} {n:>6} | {cy} {wr} {np_ns:10.1f} {fp:10.1f} | {ratios}")
    print(f"(ns per channel-update; total {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
