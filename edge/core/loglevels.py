"""Log levels per component: which level applies to a logger name, and which names are components.

A component is a logger name or a prefix of one: the daemon's loggers are named after their
module (``edge.core.supervisor``, ``drivers.modbus``), so ``"drivers.modbus" = "debug"`` in
``[gateway.log_levels]`` covers every Modbus module, and ``"asyncua" = "info"`` a library's
standard-library loggers. The most specific prefix wins.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path

LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_OWN_ROOTS = ("edge", "drivers", "kernels")


def numeric_level(level: str) -> int:
    """``"info"`` -> ``logging.INFO``; ValueError for a level that is not one of LEVELS."""
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; levels are {', '.join(LEVELS)}")
    return int(getattr(logging, level.upper()))


def level_for(name: str, default: int, levels: Mapping[str, int]) -> int:
    """The level of the logger *name*: that of the longest component in *levels* that is *name*
    or a dotted prefix of it, else *default*."""
    probe = name
    while probe:
        if probe in levels:
            return levels[probe]
        probe = probe.rpartition(".")[0]
    return default


@cache
def own_components() -> frozenset[str]:
    """Every module and package name of the daemon's own packages (``edge.core.supervisor``, ``drivers.modbus``...)."""
    base = Path(__file__).resolve().parents[2]
    names: set[str] = set()
    for root in _OWN_ROOTS:
        for path in (base / root).rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if all(_NAME.match(p) for p in parts):
                names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(names)


def check_component(name: str) -> str | None:
    """None if *name* names a component; otherwise the message of a config error."""
    if not _NAME.match(name):
        return f"{name!r} is not a logger name (dotted words, e.g. 'drivers.modbus')"
    root = name.partition(".")[0]
    if root in _OWN_ROOTS:
        if name in own_components():
            return None
        close = difflib.get_close_matches(name, sorted(own_components()), n=1)
        return f"unknown component {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if importlib.util.find_spec(root) is None:  # a library's loggers: its top-level package must be installed
        return f"unknown component {name!r}: no module {root!r} is installed (components: edge..., drivers..., or a library such as 'asyncua', 'pymodbus')"
    return None
