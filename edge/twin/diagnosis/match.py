"""Which fault pattern an episode is: the best and the runner-up, or ``unknown``.

Pure. The similarity of an episode to a pattern is the largest cosine similarity of the episode's
signature to any of the pattern's signatures (``signature.similarity``). The answer is the best
pattern when its similarity reaches ``min_similarity``, else ``unknown``: a fault the library does
not know is never forced onto the nearest pattern. Confidence is the similarity clipped to 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.twin.diagnosis.library import UNKNOWN, Library
from edge.twin.diagnosis.signature import Signature, similarity

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
    scored = sorted(((max(similarity(sig, s) for s in p.signatures), p) for p in library.patterns), key=lambda x: -x[0])
    contributors = tuple(sig.contributors())
    best_sim, best = scored[0] if scored else (0.0, None)
    second_sim, second = scored[1] if len(scored) > 1 else (0.0, None)
    if best is None or best_sim < min_similarity:
        return Diagnosis(UNKNOWN, _conf(best_sim), "", best.name if best else "", _conf(best_sim), contributors)
    return Diagnosis(best.name, _conf(best_sim), best.action, second.name if second else "", _conf(second_sim), contributors)


def overlaps(sig: Signature, library: Library, name: str, min_similarity: float = DEFAULT_MIN_SIMILARITY) -> list[tuple[str, float]]:
    """Patterns other than *name* that *sig* would also match: (name, similarity), best first."""
    out = [(p.name, max(similarity(sig, s) for s in p.signatures)) for p in library.patterns if p.name != name]
    return sorted([(n, round(v, 3)) for n, v in out if v >= min_similarity], key=lambda x: -x[1])


def _conf(similarity_: float) -> float:
    return min(1.0, max(0.0, similarity_))
