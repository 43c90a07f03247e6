"""The fault-pattern seed of the built-in simulator (config/heated_tank.patterns.json).

    python -m edge.sim.seed_patterns [--config config/demo.toml] [--asset tank1] > config/heated_tank.patterns.json

For each fault of the simulated plant, a few episodes at different strengths and operating points:
the plant runs normally for the baseline window, the fault is injected, and the signature of the
next ``EPISODE_S`` is taken with ``signature.extract``, the function the live diagnoser and
RecordFaultPattern use. The readings are those the twin sees (``edge.sim.drive.PlantDrive``),
so a seed pattern describes what the gateway will see of that fault.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from edge.config import AssetConfig, load_config
from edge.core.logconfig import configure_logging
from edge.core.names import sensor_fault_key
from edge.sim.drive import T0, PlantDrive
from edge.sim.plant import Fault, Plant, Setpoints
from edge.twin.diagnosis.library import Episode, Library, Pattern, to_text
from edge.twin.diagnosis.signature import extract

EPISODE_S = 120.0
BASELINE_S = 300.0
FLAGS_LATE_S = 180.0  # the episode's sensor-validation flags are those raised within EPISODE_S + this
# (fault, description, action)
FAULTS: tuple[tuple[Fault, str, str], ...] = (
    (
        Fault.BEARING_WEAR,
        "pump bearing wear: vibration and motor current rise together, slowly",
        "Plan a bearing change; check lubrication and alignment.",
    ),
    (
        Fault.SENSOR_DRIFT,
        "tank temperature transmitter drifting: its reading ramps while the process does not",
        "Check the temperature transmitter against a reference; recalibrate or replace it.",
    ),
    (
        Fault.STUCK_SENSOR,
        "tank temperature transmitter stuck: the reading has stopped moving",
        "Check the transmitter wiring and its input card; replace the transmitter.",
    ),
    (
        Fault.FLOW_SENSOR,
        "flowmeter failed: flow reads low or zero while pump speed and current are normal",
        "Check the flowmeter (wiring, fouling, empty pipe) before acting on the flow.",
    ),
    (
        Fault.SPIKE,
        "spikes on the tank temperature reading: loose contact or interference",
        "Check the transmitter's terminals, shield and grounding.",
    ),
)
# (fault strength, setpoints) of the episodes each pattern is learned from
EPISODES = ((1.0, Setpoints()), (0.6, Setpoints(heater_pct=60.0, pump_speed_pct=70.0, valve_pct=60.0)))


def fault_signature(asset: AssetConfig, fault: Fault, strength: float, setpoints: Setpoints, seed: int):
    """The signature of *fault* on the simulated plant (baseline, then the first EPISODE_S)."""
    plant = Plant(seed=seed, setpoints=setpoints)
    rig = PlantDrive.build(asset, [plant])
    names = [s.name for s in asset.signals]
    tags = [s.tag for s in asset.signals]
    flag_keys = [sensor_fault_key(asset.name, s) for s in names]
    raised: list[Counter[str]] = [Counter() for _ in names]

    def window(seconds: float) -> tuple[list[list[float]], list[float]]:
        rows, times = [], []
        for _ in range(round(seconds / rig.tick_s)):
            rig.run(1)
            rows.append([float(rig.latest(t)) for t in tags])  # type: ignore[arg-type]
            times.append((rig.t - T0).total_seconds())
            for i, key in enumerate(flag_keys):  # the sensor validation's flags, as the live diagnoser sees them
                flag = rig.latest(key) if key in rig.registry else ""
                if isinstance(flag, str) and flag:
                    raised[i][flag] += 1
        return [list(col) for col in zip(*rows, strict=True)], times

    rig.run_for(120.0)  # the twin warms up
    base, base_times = window(BASELINE_S)
    plant.fault_strength = strength
    plant.fault = fault
    start = rig.t
    for c in raised:
        c.clear()
    epi, times = window(EPISODE_S)
    window(FLAGS_LATE_S)  # the flags raised a little later count too (the ramp view flags a drift within minutes)
    flags = [c.most_common(1)[0][0] if c else "" for c in raised]
    sig = extract(names, base, epi, [times] * len(names), [s.measurement_noise for s in asset.signals], flags, [base_times] * len(names))
    return sig, Episode(asset.name, start.isoformat(), (start + timedelta(seconds=EPISODE_S)).isoformat(), "simulator", f"strength {strength:g}")


def seed_library(asset: AssetConfig, name: str = "heated_tank") -> Library:
    lib = Library(name)
    for k, (fault, text, action) in enumerate(FAULTS):
        for j, (strength, sp) in enumerate(EPISODES):
            sig, episode = fault_signature(asset, fault, strength, sp, seed=100 * k + j)
            lib = lib.with_pattern(Pattern(fault.name.lower(), text, action, (sig,), (episode,)))
    return lib


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.sim.seed_patterns", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "config" / "demo.toml"))
    p.add_argument("--asset", default="tank1")
    p.add_argument("--library", default="heated_tank")
    args = p.parse_args(argv)
    configure_logging("error")  # stdout is the file
    cfg = load_config(Path(args.config))
    asset = next(a for a in cfg.assets if a.name == args.asset)
    sys.stdout.write(to_text(seed_library(asset, args.library)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
