"""Fault diagnosis from the pattern library: the simulator, the record-then-recognise loop, SKAB.

    python benchmarks/bench_diagnosis.py [--trials N] [--quick] [--skab ../shared/datasets/skab]

1. Built-in simulator (edge.sim.drive: the plant straight into the demo's twin, simulated time).
   Each trial: a random operating point (heater 20-80 %, pump 40-90 %, valve 30-80 %), a fault at
   a random strength (0.5-1.5) and a random onset after the twin has warmed up and taken its
   baseline; the library is the shipped seed (config/heated_tank.patterns.json). The answer is
   the name shown most often in Diagnosis/Fault during the 300 s after onset ("missed" when the
   twin never raised an episode); the delay is onset to the first correct name. Then every fault
   type again with its pattern left out of the library: the right answer is "unknown".
2. Record then recognise: for each fault, one episode is recorded into a history database and
   learned with ``record`` (what RecordFaultPattern runs) into an empty library; a second
   episode at another strength (0.6 of it) and operating point must then be named.
3. SKAB (real pump rig): experiments in known classes (inlet valve, outlet valve, leak/addition,
   rotor imbalance, water addition, cavitation/two-phase, hot water). Baseline = the first 400
   rows of the file, episode = its labelled anomalous rows (diagnosis given detection).
   Leave-one-out: each file is diagnosed against a library learned from every other file. A file
   whose class has no other file should be "unknown". Accuracy against chance (the largest class
   share, what always answering the commonest class gets).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import load_config  # noqa: E402
from edge.core import names  # noqa: E402
from edge.core.logconfig import configure_logging  # noqa: E402
from edge.history.store import HistoryStore  # noqa: E402
from edge.sim.drive import PlantDrive  # noqa: E402
from edge.sim.plant import Fault, Plant, Setpoints  # noqa: E402
from edge.twin.diagnosis.library import UNKNOWN, Episode, Library, Pattern, PatternFile, load, save  # noqa: E402
from edge.twin.diagnosis.match import diagnose  # noqa: E402
from edge.twin.diagnosis.record import record  # noqa: E402
from edge.twin.diagnosis.signature import Signature, extract  # noqa: E402

FAULTS = [Fault.BEARING_WEAR, Fault.SENSOR_DRIFT, Fault.STUCK_SENSOR, Fault.FLOW_SENSOR, Fault.SPIKE]
SEED = ROOT / "config" / "heated_tank.patterns.json"
AFTER_S = 300.0


def _asset():
    return load_config(ROOT / "config" / "demo.toml").assets[0]


def _rig(asset, lib: Library, setpoints: Setpoints, seed: int, tmp: Path) -> PlantDrive:
    path = tmp / f"lib{seed}.json"
    save(lib, path)
    return PlantDrive.build(asset, [Plant(seed=seed, setpoints=setpoints)], lambda a: PatternFile(path, lib.name))


def _setpoints(rng: np.random.Generator) -> Setpoints:
    return Setpoints(heater_pct=float(rng.uniform(20, 80)), pump_speed_pct=float(rng.uniform(40, 90)), valve_pct=float(rng.uniform(30, 80)))


def trial(asset, lib: Library, fault: Fault, rng: np.random.Generator, seed: int, tmp: Path, store: HistoryStore | None = None, strength: float | None = None):
    """(answer, delay s or None, onset, end) of one injected fault."""
    rig = _rig(asset, lib, _setpoints(rng), seed, tmp)
    # what the gateway historizes for the asset: each signal's Measured and its sensor-validation flag
    measured = [names.signal_output_key(asset.name, s.name, "measured") for s in asset.signals]
    measured += [k for k in (names.sensor_fault_key(asset.name, s.name) for s in asset.signals) if k in rig.registry]
    key = names.diagnosis_key(asset.name, "fault")

    def run(seconds: float) -> list[str]:
        shown = []
        for _ in range(round(seconds / rig.tick_s)):
            rig.run(1)
            if store is not None:
                store.append([rig.registry.latest(k) for k in measured])
            shown.append(rig.latest(key))
        return shown

    run(420.0 + float(rng.uniform(0, 120)))
    rig.plant.fault_strength = float(rng.uniform(0.5, 1.5)) if strength is None else strength
    rig.plant.fault = fault
    onset = rig.t
    shown = run(AFTER_S)
    named = [s for s in shown if s]
    answer = Counter(named).most_common(1)[0][0] if named else "missed"
    delay = next((k * rig.tick_s for k, s in enumerate(shown) if s == fault.name.lower()), None)
    return answer, delay, onset, rig.t


def simulator(n: int, seed: int) -> None:
    asset, lib = _asset(), load(SEED)
    rng = np.random.default_rng(seed)
    confusion: dict[str, Counter] = defaultdict(Counter)
    delays: dict[str, list[float]] = defaultdict(list)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(n):
            for fault in FAULTS:
                answer, delay, _, _ = trial(asset, lib, fault, rng, 1000 + k * 10 + int(fault), Path(tmp))
                confusion[fault.name.lower()][answer] += 1
                if delay is not None:
                    delays[fault.name.lower()].append(delay)
        left_out: dict[str, Counter] = defaultdict(Counter)
        for k in range(max(1, n // 2)):
            for fault in FAULTS:
                answer, _, _, _ = trial(asset, lib.without(fault.name.lower()), fault, rng, 5000 + k * 10 + int(fault), Path(tmp))
                left_out[fault.name.lower()][answer] += 1
    cols = [f.name.lower() for f in FAULTS] + [UNKNOWN, "missed"]
    print(f"\n## Simulator: {n} trials per fault, random strength 0.5-1.5 and operating point ({time.perf_counter() - started:.0f} s)\n")
    print("| injected \\ named | " + " | ".join(cols) + " | correct | delay median / p90 |")
    print("| --- " * (len(cols) + 3) + "|")
    total = right = 0
    for f in FAULTS:
        row = confusion[f.name.lower()]
        ok = row[f.name.lower()]
        total, right = total + n, right + ok
        d = delays[f.name.lower()]
        dtxt = f"{np.median(d):.0f} / {np.percentile(d, 90):.0f} s" if d else "-"
        print(f"| {f.name.lower()} | " + " | ".join(str(row[c]) for c in cols) + f" | {ok}/{n} | {dtxt} |")
    print(f"\nnamed correctly: {right}/{total} = {100 * right / total:.0f} %")
    print("\nLeft out of the library (right answer: unknown, or missed; a name is wrong):\n")
    print("| injected, left out | unknown | missed | a wrong name |")
    print("| --- | --- | --- | --- |")
    for f in FAULTS:
        row = left_out[f.name.lower()]
        wrong = sum(v for c, v in row.items() if c not in (UNKNOWN, "missed"))
        print(f"| {f.name.lower()} | {row[UNKNOWN]} | {row['missed']} | {wrong} ({', '.join(c for c in row if c not in (UNKNOWN, 'missed')) or '-'}) |")


def record_then_recognise(faults: list[Fault], seed: int) -> None:
    asset = _asset()
    rng = np.random.default_rng(seed)
    print("\n## Record then recognise (record one episode from history into an empty library, name a second one)\n")
    print("| fault | recorded: contributors | second episode named | delay |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for fault in faults:
            store = HistoryStore(Path(tmp) / f"h{int(fault)}.sqlite", retention_days=7, max_db_mb=64)
            store.open()
            try:
                _, _, onset, end = trial(asset, Library("t"), fault, rng, 7000 + int(fault), Path(tmp), store, strength=1.0)
                rec = record(Library("t"), store, asset, fault.name.lower(), onset, end, "", "")
            finally:
                store.close()
            answer, delay, _, _ = trial(asset, rec.library, fault, rng, 8000 + int(fault), Path(tmp), strength=0.6)
            dtxt = f"{delay:.0f} s" if delay is not None else "-"
            print(f"| {fault.name.lower()} | {', '.join(rec.signature.contributors()[:2])} | {answer} | {dtxt} |")


SKAB_CLASSES = {
    "valve1": "inlet_valve", "valve2": "outlet_valve",
    **{f"other/{i}": "leak_or_addition" for i in (1, 2, 3, 4)},
    **{f"other/{i}": "rotor_imbalance" for i in (5, 6, 7, 8, 9)},
    **{f"other/{i}": "water_addition" for i in (10, 11)},
    "other/12": "cavitation", "other/13": "cavitation", "other/14": "hot_water",
}  # fmt: skip


def skab_experiments(data: Path) -> list[tuple[str, str, Signature, np.ndarray, np.ndarray]]:
    """(experiment, class, signature, baseline rows, episode rows) of each SKAB file in a known class."""
    from edge.replay.metrics import read_signal_csv

    out = []
    for path in sorted(data.glob("*/*.csv")):
        group = path.parent.name
        cls = SKAB_CLASSES.get(group) or SKAB_CLASSES.get(f"{group}/{path.stem}")
        if cls is None:
            continue
        t = read_signal_csv(path)
        anomalous = t.labels["anomaly"]
        base = slice(0, 400)
        idx = np.flatnonzero(anomalous[400:]) + 400
        if len(idx) < 10:
            continue
        noise = [max(1e-3 * abs(float(np.nanmean(t.values[base, j]))), 1e-6) for j in range(len(t.names))]
        cols = range(len(t.names))
        n = len(t.names)
        sig = extract(t.names, [t.values[base, j] for j in cols], [t.values[idx, j] for j in cols], [t.times_s[idx]] * n, noise, None, [t.times_s[base]] * n)
        out.append((f"{group}/{path.stem}", cls, sig, t.values[base], t.values[idx]))
    return out


def skab(data: Path) -> None:
    episodes = [(name, cls, sig) for name, cls, sig, _, _ in skab_experiments(data)]
    right = unknown_ok = 0
    confusion: dict[str, Counter] = defaultdict(Counter)
    for k, (_, cls, sig) in enumerate(episodes):
        lib = Library("skab")
        for j, (other, ocls, osig) in enumerate(episodes):
            if j != k:
                lib = lib.with_pattern(Pattern(ocls, signatures=(osig,), episodes=(Episode(other, "", ""),)))
        d = diagnose(sig, lib, 0.5)
        has_class = lib.get(cls) is not None
        confusion[cls][d.fault] += 1
        right += d.fault == cls
        unknown_ok += (not has_class) and d.fault == UNKNOWN
    classes = sorted({c for _, c, _ in episodes})
    share = Counter(c for _, c, _ in episodes)
    learnable = sum(1 for _, c, _ in episodes if share[c] > 1)
    print(f"\n## SKAB, leave one experiment out ({len(episodes)} experiments, {len(classes)} classes, diagnosis given the labelled episode)\n")
    cols = [*classes, UNKNOWN]
    print("| class \\ named | " + " | ".join(cols) + " |")
    print("| --- " * (len(cols) + 1) + "|")
    for c in classes:
        print(f"| {c} ({share[c]}) | " + " | ".join(str(confusion[c][x]) for x in cols) + " |")
    chance = max(share.values()) / len(episodes)
    print(
        f"\naccuracy {right}/{learnable} = {100 * right / max(1, learnable):.0f} % of the experiments whose class has another experiment "
        f"(chance, always the commonest class: {100 * chance:.0f} %)"
    )
    print(f"classes with a single experiment answered unknown: {unknown_ok}/{len(episodes) - learnable}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4, help="simulator trials per fault (default 4)")
    p.add_argument("--quick", action="store_true", help="1 trial per fault, record-then-recognise for bearing wear only")
    p.add_argument("--skab", default=str(ROOT.parent / "shared" / "datasets" / "skab"), help="SKAB folder (with data/)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    configure_logging("error")
    simulator(1 if args.quick else args.trials, args.seed)
    record_then_recognise([Fault.BEARING_WEAR] if args.quick else FAULTS, args.seed)
    data = Path(args.skab) / "data"
    if data.is_dir():
        skab(data)
    else:
        print(f"\nSKAB: no data at {data}; skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
