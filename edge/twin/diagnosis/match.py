"""Which fault pattern an episode is: the best and the runner-up, or ``unknown``.

Pure. The similarity of an episode to a pattern is the largest similarity of the episode's
signature to any of the pattern's signatures (``signature.similarity``: the cosine of the full
signatures, or 0.9 x the cosine of their strength-free shapes, whichever is larger). The answer is
the best pattern when its similarity reaches ``min_similarity``, else ``unknown``: a fault the
library does not know is never forced onto the nearest pattern. Confidence is the similarity
clipped to 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.twin.diagnosis.library import UNKNOWN, Library
from edge.twin.diagnosis.signature import Signature, compare, similarity, vectors

DEFAULT_MIN_SIMILARITY = 0.7


@dataclass(frozen=True, slots=True)
class Diagnosis:
    fault: str  # a pattern name, or "unknown"
    confidence: float  # 0..1 (of the fault; for "unknown", of the best pattern that fell short)
    action: str
    runner_up: str  # the second-best pattern ("" if none)
    runner_up_confidence: float
    contributors: tuple[str, ...]


def diagnose(sig: Signature, library: Library, min_similarity: float = DEFAULT_MIN_SIMILARITY) -> Diagnosis:
    scored = sorted(zip(_scores(sig, library), library.patterns, strict=True), key=lambda x: -x[0])
    contributors = tuple(sig.contributors())
    best_sim, best = scored[0] if scored else (0.0, None)
    second_sim, second = scored[1] if len(scored) > 1 else (0.0, None)
    if best is None or best_sim < min_similarity:
        return Diagnosis(UNKNOWN, _conf(best_sim), "", best.name if best else "", _conf(best_sim), contributors)
    return Diagnosis(best.name, _conf(best_sim), best.action, second.name if second else "", _conf(second_sim), contributors)


_cache: dict[tuple[int, tuple[str, ...]], tuple[Library, list[list[tuple[np.ndarray, np.ndarray]]]]] = {}


def _scores(sig: Signature, library: Library) -> list[float]:
    """Each pattern's similarity to *sig* (its best signature's), with the patterns' vectors over
    *sig*'s signals computed once per library (the live diagnoser asks every second)."""
    key = (id(library), sig.signals)
    hit = _cache.get(key)
    if hit is None or hit[0] is not library:
        if any(set(s.signals) - set(sig.signals) for p in library.patterns for s in p.signatures):
            return [max(similarity(sig, s) for s in p.signatures) for p in library.patterns]
        if len(_cache) > 64:
            _cache.clear()
        hit = _cache[key] = (library, [[vectors(s, sig.signals) for s in p.signatures] for p in library.patterns])
    live = vectors(sig, sig.signals)
    return [max(compare(live, v) for v in pattern) for pattern in hit[1]]


def overlaps(sig: Signature, library: Library, name: str, min_similarity: float = DEFAULT_MIN_SIMILARITY) -> list[tuple[str, float]]:
    """Patterns other than *name* that *sig* would also match: (name, similarity), best first."""
    out = [(p.name, max(similarity(sig, s) for s in p.signatures)) for p in library.patterns if p.name != name]
    return sorted([(n, round(v, 3)) for n, v in out if v >= min_similarity], key=lambda x: -x[1])


def _conf(similarity_: float) -> float:
    return min(1.0, max(0.0, similarity_))
