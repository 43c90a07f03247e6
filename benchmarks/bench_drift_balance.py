"""The drift test's balance view alone on the simulated plant's temperature: false flags over many hours, drift size when flagged.

    python benchmarks/bench_drift_balance.py [--hours 48] [--seeds 1,2,3,4] [--sigma 5] [--speed]

The pure plant (edge/sim/plant.py, no twin, no sockets) at the demo's tick (0.5 s), readings
quantised as the demo's registers deliver them, random setpoint moves as in bench_sensor_faults.py
(every 60-300 s one of: heater 10-90 %, pump speed 30-100 %, valve 30-80 %). The temperature and
the demo's ``explained_by`` tags (heater setpoint x enable, ambient, flow / level) go through
``edge.twin.validation.BalanceTest`` with the demo's defaults. Per seed: the flags raised in
``--hours`` of normal operation (3 h plants, each from a cold start, flags counted after 20 min),
then drifts of 0.5 and 1.0 degC/min from minute 30 of a fresh plant (three plants with moves, one
whose setpoints stay where they start): the drift's size when flagged ("missed": not within 20 min).
The defaults were chosen on seeds 1-4; ``--seeds 5,6,7,8`` is the held-out check.
``--speed``: only the cost of ``BalanceTest.add`` on one plant's recorded readings (per tick
within a period, per period end, and per tick in all), best of 3.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.sim.plant import Fault, Plant, random_move
from edge.twin.validation import BalanceTest, ValidationParams

TICK = 0.5
WARM_S = 20 * 60.0
ONSET_S = 30 * 60.0
SPANS = [100.0, 1.0, 100.0, 200.0, 100.0]  # heater %, heater enable, ambient (-40..60), flow l/min, level %
TERMS = [(0, 1, "*"), (2, None, ""), (3, 4, "/")]  # the demo's explained_by
NOISE_VAR = 0.1**2 + 0.1**2 / 12  # the reading's noise and quantisation, as the validator learns it


def q(x: float, step: float) -> float:
    return round(x / step) * step


def flags(seed: int, minutes: float, sigma: float, drift: float = 0.0, moves: bool = True) -> list[float]:
    """Times (s) the balance view raises a flag on one plant."""
    p = ValidationParams()
    test = BalanceTest(TICK, TERMS, SPANS, p.drift_window_s, sigma)
    plant = Plant(seed=seed)
    rng = np.random.default_rng([seed, 7])
    t, next_move, was, out = 0.0, 0.0, False, []
    while t < minutes * 60:
        if moves and t >= next_move:
            next_move = t + rng.uniform(60, 300)
            random_move(plant, rng)
        if drift and t >= ONSET_S and plant.fault is Fault.NONE:
            plant.fault_strength = drift
            plant.fault = Fault.SENSOR_DRIFT
        plant.step(TICK)
        t += TICK
        m = plant.measurements()
        xs = [q(plant.heater_pct, 0.1), float(plant.heater_enable), q(m["ambient_temp_c"], 0.1), m["flow_l_min"], q(m["level_pct"], 0.1)]
        seen = test.add(q(m["tank_temp_c"], 0.1), xs, noise_var=NOISE_VAR)
        if seen and not was and t > WARM_S:
            out.append(t)
        was = seen
    return out


def speed() -> None:
    """The cost of the view per signal, on 2 h of one plant's readings (recorded first)."""
    plant = Plant(seed=1)
    rng = np.random.default_rng([1, 7])
    rows, next_move = [], 0.0
    for k in range(int(2 * 3600 / TICK)):
        if k * TICK >= next_move:
            next_move = k * TICK + rng.uniform(60, 300)
            random_move(plant, rng)
        plant.step(TICK)
        m = plant.measurements()
        xs = [q(plant.heater_pct, 0.1), float(plant.heater_enable), q(m["ambient_temp_c"], 0.1), m["flow_l_min"], q(m["level_pct"], 0.1)]
        rows.append((q(m["tank_temp_c"], 0.1), xs))
    p = ValidationParams()
    best_all, best_tick = math.inf, math.inf
    for _ in range(3):
        test = BalanceTest(TICK, TERMS, SPANS, p.drift_window_s, p.balance_sigma)
        t0 = time.perf_counter()
        for y, xs in rows:
            test.add(y, xs, noise_var=NOISE_VAR)
        best_all = min(best_all, (time.perf_counter() - t0) / len(rows))
        test.per_period = len(rows) + 1  # no period ends: the per-tick part alone
        t0 = time.perf_counter()
        for y, xs in rows:
            test.add(y, xs, noise_var=NOISE_VAR)
        best_tick = min(best_tick, (time.perf_counter() - t0) / len(rows))
    per_period = (best_all - best_tick) * round(10.0 / TICK)
    print(f"BalanceTest.add: {best_tick * 1e6:.1f} us per tick, {per_period * 1e6:.0f} us per period end", end="")
    print(f", {best_all * 1e6:.1f} us per tick in all ({len(rows)} ticks, best of 3)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=48.0, help="normal operation per seed (in 3 h plants)")
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("--sigma", type=float, default=ValidationParams().balance_sigma, help="the level (balance_sigma)")
    ap.add_argument("--speed", action="store_true", help="only the cost per tick and per period")
    args = ap.parse_args(argv)
    if args.speed:
        speed()
        return 0
    started = time.perf_counter()
    n = max(1, round(args.hours / 3))
    total_flags, total_h = 0, 0.0
    sizes: dict[float, list[float]] = {0.5: [], 1.0: []}
    missed: dict[float, int] = {0.5: 0, 1.0: 0}
    for seed in (int(s) for s in args.seeds.split(",")):
        raised = sum(len(flags(seed * 1000 + i, 180.0, args.sigma)) for i in range(n))
        hours = n * (180.0 - WARM_S / 60) / 60
        total_flags, total_h = total_flags + raised, total_h + hours
        line = [f"seed {seed}: {raised} flags in {hours:.0f} h of normal operation"]
        for rate in (0.5, 1.0):
            cells = []
            for i, moving in enumerate((True, True, True, False)):
                f = [x for x in flags(seed * 1000 + 500 + i, 50.0, args.sigma, rate, moving) if x > ONSET_S]
                if f:
                    sizes[rate].append((f[0] - ONSET_S) / 60 * rate)
                    cells.append(f"{sizes[rate][-1]:.1f}")
                else:
                    missed[rate] += 1
                    cells.append("missed")
            line.append(f"{rate} degC/min: " + " ".join(cells))
        print("; ".join(line), flush=True)
    print(f"\nnormal operation: {total_flags} flags in {total_h:.0f} h = {total_flags / total_h * 24:.2f} per day per asset")
    for rate in (0.5, 1.0):
        s = sizes[rate]
        over = sum(x >= 2.5 for x in s)
        print(
            f"drift {rate} degC/min: {len(s)}/{len(s) + missed[rate]} flagged within 20 min; size when flagged median {statistics.median(s):.2f}, "
            f"max {max(s):.2f} degC; {over + missed[rate]} not flagged before 2.5 degC"
        )
    print(f"({time.perf_counter() - started:.0f} s wall on a shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
