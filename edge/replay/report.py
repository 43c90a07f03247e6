"""Text tables of replay metrics: one row per file and summed rows (counts summed, then ratios)."""

from __future__ import annotations

import math

from edge.replay.metrics import Scores

HEADER = ("", "rows", "TP", "FP", "FN", "TN", "F1", "FAR %", "MAR %", "NAB std", "low FP", "low FN")


def _f(v: float, digits: int = 2) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def row(label: str, scores: Scores | None) -> list[str]:
    """One table row; a file without labels gets dashes."""
    if scores is None:
        return [label, *["-"] * (len(HEADER) - 1)]
    c, s = scores.confusion, scores.summary()
    rows = c.tp + c.fp + c.fn + c.tn
    return [
        label,
        str(rows),
        str(c.tp),
        str(c.fp),
        str(c.fn),
        str(c.tn),
        _f(s["f1"]),
        _f(s["far"]),
        _f(s["mar"]),
        _f(s["nab_standard"]),
        _f(s["nab_low_fp"]),
        _f(s["nab_low_fn"]),
    ]


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Aligned columns under HEADER: the first left-aligned, the numbers right-aligned."""
    everything = [list(HEADER), *rows]
    widths = [max(len(r[i]) for r in everything) for i in range(len(HEADER))]
    out = []
    for r in everything:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append(indent + "  ".join(cells).rstrip())
    return out


def summed(parts: list[Scores | None]) -> Scores | None:
    """Scores of several files added up (None when no file has labels)."""
    have = [p for p in parts if p is not None]
    if not have:
        return None
    out = Scores()
    for p in have:
        out.confusion += p.confusion
        out.nab += p.nab
        out.files += p.files
    return out


def one_line(scores: Scores) -> str:
    """F1 / FAR / MAR and the NAB standard score on one line."""
    s = scores.summary()
    return f"F1 {_f(s['f1'])}  FAR {_f(s['far'])} %  MAR {_f(s['mar'])} %  NAB standard {_f(s['nab_standard'])}"
