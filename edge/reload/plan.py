"""What a reload changes: a pure diff of two validated gateway configs.

``plan_reload(old, new)`` compares canonical dumps (pydantic ``model_dump``) keyed by name, so a
config whose devices, tags, assets or signals were only reordered is "no change":

* devices: added (start), removed (stop), changed in any setting or tag (restart; a tag's
  ``historize`` and ``alarm_*`` keys are the northbound side's and restart nothing); a change of
  ``gateway.backoff_initial_s`` / ``backoff_max_s`` restarts every device (their runners hold it);
* tags (registry keys ``<device>.<tag>``): added, removed, changed;
* assets: added, removed, changed (in their own settings, or through a tag one of their signals
  reads or takes as input, other than in its northbound keys: the twin derives units, ranges and
  limits from it);
* ``needs_restart``: the keys that a running gateway cannot change (``RESTART_ONLY``: the endpoint,
  namespace, gateway name, state folder, log level, every ``[opcua]`` key (security policies,
  users, certificates), the ``[history]`` and ``[simulator]`` sections, and ``historize`` while
  no history database is open). ``effective_config`` keeps their running values, so the plan of
  the next reload compares against what actually runs.

Also here: ``located`` splits a ``ConfigError`` line (``file:line: key.path: message``) into its
parts for the ``reload_rejected`` log events. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from edge.config.nodes import history_enabled
from edge.core import names

# gateway keys that take effect only at start (the server's identity and where its state lives)
RESTART_GATEWAY = ("name", "endpoint", "namespace_uri", "state_dir", "log_level")
# gateway keys every device runner holds: a change restarts every device
DEVICE_GATEWAY = ("backoff_initial_s", "backoff_max_s")
# whole sections that take effect only at start
RESTART_SECTIONS = ("opcua", "history", "simulator")
# tag keys only the northbound side reads (history, limit alarms): a change neither restarts the
# device nor the twins that read the tag
NORTHBOUND_TAG_KEYS = frozenset({"historize", "alarm_high", "alarm_low", "alarm_deadband", "alarm_severity"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The parts a reload starts, stops or restarts (names and registry keys, sorted)."""

    devices_start: tuple[str, ...] = ()
    devices_stop: tuple[str, ...] = ()
    devices_restart: tuple[str, ...] = ()
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    tags_changed: tuple[str, ...] = ()
    assets_added: tuple[str, ...] = ()
    assets_removed: tuple[str, ...] = ()
    assets_changed: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()
    shutdown_timeout_changed: bool = False

    @property
    def live_changes(self) -> bool:
        """Whether anything is applied to the running gateway."""
        parts = (self.devices_start, self.devices_stop, self.devices_restart, self.tags_added, self.tags_removed, self.tags_changed)
        return any(parts) or any((self.assets_added, self.assets_removed, self.assets_changed, self.shutdown_timeout_changed))

    def summary(self) -> dict[str, list[str]]:
        """The non-empty lists, for log lines and the reload status file."""
        return {k: list(v) for k, v in asdict(self).items() if isinstance(v, tuple) and v}


def plan_reload(old: Any, new: Any, *, history_running: bool | None = None) -> ReloadPlan:
    """What changes from the running config *old* to the validated config *new*.

    *history_running*: whether the gateway has a history database open (default: whether *old*
    historizes anything); without one, ``historize = true`` anywhere in *new* needs a restart.
    """
    if history_running is None:
        history_running = history_enabled(old.devices, old.assets)
    restart = _restart_keys(old, new, history_running)
    backoff = any(getattr(old.gateway, k) != getattr(new.gateway, k) for k in DEVICE_GATEWAY)

    old_dev, new_dev = {d.name: d for d in old.devices}, {d.name: d for d in new.devices}
    start = sorted(new_dev.keys() - old_dev.keys())
    stop = sorted(old_dev.keys() - new_dev.keys())
    both = sorted(old_dev.keys() & new_dev.keys())
    restart_dev = [n for n in both if backoff or _device_dump(old_dev[n]) != _device_dump(new_dev[n])]

    added, removed, changed = [], [], []
    for n in start:
        added += [names.tag_key(n, t.name) for t in new_dev[n].tags]
    for n in stop:
        removed += [names.tag_key(n, t.name) for t in old_dev[n].tags]
    for n in both:
        a, b = _by_name(old_dev[n].tags), _by_name(new_dev[n].tags)
        added += [names.tag_key(n, t) for t in sorted(b.keys() - a.keys())]
        removed += [names.tag_key(n, t) for t in sorted(a.keys() - b.keys())]
        changed += [names.tag_key(n, t) for t in sorted(a.keys() & b.keys()) if _dump(a[t]) != _dump(b[t])]

    touched = set(removed) | {k for k in changed if _core(_tag(old_dev, k)) != _core(_tag(new_dev, k))}
    old_assets, new_assets = {a.name: a for a in old.assets}, {a.name: a for a in new.assets}
    assets_changed = [
        n
        for n in sorted(old_assets.keys() & new_assets.keys())
        if _asset_dump(old_assets[n]) != _asset_dump(new_assets[n]) or touched & asset_tags(new_assets[n])
    ]
    return ReloadPlan(
        devices_start=tuple(start),
        devices_stop=tuple(stop),
        devices_restart=tuple(restart_dev),
        tags_added=tuple(sorted(added)),
        tags_removed=tuple(sorted(removed)),
        tags_changed=tuple(sorted(changed)),
        assets_added=tuple(sorted(new_assets.keys() - old_assets.keys())),
        assets_removed=tuple(sorted(old_assets.keys() - new_assets.keys())),
        assets_changed=tuple(assets_changed),
        needs_restart=tuple(restart),
        shutdown_timeout_changed=old.gateway.shutdown_timeout_s != new.gateway.shutdown_timeout_s,
    )


