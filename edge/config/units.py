"""Multi-unit devices: one shared tag list polled on each of several units (``units = [1, 2, 3]``).

A device whose settings model has a ``units`` key (Modbus: the unit ids behind one gateway or on
one RS-485 bus) declares its tags once, as a template. ``expand_units`` gives each unit its own
copy of every tag, named ``<unit>.<tag>`` (``edge.core.names.unit_tag``) and bound to the unit
through the tag model's ``unit_id``. Everything after the loader (the driver's points, registry
keys ``<device>.<unit>.<tag>``, nodes ``Devices/<device>/<unit>/<tag>``, asset signals, alarms,
history, MQTT, reload) sees the expanded tags, so it needs nothing of its own for units.

A unit's folder is ``unit<id>`` for ``units = [1, 2]``, or the name given in
``units = {pump_a = 1, pump_b = 2}``. A device without ``units`` keeps its tags, names and NodeIds.

Problems found later at an expanded tag (``devices[0].tags[7]``) are located at its template
(``devices[0].tags[1]``, or the line of the file it was included from) through the collector's
aliases, so a template's problem is listed once, not once per unit. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge.core import names

if TYPE_CHECKING:
    from edge.config.loader import _Collector


def units_of(dev: Any) -> list[tuple[str, int, bool]]:
    """``(folder, unit id, named in the config)`` of each unit of *dev*, in config order; [] without ``units``."""
    units = getattr(dev, "units", None)
    if not units:
        return []
    if isinstance(units, Mapping):
        return [(folder, uid, True) for folder, uid in units.items()]
    return [(names.unit_folder(uid), uid, False) for uid in units]


def expand_units(c: _Collector, prefix: str, dev: Any) -> Any:
    """*dev* with its template tags repeated on each unit (unchanged without ``units``).

    A template tag may not set ``unit_id`` (it is read from every unit): each one that does is a
    located problem. Expanded tag ``i`` of unit ``u`` is ``tags[u * len(templates) + i]``.
    """
    units = units_of(dev)
    if not units:
        return dev
    templates = list(dev.tags)
    for j, tag in enumerate(templates):
        if tag.unit_id is not None:
            c.add(
                f"{prefix}.tags[{j}].unit_id",
                f"the device reads every tag from each of its units ({_ids(units)}); leave unit_id out, or give this tag a device of its own",
            )
    expanded = []
    for folder, uid, _ in units:
        for j, tag in enumerate(templates):
            c.aliases[f"{prefix}.tags[{len(expanded)}]"] = f"{prefix}.tags[{j}]"
            expanded.append(tag.model_copy(update={"name": names.unit_tag(folder, tag.name), "unit_id": uid}))
    return dev.model_copy(update={"tags": expanded})


def _ids(units: list[tuple[str, int, bool]]) -> str:
    return "units " + ", ".join(str(uid) for _, uid, _ in units)
