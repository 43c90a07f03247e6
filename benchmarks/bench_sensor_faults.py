"""Sensor validation on the simulated plant: detection rate and delay, confusion, false alarms.

    python benchmarks/bench_sensor_faults.py [--quick] [--seed 1]

Setup: the demo's asset (config/demo.toml: temperature identified from the heater, flow related
to motor current and pump speed, ``[assets.validation]`` defaults) watching the pure plant
(edge/sim/plant.py, no sockets) at the demo's tick (0.5 s), readings quantised as the demo's
Modbus registers deliver them (edge/sim/drive.py). Many plants share one twin runner, one asset
each. Every plant runs ``warm-up`` minutes of normal operation with random setpoint moves (every
60-300 s one of: heater 10-90 %, pump speed 30-100 %, valve 30-80 %), then:

* fault plants: one fault (stuck, drift, spike, bearing wear, flow sensor; in turn) at a random
  time in the next ``onset`` minutes, with a random strength (drift 0.25-1 degC/min, spike
  2.5-10 degC, flow sensor 30-100 % of the flow lost, bearing wear x0.5-2), watched for
  ``watch`` minutes while the setpoint moves go on;
* normal plants: no fault; with the fault plants' time before their onset, the exposure for
  false alarms.

Per fault: detection rate (a sensor flag on any signal after the onset, within the watch time),
delay (median, p90), the drift's size when flagged, and the confusion table (the first flag
raised: signal and kind). Bearing wear is a process fault, not a sensor fault: the right answer
there is no sensor flag (the asset's anomaly score is the twin's other detector; its first alarm
is shown too). False alarms: flags raised on normal operation after the warm-up, per day.
Seeded: the same seed gives the same figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.config import load_config
from edge.sim.drive import PlantDrive
from edge.sim.plant import Fault, Plant, random_move

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"
FAULTS = (Fault.STUCK_SENSOR, Fault.SENSOR_DRIFT, Fault.SPIKE, Fault.BEARING_WEAR, Fault.FLOW_SENSOR)
NAMES = {Fault.STUCK_SENSOR: "stuck", Fault.SENSOR_DRIFT: "drift", Fault.SPIKE: "spike", Fault.BEARING_WEAR: "bearing_wear", Fault.FLOW_SENSOR: "flow_sensor"}
STRENGTH = {
    Fault.STUCK_SENSOR: (1.0, 1.0),
    Fault.SENSOR_DRIFT: (0.25, 1.0),
    Fault.SPIKE: (0.5, 2.0),
    Fault.BEARING_WEAR: (0.5, 2.0),
    Fault.FLOW_SENSOR: (0.3, 1.0),
}


@dataclass
class Run:
    fault: Fault
    onset_s: float  # plant time of the fault's onset (inf: a normal plant)
    strength: float = 1.0
    first: tuple[float, str] | None = None  # (delay s, "signal: kind") of the first flag after the onset
    alarm_delay: float | None = None  # first asset alarm after the onset
    false: Counter[str] = field(default_factory=Counter)  # flags raised on normal operation (after the warm-up, before the onset)
    kinds: Counter[str] = field(default_factory=Counter)


def simulate(n_per_fault: int, n_normal: int, warmup_min: float, onset_min: float, watch_min: float, seed: int) -> tuple[list[Run], float, float]:
    asset = load_config(DEMO).assets[0]
    rng = np.random.default_rng(seed)
    runs: list[Run] = []
    for i in range(n_per_fault * len(FAULTS)):
        f = FAULTS[i % len(FAULTS)]
        lo, hi = STRENGTH[f]
        runs.append(Run(f, 60 * (warmup_min + rng.uniform(0, onset_min)), float(rng.uniform(lo, hi))))
    runs += [Run(Fault.NONE, float("inf")) for _ in range(n_normal)]
    plants = [Plant(seed=seed * 1000 + i) for i in range(len(runs))]
    drive = PlantDrive.build(asset, plants)
    tick = asset.tick_s
    moves = [np.random.default_rng([seed, i]) for i in range(len(runs))]
    next_move = [0.0] * len(runs)
    chans = [drive.twin.validation.by_asset[f"tank{i + 1}"] for i in range(len(runs))]
    was: list[dict[str, set[str]]] = [{c.signal: set() for c in ch} for ch in chans]
    alarm_keys = [f"tank{i + 1}.alarm" for i in range(len(runs))]
    total_s = 60 * (warmup_min + onset_min + watch_min)
    warm_s = 60 * warmup_min
    started = time.perf_counter()
    t = 0.0
    while t < total_s:
        for i, (plant, run, mrng) in enumerate(zip(plants, runs, moves)):
            if t >= next_move[i]:
                next_move[i] = t + mrng.uniform(60, 300)
                random_move(plant, mrng)
            if run.fault is not Fault.NONE and plant.fault is Fault.NONE and t >= run.onset_s:
                plant.fault_strength = run.strength
                plant.fault = run.fault
        drive.run(1)
        t += tick
        for i, run in enumerate(runs):
            for c in chans[i]:
                flags = set(c.v.flags)
                for kind in sorted(flags - was[i][c.signal]):  # each kind newly raised on this signal
                    if t < warm_s:
                        pass
                    elif t < run.onset_s:
                        run.false[f"{c.signal}: {kind}"] += 1
                    elif t <= run.onset_s + 60 * watch_min:
                        run.kinds[f"{c.signal}: {kind}"] += 1
                        if run.first is None:
                            run.first = (t - run.onset_s, f"{c.signal}: {kind}")
                was[i][c.signal] = flags
            if run.alarm_delay is None and run.onset_s <= t <= run.onset_s + 60 * watch_min and drive.twin.registry.latest(alarm_keys[i]).value is True:
                run.alarm_delay = t - run.onset_s
    wall = time.perf_counter() - started
    exposure_h = sum(max(0.0, min(r.onset_s, total_s) - warm_s) for r in runs) / 3600
    return runs, exposure_h, wall


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(runs: list[Run], exposure_h: float, wall: float, n_plants: int, sim_min: float) -> None:
    print(f"{n_plants} plants x {sim_min:.0f} min simulated in {wall:.1f} s wall (machine shared and loaded; figures are detection, not speed)")
    print()
    print(f"{'fault':<13} {'runs':>4} {'detected':>8} {'median s':>9} {'p90 s':>7} {'asset alarm':>11}  first flag raised (count)")
    for f in FAULTS:
        rs = [r for r in runs if r.fault is f]
        hits = [r.first[0] for r in rs if r.first is not None]
        conf = Counter(r.first[1] if r.first is not None else "none" for r in rs)
        alarms = sum(r.alarm_delay is not None for r in rs)
        print(
            f"{NAMES[f]:<13} {len(rs):>4} {len(hits):>4}/{len(rs):<3} {pct(hits, 50):>9.0f} {pct(hits, 90):>7.0f} {alarms:>6}/{len(rs):<4}  "
            + ", ".join(f"{k} ({v})" for k, v in sorted(conf.items()))
        )
    for r in runs:
        if r.fault is Fault.SENSOR_DRIFT:
            seen = f"flagged after {r.first[0]:.0f} s at {r.first[0] * r.strength / 60:.2f} degC" if r.first is not None else "not flagged"
            print(f"  drift {r.strength:.2f} degC/min from {r.onset_s / 60:.1f} min: {seen}")
    drift = [(r.first[0] * r.strength / 60, r.strength) for r in runs if r.fault is Fault.SENSOR_DRIFT and r.first is not None]
    if drift:
        sizes = [d for d, _ in drift]
        print(f"\ndrift size when flagged: median {statistics.median(sizes):.2f} degC, max {max(sizes):.2f} degC (goal: < 2.5 degC)")
    stuck = [r.first[0] for r in runs if r.fault is Fault.STUCK_SENSOR and r.first is not None]
    if stuck:
        print(f"stuck delay: max {max(stuck):.0f} s (goal: <= 60 s)")
    kinds: Counter[str] = Counter()
    for r in runs:
        kinds.update(r.false)
    false = sum(kinds.values())
    per_day = false / exposure_h * 24 if exposure_h else float("nan")
    which = ", ".join(f"{k} ({v})" for k, v in sorted(kinds.items()))
    tail = f" [{which}]" if which else ""
    print(f"false alarms: {false} flags in {exposure_h:.1f} h of normal operation after the warm-up: {per_day:.1f} per day per asset{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter runs (about 20 s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--normal-hours", type=float, default=24.0, help="then normal operation only, for the false alarms (0: none)")
    args = ap.parse_args(argv)
    if args.quick:
        per_fault, normal, warm, onset, watch = 1, 1, 10.0, 2.0, 4.0
    else:
        per_fault, normal, warm, onset, watch = 3, 2, 20.0, 8.0, 6.0
    runs, exposure_h, wall = simulate(per_fault, normal, warm, onset, watch, args.seed)
    report(runs, exposure_h, wall, len(runs), warm + onset + watch)
    if args.normal_hours > 0 and not args.quick:
        plants = 8
        minutes = args.normal_hours * 60 / plants
        runs, exposure_h, wall = simulate(0, plants, warm, minutes, 0.0, args.seed + 100)
        kinds: Counter[str] = Counter()
        for r in runs:
            kinds.update(r.false)
        which = ", ".join(f"{k} ({v})" for k, v in sorted(kinds.items()))
        print(f"\nnormal operation only, {plants} plants x {minutes + warm:.0f} min ({wall:.0f} s wall):")
        n = sum(kinds.values())
        tail = f" [{which}]" if which else ""
        print(f"false alarms: {n} flags in {exposure_h:.1f} h after the warm-up: {n / exposure_h * 24:.2f} per day per asset{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