def effective_config(old: Any, new: Any) -> Any:
    """*new* as the running gateway applies it: the keys that need a restart keep *old*'s values."""
    gateway = new.gateway.model_copy(update={k: getattr(old.gateway, k) for k in RESTART_GATEWAY})
    return new.model_copy(update={"gateway": gateway, **{s: getattr(old, s) for s in RESTART_SECTIONS}})


_LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+|\?): (?P<key>[^\s:]+): (?P<message>.*)$", re.DOTALL)
_FILE_ONLY = re.compile(r"^(?P<file>.+?):(?:(?P<line>\d+|\?):)? (?P<message>.*)$", re.DOTALL)


def located(problem: str) -> dict[str, Any]:
    """One ``ConfigError`` line as ``{file, line, key, message}`` (line and key None when the line
    has none, e.g. a TOML syntax error or an unreadable file)."""
    m = _LOCATED.match(problem)
    if m is None:
        m = _FILE_ONLY.match(problem)
        if m is None:
            return {"file": None, "line": None, "key": None, "message": problem}
        line = m.group("line")
        return {"file": m.group("file"), "line": int(line) if line and line.isdigit() else None, "key": None, "message": m.group("message")}
    line = m.group("line")
    return {"file": m.group("file"), "line": int(line) if line.isdigit() else None, "key": m.group("key"), "message": m.group("message")}


# -- canonical dumps ---------------------------------------------------------------------------
def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def _by_name(items: Iterable[Any]) -> dict[str, Any]:
    return {i.name: i for i in items}


def _core(tag: Any) -> dict[str, Any]:
    """A tag's dump without the keys only the northbound side reads."""
    return {k: v for k, v in _dump(tag).items() if k not in NORTHBOUND_TAG_KEYS}


def _tag(devices: dict[str, Any], key: str) -> Any:
    device, _, name = key.partition(".")
    return next(t for t in devices[device].tags if t.name == name)


def _device_dump(dev: Any) -> Any:
    """The device's settings with its tags keyed by name (their order is not a change), without
    the tag keys only the northbound side reads."""
    out = _dump(dev)
    out["tags"] = {t.name: _core(t) for t in dev.tags}
    return out


def _asset_dump(asset: Any) -> Any:
    out = _dump(asset)
    out["signals"] = {s.name: _dump(s) for s in asset.signals}
    return out


def asset_tags(asset: Any) -> set[str]:
    """The registry keys of the device tags an asset's signals read or take as input."""
    return {s.tag for s in asset.signals} | {s.input for s in asset.signals if s.input is not None}


def _restart_keys(old: Any, new: Any, history_running: bool) -> list[str]:
    keys = [f"gateway.{k}" for k in RESTART_GATEWAY if getattr(old.gateway, k) != getattr(new.gateway, k)]
    for section in RESTART_SECTIONS:
        a, b = _dump(getattr(old, section)), _dump(getattr(new, section))
        keys += [f"{section}.{k}" for k in a if a[k] != b.get(k)]
    if not history_running:
        keys += _historized(new)
    return keys


def _historized(cfg: Any) -> list[str]:
    """Key paths of ``historize = true`` in *cfg* (history needs a database opened at start)."""
    out = []
    for i, d in enumerate(cfg.devices):
        out += [f"devices[{i}].tags[{j}].historize" for j, t in enumerate(d.tags) if t.historize]
    for i, a in enumerate(cfg.assets):
        if a.historize:
            out.append(f"assets[{i}].historize")
        out += [f"assets[{i}].signals[{j}].historize" for j, s in enumerate(a.signals) if s.historize]
    return out
