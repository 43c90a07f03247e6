"""Honest evaluation: choose the detector setting on tuning files, score held-out files.

* A **grid** of candidate settings (``DEFAULT_GRID`` per detector kind, or ``--grid``): keys are
  ``DetectorSettings`` fields (``on``, ``release``, ``k``, ``window``, ``smoothing``,
  ``cusum_k``, ``explained``, ``components``, ``alpha``) and the derived-threshold parameters
  ``margin`` and ``quantile`` (``batch.Threshold``).
* **Selection** (``select``) sees only the tuning files' summed confusion counts: the highest F1
  among the settings whose FAR is at most ``max_far`` %, ties to the lower FAR; when none meets
  the FAR bound, the lowest FAR.
* **Folds**: ``two_folds`` splits the files in two, alternating within each group so both halves
  hold every group (``seed`` shuffles within groups first); ``logo_folds`` holds out one group at a
  time. Groups are the file's folder name, or ``--groups`` patterns.

Everything is pure: the per-(setting, file) results are computed once (``score_matrix``) and a
fold only sums a subset of them.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edge.replay.batch import Threshold
from edge.replay.metrics import Scores
from edge.replay.run import DetectorSettings

DEFAULT_GRID: dict[str, dict[str, tuple[float, ...]]] = {
    "pca": {"on": (1.0, 1.25, 1.5, 2.0), "smoothing": (0.1, 0.2, 0.5), "explained": (0.9, 0.95, 0.99)},
    "ewma": {"margin": (1.5, 2.0, 3.0, 4.0), "smoothing": (0.05, 0.1, 0.2, 0.4)},
    "cusum": {"margin": (1.5, 2.0, 3.0, 4.0), "cusum_k": (0.25, 0.5, 1.0)},
}
SETTING_KEYS = ("on", "release", "k", "window", "smoothing", "cusum_k", "explained", "components", "alpha")
THRESHOLD_KEYS = ("margin", "quantile")
INTEGER_KEYS = ("k", "window", "components")


@dataclass(frozen=True)
class Candidate:
    settings: DetectorSettings
    threshold: Threshold
    label: str  # the grid values, e.g. "on=1.25 smoothing=0.2"


def parse_grid(spec: str) -> dict[str, tuple[float, ...]]:
    """``"on=1,1.25,1.5; smoothing=0.1,0.2"`` -> {key: values}; ValueError naming the bad part."""
    grid: dict[str, tuple[float, ...]] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        key, eq, text = part.partition("=")
        key = key.strip()
        if not eq or key not in SETTING_KEYS + THRESHOLD_KEYS:
            raise ValueError(f"--grid: {part!r} is not key=v1,v2,... with a key among {', '.join(SETTING_KEYS + THRESHOLD_KEYS)}")
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--grid: {key}: {text!r} is not a list of numbers") from None
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError(f"--grid: {key}: give one or more finite numbers")
        if key in INTEGER_KEYS and not all(v == int(v) for v in values):
            raise ValueError(f"--grid: {key} takes whole numbers, got {text!r}")
        if key in grid:
            raise ValueError(f"--grid: {key} appears twice")
        grid[key] = values
    if not grid:
        raise ValueError("--grid: empty")
    return grid


def candidates(base: DetectorSettings, threshold: Threshold, grid: dict[str, tuple[float, ...]], fixed: Sequence[str] = ()) -> list[Candidate]:
    """Every combination of *grid* applied to *base*; keys in *fixed* (set by the user) are not varied.

    ``explained`` is dropped when ``components`` is set or varied (it would not change anything),
    and ``margin`` / ``quantile`` when ``on`` is (an explicit level is not derived).
    """
    g = {k: v for k, v in grid.items() if k not in fixed}
    if "components" in g or base.components is not None:
        g.pop("explained", None)
    if "on" in g or threshold.on is not None:
        g.pop("margin", None)
        g.pop("quantile", None)
    keys = list(g)
    out = []
    for combo in itertools.product(*(g[k] for k in keys)):
        s_kw = {k: (int(v) if k in INTEGER_KEYS else v) for k, v in zip(keys, combo) if k in SETTING_KEYS and k != "on"}
        t_kw = {k: v for k, v in zip(keys, combo) if k in THRESHOLD_KEYS}
        if "on" in keys:
            t_kw["on"] = combo[keys.index("on")]
        label = " ".join(f"{k}={v:g}" for k, v in zip(keys, combo)) or "(fixed)"
        out.append(Candidate(replace(base, **s_kw), replace(threshold, **t_kw), label))
    return out


def describe(c: Candidate) -> str:
    """The full setting, for the report: the grid values and the threshold rule."""
    s = c.settings
    parts = [c.threshold.describe(s.kind)]
    keys = {"pca": ("smoothing", "explained", "components", "alpha"), "ewma": ("smoothing",), "cusum": ("cusum_k",)}[s.kind]
    parts += [f"{k} {getattr(s, k):g}" for k in keys if getattr(s, k) is not None and not (k == "explained" and s.components)]
    parts += [f"release {s.release:g}"] + ([f"k {s.k} of {s.window}"] if s.window > 1 else [])
    return ", ".join(parts)


def total(matrix: list[list[Scores]], cand: int, files: Sequence[int]) -> Scores:
    """Summed scores of one candidate over some files."""
    out = Scores()
    for f in files:
        s = matrix[cand][f]
        out.confusion += s.confusion
        out.nab += s.nab
        out.files += s.files
    return out


def select(matrix: list[list[Scores]], files: Sequence[int], max_far: float) -> int:
    """Index of the candidate chosen on *files* (see the module doc)."""
    sums = [total(matrix, c, files).confusion for c in range(len(matrix))]

    def far(c: int) -> float:
        v = sums[c].far
        return math.inf if math.isnan(v) else v

    ok = [c for c in range(len(sums)) if far(c) <= max_far and not math.isnan(sums[c].f1)]
    if not ok:
        return min(range(len(sums)), key=lambda c: (far(c), c))
    return max(ok, key=lambda c: (sums[c].f1, -far(c), -c))


def score_matrix(n_candidates: int, n_files: int, run: Callable[[int, int], Scores | None], what: Callable[[int], str]) -> list[list[Scores]]:
    """run(candidate, file) for every pair; a file without labels cannot be used for tuning."""
    matrix: list[list[Scores]] = [[] for _ in range(n_candidates)]
    for f in range(n_files):
        for c in range(n_candidates):
            s = run(c, f)
            if s is None:
                raise ValueError(f"{what(f)}: no 'anomaly' or 'changepoint' label column, so it cannot be used to choose a setting")
            matrix[c].append(s)
    return matrix


# -- groups and folds --------------------------------------------------------------------------


def parse_groups(spec: str) -> list[tuple[str, str]]:
    """``"valve1/*=valve;other/*=other"`` -> [(pattern, group)]; first match wins."""
    out = []
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        pattern, eq, group = part.rpartition("=")
        if not eq or not pattern.strip() or not group.strip():
            raise ValueError(f"--groups: {part!r} is not pattern=group")
        out.append((pattern.strip(), group.strip()))
    if not out:
        raise ValueError("--groups: empty")
    return out


def group_of(path: Path, rules: list[tuple[str, str]] | None) -> str:
    """The file's group: the first rule whose pattern matches its path (as given, or the last
    folder/name), else ValueError; without rules, the name of the folder it is in."""
    if rules is None:
        return path.parent.name or "."
    short = f"{path.parent.name}/{path.name}"
    for pattern, group in rules:
        if fnmatch.fnmatch(str(path), pattern) or fnmatch.fnmatch(short, pattern) or fnmatch.fnmatch(path.name, pattern):
            return group
    raise ValueError(f"{path}: no --groups pattern matches it")


def two_folds(groups: Sequence[str], seed: int | None = None) -> list[tuple[str, list[int], list[int]]]:
    """Two folds [(name, tuning files, held-out files)]: alternate within each group, in file order
    (shuffled within the group with *seed*), so each half holds about half of every group."""
    halves: tuple[list[int], list[int]] = ([], [])
    rng = random.Random(seed)
    for g in dict.fromkeys(groups):
        members = [i for i, x in enumerate(groups) if x == g]
        if seed is not None:
            rng.shuffle(members)
        for j, i in enumerate(members):
            halves[j % 2].append(i)
    a, b = sorted(halves[0]), sorted(halves[1])
    if not a or not b:
        raise ValueError("--split needs at least two files")
    return [("fold 1", a, b), ("fold 2", b, a)]


def logo_folds(groups: Sequence[str]) -> list[tuple[str, list[int], list[int]]]:
    """One fold per group: tune on the other groups, hold this one out."""
    names = list(dict.fromkeys(groups))
    if len(names) < 2:
        raise ValueError(f"leave-one-group-out needs at least two groups, got {names}")
    return [(f"group {g}", [i for i, x in enumerate(groups) if x != g], [i for i, x in enumerate(groups) if x == g]) for g in names]
