"""The twin's identified model and asset alarm against the built-in plant (pure physics, simulated time).

    python benchmarks/bench_twin_model.py [--quick] [--seeds 2]

Drives ``edge.sim.plant.Plant`` through the demo's ``tank1`` twin (``edge.sim.twin_rig``: 0.5 s
ticks, heater -> temperature FOPDT model with 10 s periods, readings quantised like the Modbus
registers), no sockets. Per seed, the model is identified on random heater steps (20..100 %,
every 2..10 min) for ``--ident-s``; copies of that twin then run each scenario:

* **forecast**: random heater steps go on; every published Model/Forecast (at a period boundary,
  and mid-period when the input changes) is checked against the measured block average it
  predicts: interval coverage (nominal 95 %), mean half-width, the 95th percentile of the
  absolute error (what a calibrated half-width would be), and per regime (forecasts made within
  60 s after a setpoint step, and the others: input unchanged for longer) coverage and mean
  half-width, with the largest error after a step. Printed per seed and pooled. The first
  ``--settle-s`` are not scored.
* **heater step**: 40 % for 10 min, then 100 % (within the identified range) for 10 min: asset
  alarms raised after the step (nuisance alarms per step).
* **flow fault**: the flowmeter reads 0 for 2..5 min, then recovers: seconds from the recovery to
  the alarm's release, and alarms raised after the recovery.
* **drift**: the temperature sensor drifts +0.5 degC/min for 10 min, then recovers: the largest
  gain and time constant error against the model before the drift, during the drift, and in the
  10 min after it (learning again).

Run time is bounded by the sim durations: about 110,000 twin ticks (about 1.5 min of CPU on the
2-core VM; ``--quick`` about 17,000, 15 s); the wall time printed is longer on a loaded machine.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path

import numpy as np
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edge.sim.params import Fault, PlantParams
from edge.sim.twin_rig import TwinRig, make_rig

TEMP = "tank1_plc.temperature"
K = "tank1.temperature.model_"


def identified(seed: int, ident_s: float) -> tuple[TwinRig, np.random.Generator]:
    rig = make_rig(seed=seed, params=PlantParams(sensor_drift_rate_c_per_min=0.5))
    rng = np.random.default_rng(seed + 1000)
    t = 0.0
    while t < ident_s:
        rig.plant.heater_pct = float(rng.uniform(20, 100))
        dwell = float(rng.uniform(120, 600))
        rig.run(dwell)
        t += dwell
    return rig, rng


def forecast_scenario(rig: TwinRig, rng: np.random.Generator, run_s: float, settle_s: float) -> dict[str, float]:
    g = rig.twin.model_groups[0]
    m, h = g.period_ticks, int(g.horizons[0])
    readings: list[float] = []
    made: list[tuple[int, float, float, float, float, int]] = []  # (target block, mean, low, high, s since the last step, tick)
    steps: list[int] = []  # tick at which each setpoint step took effect
    last_step = -1e9
    next_step = rig.plant.t_s + float(rng.uniform(120, 600))
    start = rig.ticks
    settle_ticks = round(settle_s / rig.tick_s)
    for _ in range(round(run_s / rig.tick_s)):
        if rig.plant.t_s >= next_step:
            rig.plant.heater_pct = float(rng.uniform(20, 100))
            last_step = rig.plant.t_s
            steps.append(rig.ticks + 1)
            next_step += float(rng.uniform(120, 600))
        out = rig.tick()
        readings.append(float(rig.reg.latest(TEMP).value))  # type: ignore[arg-type]
        got = {s.tag: s.value for s in out if s.tag.startswith(K + "forecast")}
        if K + "forecast" in got and rig.ticks - start > settle_ticks and got[K + "forecast"] is not None:
            made.append(
                (
                    rig.ticks // m + h - 1,
                    float(got[K + "forecast"]),
                    float(got[K + "forecast_low"]),
                    float(got[K + "forecast_high"]),
                    rig.plant.t_s - last_step,
                    rig.ticks,
                )
            )  # type: ignore[arg-type]
    # Block j averages the readings of runner ticks j*m+1 .. (j+1)*m.
    first_tick = start + 1
    blocks: dict[int, float] = {}
    arr = np.array(readings)
    for j in range(first_tick // m + 1, (start + len(readings)) // m):
        lo, hi = j * m + 1 - first_tick, (j + 1) * m + 1 - first_tick
        if lo >= 0 and hi <= len(arr):
            blocks[j] = float(arr[lo:hi].mean())
    # A forecast holds the input: those overtaken by a later step before their block ended are not scored.
    step_arr = np.array(steps)

    def held(target: int, tick: int) -> bool:
        return not np.any((step_arr > tick) & (step_arr <= (target + 1) * m))

    rows = np.array([(blocks[t] - mu, (hi - lo) / 2, lo <= blocks[t] <= hi, since) for t, mu, lo, hi, since, tick in made if t in blocks and held(t, tick)])
    err, half, inside, since = rows[:, 0], rows[:, 1], rows[:, 2].astype(bool), rows[:, 3]
    after = since <= 60.0
    return {
        "n": len(rows),
        "coverage": float(inside.mean()),
        "half": float(half.mean()),
        "err95": float(np.quantile(np.abs(err), 0.95)),
        "n_after": int(after.sum()),
        "coverage_after": float(inside[after].mean()) if after.any() else float("nan"),
        "half_after": float(half[after].mean()) if after.any() else float("nan"),
        "max_err_after": float(np.abs(err[after]).max()) if after.any() else float("nan"),
        "n_steady": int((~after).sum()),
        "coverage_steady": float(inside[~after].mean()) if (~after).any() else float("nan"),
        "half_steady": float(half[~after].mean()) if (~after).any() else float("nan"),
    }


def alarms_raised(rig: TwinRig, seconds: float) -> tuple[int, list[bool]]:
    trace = []
    raised = 0
    was = rig.alarm
    for _ in range(round(seconds / rig.tick_s)):
        rig.tick()
        on = rig.alarm
        raised += on and not was
        was = on
        trace.append(on)
    return raised, trace


def heater_step_scenario(rig: TwinRig) -> int:
    rig.plant.heater_pct = 40.0
    rig.run(600.0)
    rig.plant.heater_pct = 100.0
    return alarms_raised(rig, 600.0)[0]


def flow_fault_scenario(rig: TwinRig, rng: np.random.Generator) -> tuple[float, int, bool]:
    """(release s after recovery (inf: not released), alarms raised after recovery, alarm seen during the fault)."""
    rig.run(120.0)
    rig.flow_fault = True
    during, _ = alarms_raised(rig, float(rng.uniform(120, 300)))
    seen = during > 0 or rig.alarm
    rig.flow_fault = False
    raised, trace = alarms_raised(rig, 600.0)
    off = [i for i, on in enumerate(trace) if not on]
    release = 0.0 if not trace[0] and not seen else (off[0] + 1) * rig.tick_s if off else float("inf")
    return release, raised, seen


def drift_scenario(rig: TwinRig, fault: Fault = Fault.SENSOR_DRIFT) -> list[tuple[float, float]]:
    """Largest (gain, time constant) relative error during the drift, then in the 10 min after
    (with *fault* NONE: the same 20 min without a drift, the model's own wander)."""

    def params() -> tuple[float, float]:
        return float(rig.value(K + "gain")), float(rig.value(K + "time_constant"))  # type: ignore[arg-type]

    g0, t0 = params()
    out = []
    rig.plant.fault = fault
    for phase_s in (600.0, 600.0):
        worst_g = worst_t = 0.0
        for _ in range(round(phase_s / rig.tick_s)):
            rig.tick()
            g, t = params()
            worst_g, worst_t = max(worst_g, abs(g / g0 - 1)), max(worst_t, abs(t / t0 - 1))
        out.append((worst_g, worst_t))
        rig.plant.fault = Fault.NONE
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (about 15 s)")
    ap.add_argument("--seeds", type=int, default=None, help="plants per scenario (default 2, quick 1)")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    seeds = args.seeds or (1 if args.quick else 2)
    ident_s, run_s, settle_s = (1800.0, 1500.0, 300.0) if args.quick else (3600.0, 4200.0, 600.0)
    started, cpu = time.perf_counter(), time.process_time()
    fc, steps, flows, drifts, controls = [], [], [], [], []
    for seed in range(seeds):
        base, _ = identified(seed, ident_s)
        fc.append(forecast_scenario(copy.deepcopy(base), np.random.default_rng(seed), run_s, settle_s))
        steps.append(heater_step_scenario(copy.deepcopy(base)))
        flows.append(flow_fault_scenario(copy.deepcopy(base), np.random.default_rng(seed + 7)))
        drifts.append(drift_scenario(copy.deepcopy(base)))
        controls.append(drift_scenario(copy.deepcopy(base), fault=Fault.NONE))
    took, took_cpu = time.perf_counter() - started, time.process_time() - cpu

    def tot(key: str) -> float:
        return float(np.sum([f[key] * f["n"] for f in fc]) / np.sum([f["n"] for f in fc]))

    def pooled(key: str, count: str) -> float:
        return float(np.nansum([f[key] * f[count] for f in fc]) / max(sum(f[count] for f in fc), 1))

    n = sum(f["n"] for f in fc)
    n_after = sum(f["n_after"] for f in fc)
    cov_after = pooled("coverage_after", "n_after")
    print(f"bench_twin_model: {seeds} plant(s), demo tank1 twin, {took:.1f} s wall, {took_cpu:.1f} s CPU")
    print(f"  forecast 60 s ahead, {n} forecasts:  coverage of the nominal 95 % interval {100 * tot('coverage'):.1f} %")
    print(f"    mean half-width {tot('half'):.3f} degC, 95th percentile of |error| {tot('err95'):.3f} degC, ratio {tot('half') / tot('err95'):.2f}")
    worst = max(f["max_err_after"] for f in fc)
    print(f"    within 60 s after a setpoint step ({n_after} forecasts): coverage {100 * cov_after:.1f} %, largest |error| {worst:.2f} degC")
    print(f"    mean half-width: after a step {pooled('half_after', 'n_after'):.3f} degC, input held longer {pooled('half_steady', 'n_steady'):.3f} degC")
    print(f"    input held longer than 60 s ({sum(f['n_steady'] for f in fc)} forecasts): coverage {100 * pooled('coverage_steady', 'n_steady'):.1f} %")
    for seed, f in enumerate(fc):
        print(
            f"    seed {seed}: coverage {100 * f['coverage']:.1f} % of {f['n']}; after a step {100 * f['coverage_after']:.1f} % of {f['n_after']}"
            f" (half-width {f['half_after']:.3f}); held longer {100 * f['coverage_steady']:.1f} % (half-width {f['half_steady']:.3f})"
        )
    print(f"  heater step 40 -> 100 %: {sum(steps)} alarm(s) in {len(steps)} step(s) ({sum(steps) / len(steps):.2f} per step)")
    rel = [r for r, _, _ in flows]
    print(
        f"  flow fault: alarm during the fault in {sum(s for _, _, s in flows)}/{len(flows)}; release after recovery "
        f"{', '.join(f'{r:.1f}' for r in rel)} s (worst {max(rel):.1f} s); alarms raised after recovery {sum(r for _, r, _ in flows)}"
    )
    for phase, name in ((0, "during the drift"), (1, "in the 10 min after")):
        g_err, t_err = max(d[phase][0] for d in drifts), max(d[phase][1] for d in drifts)
        g_c, t_c = max(d[phase][0] for d in controls), max(d[phase][1] for d in controls)
        print(
            f"  drift +0.5 degC/min for 10 min, largest error vs the model before, {name}: gain {100 * g_err:.1f} %, time constant {100 * t_err:.1f} %"
            f" (no drift, same minutes: {100 * g_c:.1f} %, {100 * t_c:.1f} %)"
        )


if __name__ == "__main__":
    main()
