"""A batch of samples as columns: one key tuple, and NumPy arrays of values, status codes and timestamps.

A driver that reads many numeric tags at once (the synthetic driver; later any driver whose points
come as a block) can hand its batch to the daemon as ``SampleColumns`` instead of one ``TagSample``
per value. The columns are what the OPC UA publish path works on (``edge.opcua.columnar``: node
values built when read, monitored items as arrays, notifications encoded in one call); every other
consumer sees an ordinary ``Sequence[TagSample]``, built sample by sample when it is indexed or
iterated (``batch[i]``), so nothing downstream has to know about columns.

* ``keys``: the registry keys, a tuple the driver keeps and passes again with every batch (the
  publish path caches its plan per key tuple: the same object each time is what makes it cheap);
* ``values``: float64, one per key; the value of a Bad row is ignored (a Bad sample carries no
  value: ``batch[i].value`` is None there);
* ``status``: uint32 OPC UA status codes (``drivers.sample.Status``);
* ``source`` / ``server``: int64 timestamps in OPC UA ticks (100 ns since 1601-01-01 UTC, the
  DateTime of the wire), as ``ticks`` makes them from a datetime.

``EDGE_COLUMNS=0`` in the environment makes drivers send ``TagSample`` lists instead (``ENABLED``),
which is how the benchmarks compare both paths in one run. Pure otherwise: no I/O, NumPy only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import numpy as np

from drivers.sample import TagSample

__all__ = ["ENABLED", "SampleColumns", "any_good", "from_ticks", "sample_keys", "ticks"]

# EDGE_COLUMNS=0 makes the drivers that can send columns send samples (to compare the two paths)
ENABLED = os.environ.get("EDGE_COLUMNS", "1") != "0"

EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_BAD = 0x80000000
_last_dt: list[Any] = [None, 0, None, 0]  # (datetime, ticks) converted last, both ways


def ticks(dt: datetime) -> int:
    """*dt* (timezone-aware, after 1601) as OPC UA ticks, as asyncua's ``datetime_to_win_epoch``."""
    if dt is _last_dt[0]:
        return int(_last_dt[1])
    t = 0 if dt <= EPOCH else 10 * ((dt - EPOCH) // _US)
    _last_dt[0], _last_dt[1] = dt, t
    return t


def from_ticks(t: int) -> datetime:
    """OPC UA ticks as a UTC datetime (microseconds: what a datetime holds)."""
    t = int(t)
    if t == _last_dt[3] and _last_dt[2] is not None:
        return _last_dt[2]  # type: ignore[no-any-return]
    dt = EPOCH + timedelta(microseconds=t // 10)
    _last_dt[2], _last_dt[3] = dt, t
    return dt


class SampleColumns(Sequence[TagSample]):
    """One batch of float64 samples as columns (see the module docstring)."""

    __slots__ = ("keys", "server", "source", "status", "values")

    def __init__(self, keys: tuple[str, ...], values: np.ndarray, status: np.ndarray, source: np.ndarray, server: np.ndarray) -> None:
        n = len(keys)
        self.keys = keys
        self.values = np.asarray(values, dtype=np.float64)
        self.status = np.asarray(status, dtype=np.uint32)
        self.source = np.asarray(source, dtype=np.int64)
        self.server = np.asarray(server, dtype=np.int64)
        for name in ("values", "status", "source", "server"):
            column = getattr(self, name)
            if column.shape != (n,):
                raise ValueError(f"column {name} has shape {column.shape}, expected ({n},) for {n} keys")

    @classmethod
    def stamped(cls, keys: tuple[str, ...], values: np.ndarray, status: int | np.ndarray, when: datetime, server: datetime | None = None) -> SampleColumns:
        """A batch whose samples share one source time *when* (and server time *server*, default *when*)."""
        n = len(keys)
        st = np.full(n, status, dtype=np.uint32) if isinstance(status, int) else status
        src = np.full(n, ticks(when), dtype=np.int64)
        srv = src if server is None or server is when else np.full(n, ticks(server), dtype=np.int64)
        return cls(keys, values, st, src, srv)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, i: int) -> TagSample: ...
    @overload
    def __getitem__(self, i: slice) -> list[TagSample]: ...
    def __getitem__(self, i: int | slice) -> TagSample | list[TagSample]:
        if isinstance(i, slice):
            return [self.sample(j) for j in range(*i.indices(len(self.keys)))]
        n = len(self.keys)
        if not -n <= i < n:
            raise IndexError(i)
        return self.sample(i % n)

    def __iter__(self) -> Iterator[TagSample]:
        return map(self.sample, range(len(self.keys)))

    def sample(self, i: int) -> TagSample:
        """Row *i* as a TagSample (no value when its status is Bad)."""
        status = int(self.status[i])
        value = None if status & _BAD else float(self.values[i])
        return TagSample(self.keys[i], value, status, from_ticks(self.source[i]), from_ticks(self.server[i]))

    def __repr__(self) -> str:
        return f"SampleColumns({len(self.keys)} samples)"


def sample_keys(batch: Sequence[TagSample]) -> Iterable[str]:
    """The tags of *batch*, without building samples for a columnar one."""
    if type(batch) is SampleColumns:
        return batch.keys
    return (s.tag for s in batch)


def any_good(batch: Sequence[TagSample]) -> bool:
    """Whether any sample of *batch* is Good (status 0)."""
    if type(batch) is SampleColumns:
        return bool((batch.status == 0).any())
    return any(s.status == 0 for s in batch)
