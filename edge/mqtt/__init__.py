"""MQTT northbound: a Sparkplug B 3.0 edge node (or plain JSON) fed by the registry; docs/mqtt.md.

Modules: ``settings`` (the ``[mqtt]`` section), ``sparkplug`` (payload schema and value mapping),
``topics``, ``catalog`` (tags -> metrics, aliases, report by exception), ``payloads`` (births,
deaths, data, bdSeq/seq), ``commands`` (NCMD/DCMD), ``buffer`` (store and forward), ``jsonfmt``
(plain JSON), ``stats`` (diagnostics counters) and ``sink`` (the connection and its tasks).
Only ``sink`` does I/O.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge.core.registry import TagRegistry


def mqtt_sink(cfg: Any, registry: TagRegistry, *, write: Any = None, tasks: asyncio.TaskGroup | None = None) -> Any:
    """The ``MqttSink`` of a ``GatewayConfig`` with an ``[mqtt]`` section (enter it with ``async with``).

    It declares its diagnostics tags in *registry* at once, so build it before the OPC UA server.
    """
    from edge.mqtt.sink import MqttSink, deadbands_of  # aiomqtt is imported only when MQTT is configured

    return MqttSink(
        cfg.mqtt,
        registry,
        state_dir=mqtt_state_dir(cfg),
        resolve=cfg.resolve_path,
        write=write,
        deadbands=deadbands_of(cfg),
        tasks=tasks,
    )


def mqtt_state_dir(cfg: Any) -> Any:
    """``<state_dir>/mqtt``: the store-and-forward spool's folder (the one place that names it)."""
    return cfg.state.mqtt_dir
