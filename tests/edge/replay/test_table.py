"""The replay's CSV input: every problem is a located error, listed in full; gaps stay gaps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.replay.table import MAX_LISTED, CsvError, parse_number, read_signal_csv


def _write(tmp_path: Path, data: str | bytes, name: str = "rec.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_sniffs_separator_splits_labels_and_keeps_gaps(tmp_path: Path) -> None:
    p = _write(tmp_path, "datetime;a;b;anomaly;changepoint\n2020-03-09 10:00:00;1.5;2;0.0;0.0\n2020-03-09 10:00:01;;NaN;1.0;1\n\n")
    t = read_signal_csv(p)
    assert t.names == ["a", "b"] and t.time_column == "datetime"
    assert t.times_s[1] - t.times_s[0] == 1.0
    assert t.values[0].tolist() == [1.5, 2.0] and np.isnan(t.values[1]).all()  # empty and NaN cells are gaps
    assert t.labels["anomaly"].tolist() == [False, True] and t.labels["changepoint"].tolist() == [False, True]


def test_byte_order_mark_quotes_and_crlf_are_read(tmp_path: Path) -> None:
    p = _write(tmp_path, b'\xef\xbb\xbft,"a b",c\r\n0," 1.5 ",-2e-3\r\n1,2,.5\r\n')
    t = read_signal_csv(p)
    assert t.names == ["a b", "c"] and t.values.tolist() == [[1.5, -0.002], [2.0, 0.5]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,a\n0,1\n1,2,3\n", "rec.csv:3: expected 2 fields, got 3"),
        ("t,a\n5,1\n4,2\n", "rec.csv:3: column 't': time goes backwards ('4' after line 2)"),
        ("t,a\nnoon,1\n", "rec.csv:2: column 't': 'noon' is not a time (seconds or ISO 8601)"),
        ("t,a\n,1\n", "rec.csv:2: column 't': the time is empty"),
        ("t,a\ninf,1\n", "rec.csv:2: column 't': 'inf' is not a time"),
        ("t,a\n0,1\n2020-01-01T00:00:00,2\n", "rec.csv:3: column 't': '2020-01-01T00:00:00' is a date-time but line 2 has numbers"),
        ("t,Pressure\n0,1\n1,n/a\n", "rec.csv:3: column 'Pressure': 'n/a' is not a number"),
        ("t,a\n0,inf\n", "rec.csv:2: column 'a': 'inf' is not a finite number"),
        ("t,a\n0,1e999\n", "rec.csv:2: column 'a': '1e999' is not a finite number"),
        ("t,a\n0,1_000\n", "rec.csv:2: column 'a': '1_000' is not a number"),
        ("t;a\n0;1,5\n", "rec.csv:2: column 'a': '1,5' is not a number"),
        ("t,a,anomaly\n0,1,0.5\n", "rec.csv:2: column 'anomaly': '0.5' is not a label (0 or 1)"),
        ("t,a,anomaly\n0,1,\n", "rec.csv:2: column 'anomaly': '' is not a label (0 or 1)"),
        ("t,a,a\n0,1,2\n", "rec.csv:1: column 'a' appears twice (columns 2 and 3)"),
        ("t,,b\n0,1,2\n", "rec.csv:1: column 2 has no name"),
        ("0,1.5\n1,2\n", "rec.csv:1: the first line holds numbers, not column names (0, 1.5...): the header line is missing"),
        ("t,a\n", "rec.csv: no data rows after the header"),
        ("", "rec.csv: empty file"),
        ("\n\n", "rec.csv: empty file"),
        ("\nt,a\n0,1\n", "rec.csv:1: the header line is empty"),
        ("time\n0\n1\n", "rec.csv:1: no column separator"),
        ("t,anomaly\n0,1\n", "rec.csv:1: no signal columns besides the time and labels"),
        ("x,a\n0,1\n", "rec.csv:1: no time column 'zz'"),
    ],
)
def test_errors_name_the_line_and_the_cell(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(CsvError) as info:
        read_signal_csv(p, time_column="zz" if "'zz'" in message else None)
    assert message in str(info.value)
    assert str(info.value).startswith(str(p))


def test_every_bad_cell_is_listed_then_capped(tmp_path: Path) -> None:
    rows = [f"{i},{'x' if i % 2 else i},{'?' if i % 2 else 0}" for i in range(30)]
    p = _write(tmp_path, "t,a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(CsvError) as info:
        read_signal_csv(p)
    err = info.value
    assert len(err.problems) == 30  # 15 rows x 2 bad cells, all found
    lines = str(err).splitlines()
    assert len(lines) == MAX_LISTED + 1 and lines[-1].endswith(f"... and {30 - MAX_LISTED} more problems")
    assert lines[0] == f"{p}:3: column 'a': 'x' is not a number" and lines[1] == f"{p}:3: column 'b': '?' is not a number"


def test_only_selected_columns_are_checked(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,a,junk\n0,1,n/a\n1,2,n/a\n")
    assert read_signal_csv(p, columns=["a"]).values.tolist() == [[1.0], [2.0]]
    with pytest.raises(CsvError, match="column 'junk'"):
        read_signal_csv(p)


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    p = _write(tmp_path, b"t,a\n0,1\n1,2\xff\n2,\xe9t\xe9\n3,n/a\n")
    with pytest.raises(CsvError) as info:
        read_signal_csv(p)
    assert str(info.value).splitlines() == [  # in line order, the rest of the file still checked
        f"{p}:3: byte 0xff at character 4 is not UTF-8 text (save the file as UTF-8)",
        f"{p}:4: byte 0xe9 at character 3 is not UTF-8 text (save the file as UTF-8)",
        f"{p}:5: column 'a': 'n/a' is not a number",
    ]


def test_oversized_field_and_bad_separator_are_errors_not_tracebacks(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,a\n0," + "9" * 200_000 + "\n")
    with pytest.raises(CsvError, match=r"rec.csv:2: unreadable CSV: field larger than field limit"):
        read_signal_csv(p)
    with pytest.raises(CsvError, match="the separator must be one character"):
        read_signal_csv(_write(tmp_path, "t,a\n0,1\n", "ok.csv"), sep=";;")
    with pytest.raises(CsvError, match="cannot read"):
        read_signal_csv(tmp_path / "missing.csv")


def test_parse_number_rules() -> None:
    assert parse_number(" 1.5 ") == 1.5 and parse_number("-.5e2") == -50.0 and parse_number("+3.") == 3.0
    assert math.isnan(parse_number("")) and math.isnan(parse_number(" NaN ")) and math.isnan(parse_number("nan"))
    for bad in ("n/a", "1_0", "0x10", "1.2.3", "--1", "e5", "\u221e", "\uff11"):
        with pytest.raises(ValueError, match="is not a number"):
            parse_number(bad)


def test_cli_reports_every_file_and_problem_without_a_traceback(tmp_path: Path, capsys) -> None:
    bad1 = _write(tmp_path, "t,Pressure\n0,1\n1,n/a\n", "one.csv")
    bad2 = _write(tmp_path, b"t,Pressure\n0,\xff\n", "two.csv")
    assert main(["replay", str(bad1), str(bad2), "--no-plot", "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{bad1}:3: column 'Pressure': 'n/a' is not a number" in err and f"{bad2}:2: byte 0xff" in err
    assert "Traceback" not in err
