"""Candidate signature features on SKAB: does any separate the fault classes better than the signature?

    python benchmarks/bench_skab_features.py [--skab ../shared/datasets/skab]

Same experiments, episodes and leave-one-experiment-out protocol as bench_diagnosis.py's SKAB
section (baseline = the first 400 rows, episode = the labelled rows; each experiment named by its
nearest other experiment, ``unknown`` below similarity 0.5). Each candidate is one block appended to
the signature's comparison vector (``signature.vector``), decided before looking at the results and
not tuned: the cosine of the longer vectors then picks the nearest experiment.

* ``magnitude``: sign(d) log10(1 + |d| / 3) of each significant deviation (how far, not only where);
* ``correlation change``: corr(episode) - corr(baseline) of every pair of signals;
* ``RBC profile``: each signal's share of the mean reconstruction-based contribution
  (edge.twin.diagnosis.rbc) to the Mahalanobis distance of the episode from the baseline, under the
  baseline's full covariance;
* ``middle third`` / ``first quarter``: the direction of the significant deviations over that part
  of the episode (how it got where it ended).

For each: experiments named right, and against the signature alone how many it gains and loses,
with the exact two-sided McNemar p (the chance of a split at least that uneven if the candidate
were no better). With 33 experiments a gain of 3 is within noise.

Then the top contributor of each experiment, per class, two ways: the RBC to a PCA detector fitted
on the baseline rows (levels and first differences, 90 % of the variance; what
``Diagnosis/Contributors`` shows for an asset with a PCA detector), and the signature's share of the
squared standardized deviation (without one). SKAB does not say which signal a fault hit, so this
is for reading against the physics (a valve closure acts on the flow; an imbalance on vibration).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_diagnosis import skab_experiments  # noqa: E402

from edge.twin.detector import pca_features  # noqa: E402
from edge.twin.diagnosis.library import UNKNOWN  # noqa: E402
from edge.twin.diagnosis.pca_contrib import PcaView, signal_contributions  # noqa: E402
from edge.twin.diagnosis.rbc import rbc, t2_matrix  # noqa: E402
from edge.twin.diagnosis.signature import SIGNIFICANT, Signature, cosine, vector  # noqa: E402

MIN_SIMILARITY = 0.5  # as bench_diagnosis.py's SKAB section

Experiment = tuple[str, str, Signature, np.ndarray, np.ndarray]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _standardized(b: np.ndarray, e: np.ndarray) -> np.ndarray:
    sd = b.std(axis=0)
    return (e - b.mean(axis=0)) / np.where(sd > 0, sd, 1e-9)


def magnitude(x: Experiment) -> np.ndarray:
    d = np.array(x[2].deviation)
    d = np.where(np.abs(d) >= SIGNIFICANT, d, 0.0)
    return np.sign(d) * np.log10(1.0 + np.abs(d) / SIGNIFICANT)


def correlation_change(x: Experiment) -> np.ndarray:
    def corr(a: np.ndarray) -> np.ndarray:
        z = _standardized(a, a)
        return (z.T @ z) / len(z)

    iu = np.triu_indices(x[3].shape[1], 1)
    return (corr(x[4]) - corr(x[3]))[iu]


def rbc_profile(x: Experiment) -> np.ndarray:
    zb = _standardized(x[3], x[3])
    w, v = np.linalg.eigh(np.cov(zb.T))
    M = t2_matrix(v, np.maximum(w, 1e-3 * w.max()))  # the baseline's inverse covariance (all components)
    r = rbc(_standardized(x[3], x[4]), M).mean(axis=0)
    return r / r.sum()


def _part(x: Experiment, lo: float, hi: float) -> np.ndarray:
    z = _standardized(x[3], x[4])
    n = len(z)
    part = z[int(lo * n) : max(int(lo * n) + 5, int(hi * n))]
    d = np.median(part, axis=0)
    return _unit(np.where(np.abs(d) >= SIGNIFICANT, d, 0.0))


CANDIDATES: dict[str, Callable[[Experiment], np.ndarray]] = {
    "magnitude": magnitude,
    "correlation change": correlation_change,
    "RBC profile": rbc_profile,
    "middle third": lambda x: _part(x, 1 / 3, 2 / 3),
    "first quarter": lambda x: _part(x, 0.0, 0.25),
}


def right_answers(experiments: list[Experiment], block: Callable[[Experiment], np.ndarray] | None) -> np.ndarray:
    """Per experiment: named right by its nearest other experiment (leave one out)?"""
    signals = list(experiments[0][2].signals)
    vecs = [np.concatenate([vector(x[2], signals), block(x) if block else np.empty(0)]) for x in experiments]
    out = []
    for k, x in enumerate(experiments):
        best: dict[str, float] = {}
        for j, other in enumerate(experiments):
            if j != k:
                best[other[1]] = max(best.get(other[1], -2.0), cosine(vecs[k], vecs[j]))
        cls, sim = max(best.items(), key=lambda kv: kv[1])
        out.append((cls if sim >= MIN_SIMILARITY else UNKNOWN) == x[1])
    return np.array(out)


def mcnemar_p(gained: int, lost: int) -> float:
    n = gained + lost
    if n == 0:
        return 1.0
    k = min(gained, lost)
    return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skab", default=str(ROOT.parent / "shared" / "datasets" / "skab"), help="SKAB folder (with data/)")
    args = p.parse_args()
    data = Path(args.skab) / "data"
    if not data.is_dir():
        print(f"SKAB: no data at {data}; skipped")
        return 0
    experiments = skab_experiments(data)
    share = Counter(x[1] for x in experiments)
    learnable = sum(1 for x in experiments if share[x[1]] > 1)
    base = right_answers(experiments, None)
    print(f"\n## SKAB candidate features, leave one experiment out ({len(experiments)} experiments, {learnable} whose class has another)\n")
    print("| features | named right | gained | lost | McNemar p |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| signature (deviation direction, slope, noise change) | {base.sum()}/{learnable} | - | - | - |")
    for name, block in CANDIDATES.items():
        ok = right_answers(experiments, block)
        gained, lost = int((ok & ~base).sum()), int((~ok & base).sum())
        print(f"| signature + {name} | {ok.sum()}/{learnable} | {gained} | {lost} | {mcnemar_p(gained, lost):.2f} |")
    top_contributors(experiments)
    return 0


def top_contributors(experiments: list[Experiment]) -> None:
    from kernels.detect import fit_pca

    by_rbc: dict[str, Counter] = {}
    by_dev: dict[str, Counter] = {}
    for _, cls, sig, b, e in experiments:
        short = [n.replace("Accelerometer", "Acc").replace("Volume Flow RateRMS", "Flow").replace("RMS", "") for n in sig.signals]
        c = signal_contributions(PcaView(fit_pca(pca_features(b)[1:], explained=0.9), True, ()), e)
        if c is not None:
            by_rbc.setdefault(cls, Counter())[short[int(np.argmax(c))]] += 1
        by_dev.setdefault(cls, Counter())[short[sig.signals.index(sig.contributors()[0])]] += 1
    print("\n## Top contributor per class: RBC to a PCA detector fitted on the baseline, vs the squared deviation\n")
    print("| class | RBC (PCA detector) | squared standardized deviation |")
    print("| --- | --- | --- |")
    for cls in sorted(by_dev):
        fmt = lambda c: ", ".join(f"{k} {v}" for k, v in c.most_common())  # noqa: E731
        print(f"| {cls} | {fmt(by_rbc.get(cls, Counter()))} | {fmt(by_dev[cls])} |")


if __name__ == "__main__":
    raise SystemExit(main())
