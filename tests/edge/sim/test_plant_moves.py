"""edge.sim.plant.random_move: the setpoint moves of normal operation the benchmarks make."""

from __future__ import annotations

from collections import Counter

import numpy as np

from edge.sim.plant import Plant, random_move

INPUTS = {"heater": "heater_pct", "pump": "pump_speed_pct", "valve": "valve_pct"}
RANGES = {"heater": (10, 90), "pump": (30, 100), "valve": (30, 80)}


def test_each_move_sets_one_input_within_its_range_in_the_documented_shares() -> None:
    plant, rng = Plant(seed=1), np.random.default_rng(3)
    seen: Counter[str] = Counter()
    for _ in range(2000):
        before = {k: getattr(plant, a) for k, a in INPUTS.items()}
        moved = random_move(plant, rng)
        seen[moved] += 1
        lo, hi = RANGES[moved]
        assert lo <= getattr(plant, INPUTS[moved]) <= hi
        assert all(getattr(plant, a) == before[k] for k, a in INPUTS.items() if k != moved)
    assert abs(seen["heater"] / 2000 - 0.5) < 0.04 and abs(seen["pump"] / 2000 - 0.3) < 0.04 and abs(seen["valve"] / 2000 - 0.2) < 0.04
