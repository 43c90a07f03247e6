"""Config check: no two things in a config may create the same node of the address space.

A tag ``tempHighLimit`` beside a tag ``temp`` with ``alarm_high`` would take the NodeId of the
limit condition; a signal ``Detector`` on an asset with ``[assets.detector]`` would merge with
the detector's object. ``check_collisions`` plans every node (``edge.config.nodes``) and reports
each path with two creators as one located error, for example::

    devices[0].tags[1].name: 'tempHighLimit' collides with the HighLimit condition of 'temp' (devices[0].tags[0].alarm_high)

The error goes to the config name that can be changed: of two creators, the one whose own name
is the node's browse name (a device, tag, asset or signal); when both or neither are, the later
one. Two same-kind items with one name (two devices ``plc``) are duplicates, reported by the
duplicate-name checks, and are not reported again here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edge.config.nodes import PlannedNode, plan_nodes


def check_collisions(c: Any, devices: Sequence[tuple[str, Any]], assets: Sequence[tuple[str, Any]]) -> None:
    """Report every collision among the nodes of *devices* and *assets* (``(key path, item)``
    pairs, tags from CSV files included) through the collector *c*: ``c.add(path, message)``;
    ``c.origins`` maps the key path of an item read from another file (a CSV tag) to its
    ``(file, line, ...)``, which messages show instead of that key path; ``c.resolve`` maps a
    unit's copy of a tag to its template (``edge.config.units``)."""
    for source, message in find_collisions(plan_nodes(devices, assets), c.origins, getattr(c, "resolve", None)):
        c.add(source, message)


def find_collisions(
    nodes: Sequence[PlannedNode], origins: Mapping[str, tuple[Any, ...]] | None = None, resolve: Callable[[str], tuple[str, Any]] | None = None
) -> list[tuple[str, str]]:
    """``(key path, message)`` for each collision among *nodes*, each pair of creators once, in
    the plan order of the node reported; *origins* and *resolve* as ``c.origins`` and ``c.resolve``
    of ``check_collisions``."""
    by_path: dict[tuple[str, ...], list[tuple[int, PlannedNode]]] = {}
    for index, node in enumerate(nodes):
        by_path.setdefault(node.path, []).append((index, node))
    found: dict[tuple[str, str, str], tuple[int, str, str]] = {}
    for group in by_path.values():
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                if _duplicate(first[1], second[1]):
                    continue
                (index, blamed), (_, other) = _blame(first, second)
                key = (blamed.source, other.source, other.what)
                if key in found:
                    continue
                where = _where(other.source, origins or {}, resolve) if other.source else "/".join(other.path)
                subject = repr(blamed.name) if blamed.name is not None else f"{blamed.what} at {'/'.join(blamed.path)}"
                found[key] = (index, blamed.source, f"{subject} collides with {other.what} ({where})")
    return [(source, message) for _, source, message in sorted(found.values(), key=lambda f: f[0])]


def _duplicate(a: PlannedNode, b: PlannedNode) -> bool:
    """Same kind of creator at the same place in the config: two items with one name."""
    return a.what == b.what and _shape(a.source) == _shape(b.source)


def _shape(source: str) -> str:
    return re.sub(r"\[\d+\]", "[]", source)


def _blame(a: tuple[int, PlannedNode], b: tuple[int, PlannedNode]) -> tuple[tuple[int, PlannedNode], tuple[int, PlannedNode]]:
    """``(the node to report, the other)`` of *a* and the later *b* (each with its plan index)."""
    named_a, named_b = a[1].name is not None, b[1].name is not None
    if named_a != named_b:
        return (a, b) if named_a else (b, a)
    return (b, a) if b[1].source else (a, b)  # the gateway's own nodes are never the ones to rename


def _where(source: str, origins: Mapping[str, tuple[Any, ...]], resolve: Callable[[str], tuple[str, Any]] | None = None) -> str:
    """*source* (a unit's copy of a tag: its template's), or ``file:line`` when its item came from another file."""
    if resolve is not None:
        source = resolve(source)[0]
    item = source.rpartition(".")[0]
    if item in origins:
        file, line = origins[item][:2]
        return f"{file}:{line}"
    return source
