"""One device's registry entries and renamed points, built in bulk (start-up and reload).

At 50,000 tags the gateway spent 2.6 s of CPU here before the address space was even started,
most of it in two places: ``getattr(model, "name", default)`` on a pydantic model that lacks the
attribute (pydantic's ``__getattr__`` builds and raises an ``AttributeError``: about 20 µs each,
several per tag) and ``dataclasses.replace`` to give each point its registry key (about 30 µs: it
goes through the generated ``__init__`` with every field as a keyword). Here the optional
attributes are looked up once per class (``optional``), and a point is renamed by copying its
fields (``renamed``) when its class has no ``__post_init__`` nor ``init=False`` field, so the
copy is what ``replace`` would make. Same entries as before, in the same order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from edge.core.names import device_path, split_tag, tag_key, unit_path
from edge.core.registry import TagInfo

__all__ = ["device_tag_infos", "optional", "renamed", "renamed_points"]

P = TypeVar("P")


@functools.cache
def _defines(cls: type, name: str) -> bool:
    """Whether instances of *cls* have the attribute *name* (a pydantic field, a dataclass field or a class attribute)."""
    if name in getattr(cls, "model_fields", {}):
        return True
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    return hasattr(cls, name)


def optional(obj: object, name: str, default: Any = None) -> Any:
    """``getattr(obj, name, default)``, without raising and catching an AttributeError per call
    when the class does not have *name*."""
    return getattr(obj, name, default) if _defines(type(obj), name) else default


@functools.cache
def _copy_plan(cls: type) -> tuple[str, ...] | None:
    """The fields to copy to rename an instance of *cls*; None when only ``dataclasses.replace`` is right."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields) or "name" not in {f.name for f in fields}:
        return None
    return tuple(f.name for f in fields if f.name != "name")


def renamed(point: P, name: str) -> P:
    """``dataclasses.replace(point, name=name)``, by copying the fields where that is the same."""
    cls = type(point)
    plan = _copy_plan(cls)
    if plan is None:
        return dataclasses.replace(point, name=name)  # type: ignore[type-var]
    new = object.__new__(cls)
    setattr_ = object.__setattr__
    for f in plan:
        setattr_(new, f, getattr(point, f))
    setattr_(new, "name", name)
    return new


def renamed_points(device: str, tags: Sequence[Any], points: Sequence[P]) -> list[P]:
    """Each point named by its registry key (``<device>.<tag>``), so the driver's samples are published as they are."""
    return [renamed(p, tag_key(device, tag.name)) for tag, p in zip(tags, points, strict=True)]


def device_tag_infos(dev: Any, points: Sequence[Any], intervals: Sequence[float]) -> list[TagInfo]:
    """The registry entries of *dev*'s tags (*points* renamed by ``renamed_points``, *intervals*
    its ``poll_intervals()``)."""
    subscription = optional(dev, "mode") == "subscription"  # an upstream OPC UA server's subscription
    parents: dict[str | None, tuple[str, ...]] = {}
    out = []
    for tag, point, interval in zip(dev.tags, points, intervals, strict=True):
        folder, leaf = split_tag(tag.name)
        parent = parents.get(folder)
        if parent is None:
            parent = parents[folder] = device_path(dev.name) if folder is None else unit_path(dev.name, folder)
        # how often the value can change at most: an upstream server's sampling interval, else the poll interval
        subscribed = subscription and _defines(type(point), "sampling_interval_s")
        states = optional(tag, "states")
        out.append(
            TagInfo(
                point.name,
                (*parent, leaf),
                point.value_type,
                tag.units,
                tag.low,
                tag.high,
                tag.description,
                tag.writable,
                device=dev.name,
                array=optional(point, "array", False),
                sampling_interval_s=point.sampling_interval_s if subscribed else interval,
                states=tuple(sorted(states.items())) if states else None,
            )
        )
    return out
