"""HistoryStore on its own: round trip, ordering, retention by age and by size."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sample import Status, TagSample, utcnow
from edge.history.store import HistoryStore, from_us, to_us

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path / "h.sqlite", retention_days=7, max_db_mb=1)
    s.open()
    yield s
    s.close()


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_time_round_trips_to_the_microsecond(t: datetime) -> None:
    assert from_us(to_us(t)) == t


def test_database_is_in_wal_mode_and_survives_reopen(tmp_path) -> None:
    s = HistoryStore(tmp_path / "h.sqlite", retention_days=7, max_db_mb=1)
    s.open()
    s.append([TagSample("a", 1.5, Status.Good, T0, T0), TagSample("b", "text", Status.Good, T0, T0)])
    s.close()
    assert sqlite3.connect(tmp_path / "h.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.open()
    assert [r.value for r in s.read("a", None, None)] == [1.5]
    assert [r.to_sample("b") for r in s.read("b", None, None)] == [TagSample("b", "text", Status.Good, T0, T0)]
    s.close()


def test_read_orders_by_source_time_then_arrival(store) -> None:
    t = [T0 + timedelta(seconds=i) for i in range(3)]
    store.append([TagSample("a", 2, Status.Good, t[2], T0), TagSample("a", 0, Status.Good, t[0], T0), TagSample("a", 1, Status.Good, t[0], T0)])
    assert [r.value for r in store.read("a", None, None)] == [0, 1, 2]
    assert [r.value for r in store.read("a", None, None, reverse=True)] == [2, 1, 0]
    assert [r.value for r in store.read("a", to_us(t[1]), None)] == [2]
    first = store.read("a", None, None, limit=1)[0]
    assert [r.value for r in store.read("a", None, None, after=(first.source_us, first.id))] == [1, 2]


def test_retention_by_age_removes_only_rows_received_before_the_cutoff(store) -> None:
    now = utcnow()
    store.append([TagSample("a", float(d), Status.Good, now, now - timedelta(days=d)) for d in (10, 8, 6, 1)])
    assert store.trim(now) == (2, 0)
    assert [r.value for r in store.read("a", None, None)] == [6.0, 1.0]


def test_retention_by_size_keeps_the_newest_rows_under_the_limit(store) -> None:
    """40,000 samples (well over 1 MB) trim down to under 1 MB, newest kept, oldest gone."""
    for chunk in range(8):
        store.append([TagSample("a", float(chunk * 5000 + i), Status.Good, T0 + timedelta(milliseconds=chunk * 5000 + i), T0) for i in range(5000)])
    assert store.used_bytes() > store.max_bytes
    by_age, by_size = store.trim(T0)
    assert by_age == 0 and by_size > 0
    assert store.used_bytes() <= store.max_bytes
    rows = store.read("a", None, None)
    assert len(rows) == 40_000 - by_size
    assert rows[-1].value == 39_999.0 and rows[0].value == float(by_size)
    assert (store.path.stat().st_size) <= store.max_bytes * 1.05  # freed pages are given back to the file system


def test_append_is_all_or_nothing(store) -> None:
    with pytest.raises(sqlite3.Error):
        store.append([TagSample("a", 1.0, Status.Good, T0, T0), TagSample("a", object(), Status.Good, T0, T0)])  # type: ignore[arg-type]
    assert store.count() == 0
    store.append([TagSample("a", 1.0, Status.Good, T0, T0)])
    assert store.count("a") == 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), max_size=30), st.integers(1, 7))
def test_paging_with_after_visits_every_row_once(tmp_path_factory, rows, page) -> None:
    """Following (source_us, id) continuation from any page size yields every row once, in order."""
    s = HistoryStore(tmp_path_factory.mktemp("p") / "h.sqlite", retention_days=7, max_db_mb=8)
    s.open()
    try:
        s.append([TagSample("a", v, Status.Good, T0 + timedelta(seconds=sec), T0) for sec, v in rows])
        for reverse in (False, True):
            everything = s.read("a", None, None, reverse=reverse)
            seen, after = [], None
            while True:
                got = s.read("a", None, None, reverse=reverse, after=after, limit=page)
                seen.extend(got)
                if len(got) < page:
                    break
                after = (got[-1].source_us, got[-1].id)
            assert [r.id for r in seen] == [r.id for r in everything]
    finally:
        s.close()


def test_integers_beyond_int64_are_kept_exactly(store) -> None:
    big = 2**64 - 1  # a uint64 register pair
    store.append([TagSample("a", big, Status.Good, T0, T0), TagSample("a", -(2**63), Status.Good, T0, T0)])
    assert [int(r.value) for r in store.read("a", None, None)] == [big, -(2**63)]


@pytest.mark.parametrize("where", ["a_directory", "under_a_file"])
def test_a_database_that_cannot_be_opened_is_named_in_the_error(tmp_path, where: str) -> None:
    (tmp_path / "a_directory").mkdir()
    (tmp_path / "a_file").write_text("x")
    path = tmp_path / "a_directory" if where == "a_directory" else tmp_path / "a_file" / "history.sqlite"
    store = HistoryStore(path, retention_days=1, max_db_mb=10)
    with pytest.raises(OSError, match=rf"cannot open the history database {path}: \S"):
        store.open()
    store.close()  # nothing left open


def test_a_small_budget_is_kept_within_ten_percent_and_trims_remove_only_what_is_needed(tmp_path) -> None:
    """The writer's sequence (append a batch, trim when over budget): the database file never
    passes max_db_mb by more than 10 %, and each trim leaves it near SIZE_TARGET, not nearly empty.
    (Before, the WAL was counted as used space: a trim then removed most of the rows.)"""
    from edge.history.store import SIZE_TARGET

    store = HistoryStore(tmp_path / "h.sqlite", retention_days=365, max_db_mb=0.5)
    store.open()
    try:
        biggest, after_trims, removed, written = 0, [], 0, 0
        for _ in range(120):
            store.append([TagSample("a", float(written + i), Status.Good, T0 + timedelta(milliseconds=written + i), T0) for i in range(500)])
            written += 500
            if store.over_budget():
                removed += store.trim(T0)[1]
                after_trims.append(store.used_bytes())
            biggest = max(biggest, store.path.stat().st_size)
        assert len(after_trims) >= 3  # the budget really was hit, several times
        assert biggest <= store.max_bytes * 1.10
        assert all(used >= store.max_bytes * (SIZE_TARGET - 0.1) for used in after_trims)
        assert store.count("a") == written - removed
        assert store.read("a", None, None)[-1].value == float(written - 1)
    finally:
        store.close()
