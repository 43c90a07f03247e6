"""The drift test's ramp view alone on the simulated plant's temperature: false flags over many hours, drift size when flagged.

    python benchmarks/bench_drift_ramp.py [--hours 48] [--seed 1] [--told-all]

The pure plant (edge/sim/plant.py, no twin, no sockets) at the demo's tick (0.5 s), the reading
quantised to 0.1 degC as the demo's register delivers it, random setpoint moves as in
bench_sensor_faults.py (every 60-300 s one of: heater 10-90 %, pump speed 30-100 %, valve 30-80 %).
Each reading goes through ``edge.twin.validation.RampTest`` with the demo's defaults, told of the
heater moves (the identified model's input) as the twin's validation hook tells it; pump and valve
moves are unknown to it (``--told-all``: it is told of them too, each pausing it for a window).
Reports the flags raised in ``--hours`` of normal operation (per day), then drifts of 0.5 and
1.0 degC/min (three plants each with moves, one at a steady operating point): the drift's size
when flagged. Cheap (about a minute for 48 h on a loaded 2-core VM),
so it covers much more normal operation than bench_sensor_faults.py, whose twin is far slower.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.sim.plant import Fault, Plant, random_move
from edge.twin.validation import RampTest, ValidationParams

TICK = 0.5
NOISE_VAR = 0.1**2 + 0.1**2 / 12  # the reading's noise and quantisation, as the validator learns it


def flags(seed: int, minutes: float, drift: float = 0.0, onset_s: float = math.inf, moves: bool = True, told_all: bool = False) -> list[float]:
    """Times (s) the ramp view raises a flag on one plant."""
    p = ValidationParams()
    test = RampTest(TICK, p.drift_window_s, p.drift_tau_s, p.drift_min_rate)
    plant = Plant(seed=seed)
    rng = np.random.default_rng([seed, 7])
    next_move, t, out, was = 0.0, 0.0, [], False
    while t < minutes * 60:
        if moves and t >= next_move:
            next_move = t + rng.uniform(60, 300)
            if random_move(plant, rng) == "heater" or told_all:
                test.input_moved()
        if t >= onset_s and plant.fault is Fault.NONE:
            plant.fault_strength = drift  # the plant's drift rate is 1 degC/min x strength
            plant.fault = Fault.SENSOR_DRIFT
        plant.step(TICK)
        t += TICK
        seen = test.add(round(plant.measurements()["tank_temp_c"] * 10) / 10, NOISE_VAR)
        if seen and not was:
            out.append(t)
        was = seen
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=48.0, help="normal operation (in 3 h plants)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--told-all", action="store_true", help="also tell the ramp view of pump and valve moves (each pauses it for a window)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    n = max(1, round(args.hours / 3))
    raised = sum(len(flags(args.seed * 1000 + i, 180.0, told_all=args.told_all)) for i in range(n))
    print(f"normal operation: {raised} flags in {3 * n} h = {raised / (3 * n) * 24:.1f} per day per asset")
    onset = 900.0
    for rate in (0.5, 1.0):
        sizes = []
        for i, moving in enumerate((True, True, True, False)):
            f = [x for x in flags(args.seed * 1000 + 500 + i, 30.0, rate, onset, moving, args.told_all) if x > onset]
            sizes.append(f"{(f[0] - onset) / 60 * rate:.1f} degC ({f[0] - onset:.0f} s)" if f else "not within 15 min")
        print(f"drift {rate} degC/min, size when flagged (3 with moves, 1 steady): " + ", ".join(sizes))
    print(f"({time.perf_counter() - started:.0f} s wall on a shared, loaded machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
