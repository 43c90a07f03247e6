"""The OPC UA server's extensions a gateway config asks for: history, alarms, asset methods
(plus which registry keys are historized and where the history database lives).

``northbound_extensions`` opens what they need (the history database and its writer) and closes it
after the server that uses them: enter it before the ``OpcUaServer`` in the same exit stack. The
history writer runs in the TaskGroup passed as ``tasks`` (the gateway's), like the server's loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from edge.core import names
from edge.core.registry import TagRegistry
from edge.history.recorder import HistoryRecorder
from edge.history.store import HistoryStore
from edge.opcua.alarms import OpcUaAlarms, alarm_specs
from edge.opcua.history_read import OpcUaHistory
from edge.opcua.methods import AssetMethods, identified_assets
from edge.opcua.pattern_methods import PatternMethods


@asynccontextmanager
async def northbound_extensions(cfg: Any, registry: TagRegistry, twins: Sequence[Any], *, tasks: asyncio.TaskGroup | None = None) -> AsyncIterator[list[Any]]:
    """The server extensions for *cfg*; the history recorder (if any) runs until this exits,
    and flushes every buffered sample on the way out."""
    extensions: list[Any] = []
    async with AsyncExitStack() as stack:
        keys = history_keys(cfg, registry)
        store = None
        if keys:
            h = cfg.history
            store = HistoryStore(history_path(cfg), retention_days=h.retention_days, max_db_mb=h.max_db_mb)
            recorder = await stack.enter_async_context(
                HistoryRecorder(store, registry, keys, flush_interval_s=h.flush_interval_s, diagnostics=True, tasks=tasks)
            )
            extensions.append(OpcUaHistory(recorder, max_page=h.max_values_per_read))
        specs = alarm_specs(cfg)
        if specs:
            extensions.append(OpcUaAlarms(specs))
        wanted = set(identified_assets(cfg))
        by_asset = {a.name: runner for runner in twins for a in runner.assets if a.name in wanted}
        if by_asset:
            extensions.append(AssetMethods(by_asset))
        if any(a.diagnosis is not None for a in cfg.assets):
            extensions.append(PatternMethods(cfg.assets, partial(diagnoser_of, twins), store))
        yield extensions


def diagnoser_of(twins: Sequence[Any], asset: str) -> Any:
    """The live diagnoser of *asset* among *twins* (the gateway's runners, as they are now)."""
    return next((d for t in twins for i, d in t.diagnosers if t.assets[i].name == asset), None)


def history_keys(cfg: Any, registry: TagRegistry) -> list[str]:
    """Registry keys to historize: device tags with ``historize``, every output of a signal with
    ``historize`` (or of an asset with ``historize``), and the asset's own outputs in that case."""
    keys = {names.tag_key(dev.name, tag.name) for dev in cfg.devices for tag in dev.tags if tag.historize}
    prefixes = []
    for asset in cfg.assets:
        if asset.historize:
            prefixes.append(names.asset_key_prefix(asset.name))
        else:
            prefixes.extend(names.signal_key_prefix(asset.name, sig.name) for sig in asset.signals if sig.historize)
    if prefixes:  # arrays (Diagnosis/Contributors) are not kept: history holds one number, text or flag per sample
        keys.update(i.key for i in registry.infos() if i.key.startswith(tuple(prefixes)) and not i.array)
    return sorted(k for k in keys if k in registry)


def history_path(cfg: Any) -> Path:
    """``history.path``, or ``history.sqlite`` in the state directory; relative paths are relative
    to the config file's folder."""
    if cfg.history.path is None:
        return cfg.state.history
    return cfg.resolve_path(cfg.history.path)
