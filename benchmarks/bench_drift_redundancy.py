"""A drift test on the residual against what the related signals explain (a prototype, not in the validator).

    python benchmarks/bench_drift_redundancy.py [--window 18] [--need 3] [--sigma 8] [--hours 48] [--seed 1]

The heated tank's temperature obeys ``dT/dt = c0 + c1 T + c2 heater + c3 ambient + (c4 + c5 T) m``
with ``m = flow / level`` (the mixing rate): linear in coefficients learnt by recursive least
squares from 10 s means of the readings the demo delivers (temperature, heater setpoint, ambient,
flow, level). A drifting temperature sensor adds its rate to ``dT/dt`` that none of the related
signals explain; a pump or valve move is explained (through the measured flow and level).

Statistic: the sum over the last ``--window`` periods of the one-period residual ``dT - phi . c``,
with the coefficients as they were before the window (a period is learnt from only once it leaves
the window, and only while the statistic is quiet), skipping the two periods after any setpoint
move; its variance is learnt while quiet, plus ``UNC`` of the part the coefficients' uncertainty gives
it (``F' P F`` times the one-period residual variance, ``F`` the window's summed regressors: a
setpoint the model has not seen yet is uncertain there). ``--need`` consecutive periods above
``--sigma`` deviations flag. Runs the pure plant (edge/sim/plant.py) with the moves of
bench_drift_ramp.py (every 60-300 s one of heater, pump, valve): the flags in ``--hours`` of normal
operation after a 20-minute warm-up, then drifts of 0.5 and 1.0 degC/min (three plants with
moves, one steady), the drift's size when flagged.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.sim.plant import Fault, Plant, random_move

TICK = 0.5
PER = 20  # ticks per 10 s period
WARM_S = 20 * 60.0
LAMBDA = 0.9995  # forgetting per period
P0 = 1e4
GATE = 2.5  # learn only while the statistic is within this many deviations
MOVE_PERIODS = 2  # periods skipped after a setpoint move
UNC = 0.1  # share of the sum's variance from the coefficients' uncertainty added to its learnt variance


def q(x: float, step: float) -> float:
    return round(x / step) * step


def flags(seed: int, minutes: float, window: int, need: int, sigma: float, drift: float = 0.0, onset_s: float = math.inf, moves: bool = True) -> list[float]:
    """Times (s) the statistic raises a flag on one plant."""
    plant = Plant(seed=seed)
    rng = np.random.default_rng([seed, 7])
    next_move, t, last_move = 0.0, 0.0, -math.inf
    acc: list[tuple[float, ...]] = []
    prev: np.ndarray | None = None
    theta = np.zeros(6)
    cov = np.eye(6) * P0
    svar, learnt, run, flagged, stat, evar, unc = math.nan, 0, 0, False, 0.0, math.nan, 0.0
    win: deque[tuple[float, np.ndarray, bool]] = deque()
    out: list[float] = []
    while t < minutes * 60:
        if moves and t >= next_move:
            next_move, last_move = t + rng.uniform(60, 300), t
            random_move(plant, rng)
        if t >= onset_s and plant.fault is Fault.NONE:
            plant.fault_strength = drift
            plant.fault = Fault.SENSOR_DRIFT
        plant.step(TICK)
        t += TICK
        m = plant.measurements()
        acc.append((q(m["tank_temp_c"], 0.1), q(plant.heater_pct, 0.1), q(m["ambient_temp_c"], 0.1), m["flow_l_min"], q(m["level_pct"], 0.1)))
        if len(acc) < PER:
            continue
        a = np.mean(acc, axis=0)
        acc = []
        if prev is not None:
            y0, _, amb, flow, level = prev
            mix = flow / max(level, 1.0)
            phi = np.array([1.0, y0, a[1], amb, mix, mix * y0])
            win.append((float(a[0] - y0), phi, t - last_move < MOVE_PERIODS * PER * TICK + 1))
            if len(win) > window:
                d, f, moved = win.popleft()
                if not flagged and not moved and (math.isnan(svar) or (run == 0 and abs(stat) < GATE * math.sqrt(svar))):
                    g = cov @ f
                    k = g / (LAMBDA + f @ g)
                    e1 = d - f @ theta
                    theta = theta + k * e1
                    evar = e1 * e1 if math.isnan(evar) else 0.98 * evar + 0.02 * min(e1 * e1, 25 * evar)
                    cov_n = cov - np.outer(k, g)
                    cov = cov_n / LAMBDA if np.trace(cov_n) < 6 * P0 else cov_n
                    learnt += 1
            stat = sum(d - f @ theta for d, f, moved in win if not moved)
            fs = sum((f for d, f, moved in win if not moved), np.zeros(6))
            unc = float(fs @ cov @ fs) * evar if math.isfinite(evar) else 0.0
            if learnt >= 60 and len(win) == window:
                if not math.isnan(svar):
                    run = run + 1 if abs(stat) > sigma * math.sqrt(svar + UNC * unc) else 0
                if not flagged and run == 0 and (math.isnan(svar) or abs(stat) < GATE * math.sqrt(svar)):
                    s2 = stat * stat if math.isnan(svar) else min(stat * stat, 25 * svar)
                    svar = s2 if math.isnan(svar) else 0.97 * svar + 0.03 * s2
            now = run >= need
            if now and not flagged and t > WARM_S:
                out.append(t)
            flagged = now
        prev = a
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=18, help="periods (10 s) summed")
    ap.add_argument("--need", type=int, default=3, help="consecutive periods above the level to flag")
    ap.add_argument("--sigma", type=float, default=8.0, help="the level, in deviations of the sum")
    ap.add_argument("--hours", type=float, default=48.0, help="normal operation (in 3 h plants)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    n = max(1, round(args.hours / 3))
    raised = sum(len(flags(args.seed * 1000 + i, 180.0, args.window, args.need, args.sigma)) for i in range(n))
    print(f"normal operation: {raised} flags in {3 * n} h = {raised / (3 * n) * 24:.1f} per day per asset")
    onset = 1800.0
    for rate in (0.5, 1.0):
        sizes = []
        for i, moving in enumerate((True, True, True, False)):
            f = [x for x in flags(args.seed * 1000 + 500 + i, 50.0, args.window, args.need, args.sigma, rate, onset, moving) if x > onset]
            sizes.append(f"{(f[0] - onset) / 60 * rate:.1f} degC ({f[0] - onset:.0f} s)" if f else "not within 20 min")
        print(f"drift {rate} degC/min, size when flagged (3 with moves, 1 steady): " + ", ".join(sizes))
    print(f"({time.perf_counter() - started:.0f} s wall on a shared, loaded machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
