"""The OPC UA server's extensions a gateway config asks for: history, alarms, asset methods.

``northbound_extensions`` opens what they need (the history database and its writer) and closes it
after the server that uses them: enter it before the ``OpcUaServer`` in the same exit stack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from edge.alarms import OpcUaAlarms, alarm_specs
from edge.history import HistoryRecorder, HistoryStore, history_keys, history_path
from edge.history_server import OpcUaHistory
from edge.methods import AssetMethods, identified_assets
from edge.registry import TagRegistry


@asynccontextmanager
async def northbound_extensions(cfg: Any, registry: TagRegistry, twins: Sequence[Any]) -> AsyncIterator[list[Any]]:
    """The server extensions for *cfg*; the history recorder (if any) runs until this exits,
    and flushes every buffered sample on the way out."""
    extensions: list[Any] = []
    async with AsyncExitStack() as stack:
        keys = history_keys(cfg, registry)
        if keys:
            h = cfg.history
            store = HistoryStore(history_path(cfg), retention_days=h.retention_days, max_db_mb=h.max_db_mb)
            recorder = await stack.enter_async_context(HistoryRecorder(store, registry, keys, flush_interval_s=h.flush_interval_s))
            extensions.append(OpcUaHistory(recorder, max_page=h.max_values_per_read))
        specs = alarm_specs(cfg)
        if specs:
            extensions.append(OpcUaAlarms(specs))
        wanted = set(identified_assets(cfg))
        by_asset = {a.name: runner for runner in twins for a in runner.assets if a.name in wanted}
        if by_asset:
            extensions.append(AssetMethods(by_asset))
        yield extensions
