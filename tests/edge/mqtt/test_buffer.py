"""The store-and-forward spool: order, bounds (oldest dropped first, counted), and a restart."""

from __future__ import annotations

from pathlib import Path

from edge.mqtt.buffer import Spool, spool_path


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rows_come_back_in_order_and_survive_a_reopen(tmp_path: Path) -> None:
    sp = Spool(spool_path(tmp_path), max_bytes=10**6, max_age_s=3600)
    sp.open()
    sp.append([(2, b"a"), (3, b"bb")])
    sp.append([(1, b"c")])
    sp.set_meta("bdSeq", 7)
    sp.close()
    again = Spool(spool_path(tmp_path), max_bytes=10**6, max_age_s=3600)
    again.open()
    assert (again.rows, again.metrics, again.bytes) == (3, 6, 4)
    assert [(n, p) for _, n, p in again.head()] == [(2, b"a"), (3, b"bb"), (1, b"c")]
    assert again.get_meta("bdSeq") == 7 and again.get_meta("missing", 255) == 255
    first = again.head(1)[0]
    again.delete(first[0], first[1], len(first[2]))
    assert [p for _, _, p in again.head()] == [b"bb", b"c"] and again.metrics == 4
    again.close()


def test_size_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    sp = Spool(spool_path(tmp_path), max_bytes=1000, max_age_s=3600)
    sp.open()
    dropped = 0
    for i in range(30):
        dropped += sp.append([(10, bytes([i]) * 100)])
    assert sp.bytes <= 1000
    assert dropped == sp.dropped == 10 * (30 - sp.rows)
    # the newest rows are kept, in order
    kept = [p[0] for _, _, p in sp.head(100)]
    assert kept == list(range(30 - len(kept), 30))
    sp.close()


def test_age_bound_drops_old_rows(tmp_path: Path) -> None:
    clock = Clock()
    sp = Spool(spool_path(tmp_path), max_bytes=10**6, max_age_s=60, clock=clock)
    sp.open()
    sp.append([(5, b"old")])
    clock.t += 30
    sp.append([(4, b"mid")])
    clock.t += 40  # "old" is 70 s old now
    assert sp.enforce() == 5
    assert [p for _, _, p in sp.head()] == [b"mid"] and sp.metrics == 4 and sp.dropped == 5
    sp.close()
