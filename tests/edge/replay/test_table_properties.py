"""Property tests of the replay input: any bytes give a table or a located error, never a
traceback; a cell made bad is reported at its line and column; a table written as CSV text reads
back to the same numbers."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.replay.table import LABEL_COLUMNS, SEPARATORS, CsvError, SignalTable, parse_signal_csv, read_signal_csv
from tests.skab_data import SKAB, require

PATH = "rec.csv"
LOCATED = re.compile(rf"^{re.escape(PATH)}(:\d+)?: \S")
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(data: bytes, **kw) -> SignalTable | CsvError:
    """Parse; only SignalTable or CsvError may come out (anything else fails the test)."""
    try:
        table = parse_signal_csv(data, PATH, **kw)
    except CsvError as exc:
        n_lines = len(data.splitlines()) + 1  # a lone CR ends a line too, as the csv reader sees it
        assert exc.problems, "an error with no problem in it"
        for line, msg in exc.problems:
            assert line is None or 1 <= line <= n_lines, (line, n_lines, msg)
            assert msg and "\n" not in msg
        assert all(LOCATED.match(text) for text in str(exc).splitlines()), str(exc)
        return exc
    m, p = table.values.shape
    assert m == len(table.times_s) == len(table.timestamps) >= 1 and p == len(table.names) >= 1
    assert np.all(np.isfinite(table.times_s)) and np.all(np.diff(table.times_s) >= 0)
    assert not np.isinf(table.values).any()
    assert all(v.shape == (m,) and v.dtype == bool for v in table.labels.values())
    return table


# -- random input ------------------------------------------------------------------------------

CELL_CHARS = st.sampled_from([*"0123456789.-+eE ,;\t|\"'\nnaNAxX:T/", "\r\n", "\udcff", "\x00", "\u00e9", "inf"])  # \udcff: the byte 0xff
cells = st.lists(CELL_CHARS, max_size=8).map("".join)


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_give_a_table_or_a_located_error(data: bytes) -> None:
    _outcome(data)


@FAST
@given(st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=12), st.sampled_from([None, *SEPARATORS]))
def test_random_csv_text_gives_a_table_or_a_located_error(rows: list[list[str]], sep: str | None) -> None:
    joiner = sep or ","
    text = "\n".join(joiner.join(r) for r in rows)
    _outcome(text.encode("utf-8", errors="surrogateescape"), sep=sep)


@FAST
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=2, max_size=4), min_size=1, max_size=10))
def test_numeric_header_only_or_labels_are_accepted_or_located(rows: list[list[float]]) -> None:
    width = max(len(r) for r in rows)
    header = ",".join(["t", *[f"s{i}" for i in range(width - 2)], "anomaly"])
    body = "\n".join(",".join(repr(v) for v in r) for r in rows)
    _outcome(f"{header}\n{body}\n".encode())


# -- mutated SKAB files ------------------------------------------------------------------------


def _skab_heads() -> list[bytes]:
    require(SKAB)
    files = [SKAB / "valve1" / "3.csv", SKAB / "other" / "10.csv", SKAB / "anomaly-free" / "anomaly-free.csv"]
    return [b"".join(f.read_bytes().splitlines(keepends=True)[:40]) for f in files]


@pytest.fixture(scope="module")
def skab_heads() -> list[bytes]:
    return _skab_heads()


def test_skab_heads_parse_cleanly(skab_heads: list[bytes]) -> None:
    for head in skab_heads:
        t = _outcome(head)
        assert isinstance(t, SignalTable) and t.values.shape == (39, 8) and not np.isnan(t.values).any()


MUTATION = st.tuples(
    st.sampled_from(["replace", "delete", "insert", "duplicate_line", "drop_line", "truncate"]),
    st.floats(0, 1),
    st.integers(0, 20),
    st.binary(min_size=1, max_size=6) | st.sampled_from([b";", b";;", b"\n", b'"', b"n/a", b"\xff", b"nan", b"inf", b"1e999", b" ", b"\r"]),
)


def _mutate(data: bytes, mutations: list[tuple[str, float, int, bytes]]) -> bytes:
    for kind, where, length, payload in mutations:
        i = int(where * len(data))
        lines = data.splitlines(keepends=True)
        j = min(int(where * len(lines)), max(len(lines) - 1, 0))
        if kind == "replace":
            data = data[:i] + payload + data[i + length :]
        elif kind == "delete":
            data = data[:i] + data[i + length :]
        elif kind == "insert":
            data = data[:i] + payload + data[i:]
        elif kind == "duplicate_line" and lines:
            data = b"".join(lines[: j + 1] + lines[j:])
        elif kind == "drop_line" and lines:
            data = b"".join(lines[:j] + lines[j + 1 :])
        elif kind == "truncate":
            data = data[:i]
    return data


@FAST
@given(st.integers(0, 2), st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_skab_files_give_a_table_or_a_located_error(skab_heads: list[bytes], which: int, mutations: list) -> None:
    _outcome(_mutate(skab_heads[which], mutations))


@FAST
@given(st.integers(0, 2), st.integers(2, 40), st.integers(1, 8), st.sampled_from(["n/a", "?", "1,5", "inf", "-", "12..3", "0x1F", "#VALUE!"]))
def test_a_bad_cell_in_skab_is_reported_at_its_line_and_column(skab_heads: list[bytes], which: int, line: int, col: int, bad: str) -> None:
    lines = skab_heads[which].decode().splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(";")
    cells = lines[line - 1].rstrip("\r\n").split(";")
    cells[col] = bad
    lines[line - 1] = ";".join(cells) + "\n"
    out = _outcome("".join(lines).encode())
    assert isinstance(out, CsvError)
    assert f"{PATH}:{line}: column {header[col]!r}: {bad!r} is not a" in str(out)


def test_mutated_skab_file_on_disk_through_the_reader(tmp_path: Path, skab_heads: list[bytes]) -> None:
    """The same check through the file reader, on a real file."""
    p = tmp_path / "3.csv"
    p.write_bytes(skab_heads[0].replace(b";0.0;0.0", b";0.0;maybe", 1))
    with pytest.raises(CsvError, match=r"3\.csv:2: column 'changepoint': 'maybe' is not a label \(0 or 1\)"):
        read_signal_csv(p)


# -- round trip --------------------------------------------------------------------------------

NAME = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00;,\t|", exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]), min_size=1, max_size=8)
VALUE = st.floats(allow_infinity=False, allow_nan=True)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[float], list[list[float]], dict[str, list[bool]], str]:
    names = draw(st.lists(NAME.filter(lambda s: s.strip() == s and s not in ("time", *LABEL_COLUMNS)), min_size=1, max_size=4, unique=True))
    rows = draw(st.integers(1, 25))
    times = sorted(draw(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=rows, max_size=rows)))
    values = draw(st.lists(st.lists(VALUE, min_size=len(names), max_size=len(names)), min_size=rows, max_size=rows))
    label_names = draw(st.lists(st.sampled_from(LABEL_COLUMNS), unique=True))
    labels = {n: draw(st.lists(st.booleans(), min_size=rows, max_size=rows)) for n in label_names}
    sep = draw(st.sampled_from(SEPARATORS))
    return names, times, values, labels, sep


@FAST
@given(tables(), st.booleans(), st.booleans())
def test_a_table_written_as_csv_reads_back_to_the_same_numbers(table, nan_as_text: bool, sniff: bool) -> None:
    names, times, values, labels, sep = table
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=sep, lineterminator="\n")
    w.writerow(["time", *names, *labels])
    for i, t in enumerate(times):
        cells = [("NaN" if nan_as_text else "") if math.isnan(v) else repr(v) for v in values[i]]
        w.writerow([repr(t), *cells, *(str(int(v[i])) for v in labels.values())])
    out = _outcome(buf.getvalue().encode(), sep=None if sniff else sep)
    assert isinstance(out, SignalTable), str(out)
    assert out.names == names and out.times_s.tolist() == times
    np.testing.assert_array_equal(out.values, np.array(values, dtype=np.float64).reshape(len(times), len(names)))
    assert {k: v.tolist() for k, v in out.labels.items()} == labels
