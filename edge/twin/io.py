"""Batched reads of the registry for the twin: one pass over many tags, results as arrays.

The twin runs thousands of channels per tick; per-channel Python work (status checks, float
conversion, numpy scalar indexing) would cost far more than the kernels. Here each tick's inputs
are read in one pass and turned into arrays, so the rest is vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from drivers.sample import Status, TagSample
from edge.core.registry import TagRegistry

STALE = int(Status.UncertainNoCommunicationLastUsableValue)

# TagSample is a frozen slots dataclass; its generated __init__ sets each field through
# object.__setattr__, about 1 us per sample. The twin makes tens of thousands per tick, so it sets
# the slots directly (half the cost). tests/edge/twin/test_io.py checks that the result equals
# TagSample(...) and that the class still has exactly these fields and no __post_init__.
SAMPLE_FIELDS = ("tag", "value", "status", "source_time", "server_time")
_set_tag, _set_value, _set_status, _set_source, _set_server = (getattr(TagSample, f).__set__ for f in SAMPLE_FIELDS)
_new = object.__new__


def sample(tag: str, value: object, status: int, source_time: datetime, server_time: datetime) -> TagSample:
    """``TagSample(tag, value, status, source_time, server_time)``, built faster."""
    s = _new(TagSample)
    _set_tag(s, tag)
    _set_value(s, value)
    _set_status(s, status)
    _set_source(s, source_time)
    _set_server(s, server_time)
    return s


def severity(status: np.ndarray) -> np.ndarray:
    """0 Good, 1 Uncertain, 2/3 Bad, element-wise (see ``drivers.sample.severity``)."""
    return (status >> 30) & 3


@dataclass(slots=True)
class Gathered:
    samples: list[TagSample]
    status: np.ndarray  # int64 status codes
    value: np.ndarray  # float64; NaN where the sample has no value
    fresh: np.ndarray  # bool: a measurement not seen before (new source time, not a stale copy)


def gather(registry: TagRegistry, tags: Sequence[str], last_source: list[datetime | None]) -> Gathered:
    """Latest sample of each of *tags*; updates *last_source* (one entry per tag) for fresh ones."""
    samples = list(map(registry.latest, tags))
    n = len(samples)
    status = np.fromiter((s.status for s in samples), dtype=np.int64, count=n)
    value = np.array([s.value for s in samples], dtype=np.float64) if n else np.empty(0)  # None -> NaN
    new = np.fromiter((s.source_time != t for s, t in zip(samples, last_source)), dtype=bool, count=n)
    fresh = new & ~np.isnan(value) & (status != STALE)
    for i in np.flatnonzero(fresh).tolist():
        last_source[i] = samples[i].source_time
    return Gathered(samples, status, value, fresh)


def held_values(registry: TagRegistry, tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(value, status)`` of each of *tags*: the value held now (NaN when None or Bad)."""
    samples = list(map(registry.latest, tags))
    n = len(samples)
    status = np.fromiter((s.status for s in samples), dtype=np.int64, count=n)
    value = np.array([s.value for s in samples], dtype=np.float64) if n else np.empty(0)
    value[severity(status) >= 2] = np.nan
    return value, status
