"""Session churn against a server under the GC policy: the pauses are exported, memory stays bounded.

Real asyncua clients connect, subscribe to every tag, receive notifications and disconnect, round
after round, while values change every 50 ms. asyncua leaves each closed subscription in reference
cycles (the subscription, its monitored-item service, their queued notifications); once frozen by
the policy they are never collected, so without sweeps the frozen set grows with every session
(the second test shows it does). With sweeps it stays bounded. The metric families are read from
the real collector (``edge.metrics``) in the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from types import SimpleNamespace

import pytest
from asyncua import Client, ua
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from drivers.sample import Status, TagSample, utcnow
from edge.core.gcpolicy import GcSettings, serving_gc
from edge.core.registry import TagInfo, TagRegistry
from edge.metrics.collector import GatewayCollector
from edge.metrics.endpoint import metrics_registry
from edge.metrics.sources import gc_source
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:gc-churn"
TAGS = 300
ROUNDS = 8


def _registry() -> TagRegistry:
    reg = TagRegistry()
    for i in range(TAGS):
        reg.add(TagInfo(f"d.t{i}", ("Devices", "d", f"t{i}"), "float64", device="d"))
    return reg


async def _produce(reg: TagRegistry) -> None:
    value = 0.0
    while True:
        value += 1.0
        now = utcnow()
        reg.publish([TagSample(f"d.t{i}", value + i, Status.Good, now, now) for i in range(TAGS)])
        await asyncio.sleep(0.05)


class _Handler:
    def __init__(self) -> None:
        self.changes = 0

    def datachange_notification(self, node: object, val: object, data: object) -> None:
        self.changes += 1


async def _session(url: str) -> int:
    handler = _Handler()
    async with Client(url, timeout=10) as client:
        ns = await client.get_namespace_index(NS)
        sub = await client.create_subscription(50, handler)
        await sub.subscribe_data_change([client.get_node(ua.NodeId(f"gw/Devices/d/t{i}", ns)) for i in range(TAGS)])
        for _ in range(100):  # until the values flow (at most 5 s)
            if handler.changes >= TAGS:
                break
            await asyncio.sleep(0.05)
    return handler.changes


def _tracked() -> int:
    """Objects the collector knows of in this process, frozen or not, after a young collection."""
    gc.collect(1)
    return gc.get_freeze_count() + sum(len(gc.get_objects(generation=g)) for g in range(3))


async def _churn(url: str, reg: TagRegistry, settings: GcSettings) -> tuple[list[int], dict]:
    counts = []
    before = gc.get_threshold()
    producer = asyncio.create_task(_produce(reg), name="test:produce")
    try:
        async with serving_gc(settings) as policy:
            for _ in range(ROUNDS):
                assert await _session(url) >= TAGS
                await asyncio.sleep(3 * settings.check_s)  # the loop settles what the session left
                counts.append(_tracked())
            collector = GatewayCollector()
            collector.register("gc", gc_source(SimpleNamespace(gc=policy)))
            text = generate_latest(metrics_registry(collector)).decode()
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        gc.set_threshold(*before)
        gc.unfreeze()
    families = {f.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples} for f in text_string_to_metric_families(text)}
    return counts, families


@pytest.fixture
async def served(free_port):
    reg = _registry()
    url = f"opc.tcp://127.0.0.1:{free_port}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw"):
        yield url, reg


@pytest.mark.slow  # about 10 s: eight sessions of 300 monitored items
async def test_churned_sessions_keep_memory_bounded_and_the_pauses_exported(served) -> None:
    url, reg = served
    settings = GcSettings(check_s=0.05, freeze_at=1, collect_limit=1, sweep_check_s=0.05, sweep_growth=1e-9, sweep_min_blocks=200, sweep_min_interval_s=0.0)
    counts, fams = await _churn(url, reg, settings)
    # every round's leftovers (some 3,400 objects in cycles) are swept; what stays is about 90
    # objects a round (closures and timer handles still pending in asyncua; the first rounds warm caches up)
    per_round = (max(counts[2:]) - counts[2]) / (ROUNDS - 3)
    assert per_round < TAGS / 2, counts
    sweeps = fams["edgetwin_gc_sweeps"][("edgetwin_gc_sweeps_total", ())]
    assert sweeps >= ROUNDS - 2
    full = fams["edgetwin_gc_full_pause_seconds"]
    assert full[("edgetwin_gc_full_pause_seconds_count", ())] >= sweeps  # each sweep is a full pass, and counted
    assert full[("edgetwin_gc_full_pause_seconds_sum", ())] > 0
    young = fams["edgetwin_gc_collections"][("edgetwin_gc_collections_total", (("generation", "0"),))]
    assert young > 0
    assert ("edgetwin_gc_full_pauses_over_budget_total", ()) in fams["edgetwin_gc_full_pauses_over_budget"]
    assert fams["edgetwin_gc_frozen_objects"][("edgetwin_gc_frozen_objects", ())] > 0


@pytest.mark.slow  # about 10 s
async def test_without_sweeps_closed_sessions_stay_frozen(served) -> None:
    """The leak the sweep is for: the same churn with sweeps off grows the frozen set every round."""
    url, reg = served
    settings = GcSettings(check_s=0.05, freeze_at=1, collect_limit=1, sweep_check_s=0.05, sweep_min_interval_s=1e9)
    counts, fams = await _churn(url, reg, settings)
    assert fams["edgetwin_gc_sweeps"][("edgetwin_gc_sweeps_total", ())] == 0
    per_round = (counts[-1] - counts[2]) / (ROUNDS - 3)
    assert per_round > TAGS, counts  # at least one object per monitored item stays behind, every session
