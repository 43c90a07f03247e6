"""Find the line of a key path in a TOML file.

``tomllib`` reports positions only for syntax errors, so validation errors get their line from this
small scanner: it follows table headers (``[a]``, ``[[a.b]]`` with per-parent counters) and
``key = value`` lines, and maps key paths such as ``devices[1].tags[4].address`` to line numbers.
Multi-line strings and arrays are skipped over. If a path has no line of its own (a missing key),
the line of its nearest enclosing table is used.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_key(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)]


def key_lines(text: str) -> dict[str, int]:
    """Map every key path and table path in *text* to its 1-based line number."""
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}  # array-of-tables path (with parent indexes) -> next index
    prefix = ""
    open_brackets = 0
    in_multiline: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        if open_brackets > 0:
            open_brackets += line.count("[") - line.count("]")
            continue
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            is_array = header.group(1) == "[["
            parts = _split_key(header.group(2))
            # resolve each parent part against the latest index of arrays of tables
            path = ""
            for i, part in enumerate(parts):
                path = f"{path}.{part}" if path else part
                if i < len(parts) - 1 and path in counters:
                    path = f"{path}[{counters[path] - 1}]"
            if is_array:
                index = counters.get(path, 0)
                counters[path] = index + 1
                # nested arrays restart their numbering under a new parent element
                for key in [k for k in counters if k.startswith(f"{path}[{index}].")]:
                    del counters[key]
                lines.setdefault(path, lineno)
                path = f"{path}[{index}]"
            lines[path] = lineno
            prefix = path
            continue
        key = _KEY.match(line)
        if key:
            full = ".".join([prefix, *_split_key(key.group(1))]) if prefix else ".".join(_split_key(key.group(1)))
            lines.setdefault(full, lineno)
            rest = line[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
            stripped = re.sub(r"""("[^"]*"|'[^']*')""", "", rest.split("#", 1)[0])
            open_brackets = stripped.count("[") - stripped.count("]")
    return lines


def line_of(lines: dict[str, int], path: str) -> int | None:
    """Return the line of *path*, or of its nearest enclosing key or table that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


MAX_NESTING = 32  # arrays and inline tables inside each other; no real config comes near this


def decode_text(data: bytes, source: str, *, bom: bool = False) -> tuple[str, str | None]:
    """(*data* as UTF-8 text, None), or ("", a located problem) when it is not UTF-8.
    With *bom*, a leading byte-order mark is dropped (spreadsheet CSV exports carry one)."""
    try:
        return data.decode("utf-8-sig" if bom else "utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start : exc.start + 1].hex()
        return "", f"{source}:{line}: not UTF-8 text (byte 0x{byte} at column {column}); save the file as UTF-8"


def nesting_line(text: str, limit: int = MAX_NESTING) -> int | None:
    """The first line where brackets or braces nest deeper than *limit* (strings and comments
    skipped), or None. Used to locate a config that is nested too deep to parse."""
    depth = 0
    quote = ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        i = 0
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\" and quote == '"':
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
                if depth > limit:
                    return lineno
            elif ch in "]}":
                depth = max(depth - 1, 0)
            i += 1
        if quote and line.count('"""') == 0 and line.count("'''") == 0:
            quote = ""  # a basic string never spans lines
    return None


def too_deep(value: object, path: str = "", limit: int = MAX_NESTING) -> str | None:
    """The key path of the first value nested deeper than *limit* in parsed TOML, or None (iterative:
    a hostile file cannot exhaust the stack here)."""
    stack: list[tuple[object, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > limit:
            return where
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
    return None
