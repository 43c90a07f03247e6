"""The config hash a saved twin state is valid for (pure: no I/O).

A saved state means something only for the config that produced it: a different noise level,
model structure, model period, set of signals, or a tag read from another register or with
another scale would make the saved filters and models wrong. So each state file carries
``asset_config_hash``: SHA-256 of the canonical JSON (sorted keys, no spaces) of

* the asset's section (``[[assets]]`` with its signals and detector), without the keys in
  ``IGNORED_KEYS``, which only change how outputs are described, kept in history or alarmed;
* for every device tag the asset reads (each signal's ``tag`` and ``input``): the driver kind and
  the tag's resolved point (address, type, byte order, unit, scaling, limits, units: what a value
  of that tag means), without its name and writability.

A restored state whose hash differs from the running config's is discarded (``config_changed``).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from edge.config import AssetConfig, GatewayConfig
from edge.config.models import ValidationConfig
from edge.core.names import tag_key

# Keys that do not change what the saved state means: editing them keeps the learnt state.
IGNORED_KEYS: Mapping[str, frozenset[str]] = {
    "asset": frozenset({"description", "historize", "alarm_severity", "alarm_threshold"}),
    "signal": frozenset({"historize", "units"}),
    "detector": frozenset({"on", "release", "k", "window", "peak_release"}),  # the alarm policy; the fitted model stays valid
    "point": frozenset({"name", "writable"}),
}


def plain(obj: Any) -> Any:
    """*obj* as JSON-ready data: models and dataclasses as dicts, enums by value, tuples as lists."""
    if hasattr(obj, "model_dump"):
        return plain(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return plain(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return repr(obj)  # bytes identifiers and the like: deterministic text


def canonical_json(obj: Any) -> str:
    """One text per value: sorted keys, no whitespace, ASCII."""
    return json.dumps(plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def _without(d: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def asset_section(asset: AssetConfig) -> dict[str, Any]:
    """The asset's config as hashed: its section without ``IGNORED_KEYS``."""
    d = _without(plain(asset), IGNORED_KEYS["asset"])
    d["signals"] = [_without(s, IGNORED_KEYS["signal"]) for s in d["signals"]]
    if d.get("detector") is not None:
        d["detector"] = _without(d["detector"], IGNORED_KEYS["detector"])
    # sensor validation: absent when unused, so configs without it keep the hashes they had
    if d.get("validation") is None:
        d.pop("validation", None)
    elif d["validation"].get("balance_sigma") == ValidationConfig.model_fields["balance_sigma"].default:
        del d["validation"]["balance_sigma"]
    for s in d["signals"]:
        for key in ("related", "explained_by"):
            if not s.get(key):
                s.pop(key, None)
    return d


def tag_meaning(driver: str, point: Any) -> dict[str, Any]:
    """What a value of one device tag means: the driver kind and the resolved point."""
    p = plain(point)
    return {"driver": driver, "point": _without(p, IGNORED_KEYS["point"]) if isinstance(p, dict) else p}


def tags_read(asset: AssetConfig) -> list[str]:
    """Registry keys of the device tags the asset's twin reads, sorted, each once."""
    return sorted(
        {s.tag for s in asset.signals}
        | {s.input for s in asset.signals if s.input is not None}
        | {t for s in asset.signals for t in s.related}
        | {t for s in asset.signals for term in s.balance_terms for t in term[:2] if t is not None}
    )


def asset_config_hash(asset: AssetConfig, tags: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the asset section and ``tags`` (registry key -> ``tag_meaning``) of the tags it reads."""
    doc = {"asset": asset_section(asset), "tags": {k: tags.get(k) for k in tags_read(asset)}}
    return "sha256:" + hashlib.sha256(canonical_json(doc).encode("ascii")).hexdigest()


def asset_hashes(cfg: GatewayConfig) -> dict[str, str]:
    """``asset_config_hash`` of every asset of *cfg*, by asset name."""
    wanted = {k for a in cfg.assets for k in tags_read(a)}
    meanings: dict[str, Any] = {}
    for dev in cfg.devices:
        keys = [tag_key(dev.name, t.name) for t in dev.tags]
        if wanted.isdisjoint(keys):
            continue
        for key, point in zip(keys, dev.points(), strict=True):
            if key in wanted:
                meanings[key] = tag_meaning(dev.driver, point)
    return {a.name: asset_config_hash(a, meanings) for a in cfg.assets}
