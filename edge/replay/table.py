"""Recorded CSV input of the replay: one header line, a time column, signal columns, labels.

Rules (docs/detection.md, "Input"):

* the file is UTF-8 (a byte-order mark is allowed); the first line is the header (a line of
  numbers only is data, so the header is missing), every column
  has a name and no name appears twice;
* the separator is ``--sep`` or sniffed from the header among ``; , TAB |``;
* every non-blank row has as many fields as the header (blank rows are skipped);
* the time column (default: the first) holds numbers (seconds) or ISO 8601 date-times, one kind
  per file, finite, never empty, never going backwards;
* a signal cell is a decimal number (``12``, ``-0.5``, ``1e-3``), or a gap: an empty cell or
  ``NaN`` means "no measurement at this row" (the twin predicts through it, the detector skips
  the row). Anything else (``n/a``, ``inf``, ``1,5``) is an error, never a silent NaN;
* the label columns ``anomaly`` and ``changepoint``, when present, hold 0 or 1.

Every problem is reported with its line (``file.csv:1204: column 'Pressure': 'n/a' is not a
number``), all of them in one ``CsvError`` (the first ``MAX_LISTED`` listed, then a count).
``parse_signal_csv`` is pure (bytes in, table out); ``read_signal_csv`` reads the file.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

LABEL_COLUMNS = ("anomaly", "changepoint")
SEPARATORS = (";", ",", "\t", "|")
MAX_LISTED = 20
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BAD_BYTE = re.compile("[\udc80-\udcff]")
_INFINITE = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


class CsvError(ValueError):
    """Every problem of one CSV file, each with its line (None: the file as a whole)."""

    def __init__(self, path: str, problems: list[tuple[int | None, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}:{line}: {msg}" if line else f"{path}: {msg}" for line, msg in problems[:MAX_LISTED]]
        if len(problems) > MAX_LISTED:
            lines.append(f"{path}: ... and {len(problems) - MAX_LISTED} more problems")
        super().__init__("\n".join(lines))


@dataclass
class SignalTable:
    """A recorded CSV: timestamps (seconds), signal matrix and optional label columns."""

    path: str
    time_column: str
    times_s: np.ndarray  # (m,) float seconds (POSIX for datetimes, as given for numbers)
    timestamps: list[str]  # as written in the file
    names: list[str]
    values: np.ndarray  # (m, p) float64, NaN where the cell is a gap (empty or NaN)
    labels: dict[str, np.ndarray]  # "anomaly"/"changepoint" -> (m,) bool, when present


def _show(cell: str, limit: int = 40) -> str:
    return repr(cell) if len(cell) <= limit else repr(cell[:limit]) + f"... ({len(cell)} characters)"


def parse_number(cell: str) -> float:
    """A signal cell: NaN for a gap (empty or ``NaN``), the number, or ValueError with the reason."""
    text = cell.strip()
    if not text or text.lower() == "nan":
        return math.nan
    if _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise ValueError(f"{_show(cell)} is not a finite number")
    if text.lower() in _INFINITE:
        raise ValueError(f"{_show(cell)} is not a finite number")
    raise ValueError(f"{_show(cell)} is not a number")


def parse_time(cell: str) -> tuple[float, bool]:
    """A time cell: (seconds, is a date-time), or ValueError with the reason."""
    text = cell.strip()
    if not text:
        raise ValueError("the time is empty")
    if _NUMBER.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{_show(cell)} is not a finite time")
        return value, False
    try:
        return datetime.fromisoformat(text).timestamp(), True
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{_show(cell)} is not a time (seconds or ISO 8601)") from None


def _decode(data: bytes) -> tuple[str, list[tuple[int | None, str]]]:
    """UTF-8 text (BOM dropped), and the first byte that is not UTF-8 on every line that has one
    (such bytes are kept as U+DC80..U+DCFF so that the rest of the file can still be checked)."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    problems: list[tuple[int | None, str]] = []
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    for number, line in enumerate(text.split("\n"), start=1):
        bad = _BAD_BYTE.search(line)
        if bad:
            byte = ord(bad.group()) - 0xDC00
            problems.append((number, f"byte 0x{byte:02x} at character {bad.start() + 1} is not UTF-8 text (save the file as UTF-8)"))
    return text, problems


def _check_header(header: list[str]) -> list[tuple[int | None, str]]:
    problems: list[tuple[int | None, str]] = []
    if all(_NUMBER.fullmatch(name) for name in header):
        return [(1, f"the first line holds numbers, not column names ({', '.join(header[:3])}...): the header line is missing")]
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if not name:
            problems.append((1, f"column {i} has no name"))
        elif name in seen:
            problems.append((1, f"column {_show(name)} appears twice (columns {seen[name]} and {i})"))
        else:
            seen[name] = i
    return problems


