"""Cross-reference checks of a gateway config: what no single section can check on its own.

Unique names (devices, tags, assets, signals, users), names the OPC UA model reserves, resources
only one device may use, asset signals and model inputs that name numeric device tags, and the
periods of identified signals. Each check adds located problems to the loader's collector.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.config.loader import _Collector
    from edge.config.models import OpcUaSection

NUMERIC_TYPES = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"})


def _duplicates(c: _Collector, named: list[tuple[str, Any]], what: str) -> None:
    seen: dict[str, str] = {}
    for prefix, item in named:
        if item.name in seen:
            c.add(f"{prefix}.name", f"duplicate {what} name {item.name!r} (first at {seen[item.name]})")
        else:
            seen[item.name] = prefix


def _check_devices(c: _Collector, devices: list[tuple[str, Any]]) -> None:
    _duplicates(c, devices, "device")
    for prefix, dev in devices:
        _duplicates(c, [(f"{prefix}.tags[{i}]", t) for i, t in enumerate(dev.tags)], "tag")


def _check_exclusive(c: _Collector, devices: list[tuple[str, Any]]) -> None:
    """Two devices may not claim the same exclusive resource (for Modbus RTU: one device per serial bus)."""
    claimed: dict[str, str] = {}
    for prefix, dev in devices:
        res = dev.exclusive_resource()
        if res is None:
            continue
        if res.what in claimed:
            hint = f" ({res.hint})" if res.hint else ""
            c.add(f"{prefix}.{res.key}", f"{res.what} is already used by {claimed[res.what]}{hint}")
        claimed.setdefault(res.what, f"{prefix} ({dev.name})")


def _check_assets(c: _Collector, devices: list[tuple[str, Any]], assets: list[tuple[str, Any]], broken: frozenset[str] = frozenset()) -> None:
    """Asset names and signals. A signal of a device in *broken* (one whose own section has errors,
    already listed) is not reported again as an unknown tag."""
    _duplicates(c, assets, "asset")
    device_names = {d.name for _, d in devices}
    tags = {f"{d.name}.{t.name}": t for _, d in devices for t in d.tags}
    for prefix, asset in assets:
        if asset.name in device_names:
            c.add(f"{prefix}.name", f"asset name {asset.name!r} is also a device name")
        _duplicates(c, [(f"{prefix}.signals[{i}]", s) for i, s in enumerate(asset.signals)], "signal")
        for i, sig in enumerate(asset.signals):
            path = f"{prefix}.signals[{i}].tag"
            tag = tags.get(sig.tag)
            if tag is None and sig.tag.partition(".")[0] in broken:
                continue
            if tag is None:
                _unknown_tag(c, path, sig.tag, tags)
            elif not _is_numeric(tag):
                c.add(path, f"tag {sig.tag!r} has type {_type_text(tag)}; a twin signal needs a numeric tag")
            for k, rel in enumerate(sig.related):  # sensor validation: the tags this signal must agree with
                _check_other_tag(c, f"{prefix}.signals[{i}].related[{k}]", rel, sig.tag, tags, broken, "be related")
            for k, term in enumerate(sig.balance_terms):  # sensor validation: the tags that explain this signal's rate
                for ref in (t for t in term[:2] if t is not None):
                    _check_other_tag(c, f"{prefix}.signals[{i}].explained_by[{k}]", ref, sig.tag, tags, broken, "explain the signal")
        _check_identified(c, prefix, asset, tags, broken)


def _check_other_tag(c: _Collector, path: str, ref: str, own: str, tags: Mapping[str, Any], broken: frozenset[str], role: str) -> None:
    """*ref* at *path* must be a known numeric tag other than the signal's own (*own*)."""
    tag = tags.get(ref)
    if tag is None and ref.partition(".")[0] in broken:
        return
    if tag is None:
        _unknown_tag(c, path, ref, tags)
    elif not _is_numeric(tag) or ref == own:
        c.add(path, f"tag {ref!r} cannot {role}: it must be a numeric tag other than the signal's own")


def _unknown_tag(c: _Collector, path: str, ref: str, tags: Mapping[str, Any]) -> None:
    """Report *ref* at *path* as an unknown tag, with up to three close tag names."""
    close = difflib.get_close_matches(ref, list(tags), n=3)
    c.add(path, f"unknown tag {ref!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))


def _is_numeric(tag: Any) -> bool:
    """A tag a twin can read: a numeric type, not an array."""
    return tag.type in NUMERIC_TYPES and not getattr(tag, "array", False)


def _check_identified(c: _Collector, prefix: str, asset: Any, tags: Mapping[str, Any], broken: frozenset[str] = frozenset()) -> None:
    """Identified signals: a known numeric input tag, periods that fit the tick, one per asset."""
    identified = [(i, s) for i, s in enumerate(asset.signals) if s.input is not None]
    for i, _ in identified[1:]:
        c.add(f"{prefix}.signals[{i}].input", f"asset {asset.name!r} already identifies signal {identified[0][1].name!r}; one identified signal per asset")
    for i, sig in identified:
        path = f"{prefix}.signals[{i}]"
        tag = tags.get(sig.input)
        if tag is None and sig.input.partition(".")[0] in broken:
            pass
        elif tag is None:
            _unknown_tag(c, f"{path}.input", sig.input, tags)
        elif not _is_numeric(tag):
            c.add(f"{path}.input", f"tag {sig.input!r} has type {_type_text(tag)}; a model input needs a numeric tag")
        period = sig.model_period_s if sig.model_period_s is not None else asset.tick_s
        ratio = period / asset.tick_s
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio) or round(ratio) < 1:
            c.add(f"{path}.model_period_s", f"must be a whole multiple of the asset's tick_s ({asset.tick_s:g} s), got {period:g}")
        steps = sig.dead_time_s / period
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            c.add(f"{path}.dead_time_s", f"must be a whole multiple of model_period_s ({period:g} s), got {sig.dead_time_s:g}")
        elif sig.input_model == "fopdt" and round(steps) > 255:
            c.add(f"{path}.dead_time_s", f"at most 255 model periods of dead time, got {round(steps)}")
        if sig.max_dead_time_s is not None:
            top = sig.max_dead_time_s / period
            if sig.input_model != "fopdt":
                c.add(f"{path}.max_dead_time_s", 'only for input_model = "fopdt"')
            elif abs(top - round(top)) > 1e-9 * max(1.0, top):
                c.add(f"{path}.max_dead_time_s", f"must be a whole multiple of model_period_s ({period:g} s), got {sig.max_dead_time_s:g}")
            elif sig.max_dead_time_s < sig.dead_time_s:
                c.add(f"{path}.max_dead_time_s", f"must be >= dead_time_s ({sig.dead_time_s:g} s)")
            elif round(top) > 255 or round(top) - round(steps) + 1 > 32:
                c.add(
                    f"{path}.max_dead_time_s",
                    f"at most 255 model periods and 32 candidate dead times, got {round(top) - round(steps) + 1} candidates up to {round(top)} periods",
                )


def _check_opcua(c: _Collector, opcua: OpcUaSection | None) -> None:
    if opcua is not None:
        _duplicates(c, [(f"opcua.users[{i}]", u) for i, u in enumerate(opcua.users)], "user")


def _type_text(tag: Any) -> str:
    return f"{tag.type!r} (an array)" if getattr(tag, "array", False) else repr(tag.type)