def parse_signal_csv(
    data: bytes, path: str = "<csv>", sep: str | None = None, time_column: str | None = None, columns: Iterable[str] | None = None
) -> SignalTable:
    """Parse a recorded CSV (see the module doc); CsvError lists every problem with its line."""
    if sep is not None and (len(sep) != 1 or sep in '"\r\n'):
        raise CsvError(path, [(None, f"the separator must be one character other than a quote or a line break, got {sep!r}")])
    if not data.strip():
        raise CsvError(path, [(None, "empty file (a header line and data rows are needed)")])
    text, encoding_problems = _decode(data)
    bad_lines = {line for line, _ in encoding_problems}
    first = text.splitlines()[0] if text.splitlines() else ""
    if not first.strip():
        raise CsvError(path, [(1, "the header line is empty")])
    if sep is None:
        counts = {s: first.count(s) for s in SEPARATORS}
        sep = max(counts, key=counts.__getitem__)
        if counts[sep] == 0:
            raise CsvError(path, [(1, "no column separator (; , TAB |) in the header line; pass --sep")])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise CsvError(path, [*encoding_problems, (max(reader.line_num, 1), f"unreadable CSV: {exc}")]) from None
    header = [h.strip() for h in rows[0][1]]
    problems = _check_header(header)
    tcol = time_column or header[0]
    if tcol not in header:
        problems.append((1, f"no time column {_show(tcol)}; columns are {header}"))
    wanted = list(columns) if columns is not None else [h for h in header if h and h != tcol and h not in LABEL_COLUMNS]
    missing = [c for c in wanted if c not in header]
    if missing:
        problems.append((1, f"no column(s) {missing}; columns are {header}"))
    if not wanted and not missing:
        problems.append((1, f"no signal columns besides the time and labels; columns are {header} (separator {sep!r})"))
    if problems:
        raise CsvError(path, encoding_problems + problems)
    ti = header.index(tcol)
    idx = [header.index(c) for c in wanted]
    label_idx = {name: header.index(name) for name in LABEL_COLUMNS if name in header}
    body = [(line, r) for line, r in rows[1:] if any(cell.strip() for cell in r)]
    if not body:
        raise CsvError(path, [(None, "no data rows after the header"), *encoding_problems])
    times, vals = np.full(len(body), np.nan), np.full((len(body), len(idx)), np.nan)
    labels = {name: np.zeros(len(body), dtype=bool) for name in label_idx}
    stamps: list[str] = []
    kind: tuple[bool, int] | None = None  # (date-time?, line) of the first good time
    prev: tuple[float, int] | None = None
    for k, (line, r) in enumerate(body):
        stamps.append(r[ti] if ti < len(r) else "")
        if line in bad_lines:  # already reported: its cells would only repeat the encoding problem
            continue
        if len(r) != len(header):
            problems.append((line, f"expected {len(header)} fields, got {len(r)}"))
            continue
        try:
            t, is_dt = parse_time(r[ti])
        except ValueError as exc:
            problems.append((line, f"column {_show(tcol)}: {exc}"))
        else:
            if kind is None:
                kind = (is_dt, line)
            if is_dt != kind[0]:
                what = ("a date-time", "numbers") if is_dt else ("a number", "date-times")
                problems.append((line, f"column {_show(tcol)}: {_show(r[ti])} is {what[0]} but line {kind[1]} has {what[1]}"))
            elif prev is not None and t < prev[0]:
                problems.append((line, f"column {_show(tcol)}: time goes backwards ({_show(r[ti].strip())} after line {prev[1]})"))
            else:
                prev = (t, line)
            times[k] = t
        for c, i in enumerate(idx):
            try:
                vals[k, c] = parse_number(r[i])
            except ValueError as exc:
                problems.append((line, f"column {_show(header[i])}: {exc}"))
        for name, i in label_idx.items():
            cell = r[i].strip()
            if _NUMBER.fullmatch(cell) and float(cell) in (0.0, 1.0):
                labels[name][k] = float(cell) == 1.0
            else:
                problems.append((line, f"column {_show(name)}: {_show(r[i])} is not a label (0 or 1)"))
    if problems or encoding_problems:
        raise CsvError(path, sorted(encoding_problems + problems, key=lambda p: p[0] or 0))
    return SignalTable(path, tcol, times, stamps, wanted, vals, labels)


def read_signal_csv(path: str | Path, sep: str | None = None, time_column: str | None = None, columns: Iterable[str] | None = None) -> SignalTable:
    """Read and parse a recorded CSV file; CsvError (a ValueError) names every problem and its line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CsvError(str(p), [(None, f"cannot read: {exc.strerror or exc}")]) from None
    return parse_signal_csv(data, str(p), sep=sep, time_column=time_column, columns=columns)
