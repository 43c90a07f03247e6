"""The garbage-collection policy: its decisions as tables, its statistics, and the real collector.

The last tests run CPython's collector in this process: they restore the thresholds (``uninstall``)
and unfreeze what they froze.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from edge.core.gcpolicy import Action, GcPolicy, GcSettings, GcStats, decide, gateway_gc, paused_gc, serving_gc, sweep_due

S = GcSettings(freeze_at=100, collect_limit=1_000, sweep_growth=0.5, sweep_min_blocks=1_000, sweep_min_interval_s=60.0)


@pytest.mark.parametrize(
    ("unfrozen", "action"),
    [
        (0, Action.NOTHING),
        (99, Action.NOTHING),
        (100, Action.COLLECT_AND_FREEZE),  # from freeze_at on
        (1_000, Action.COLLECT_AND_FREEZE),  # up to collect_limit a full pass is short
        (1_001, Action.FREEZE),  # beyond it: freeze without a full pass
        (10_000_000, Action.FREEZE),
    ],
)
def test_decide(unfrozen: int, action: Action) -> None:
    assert decide(unfrozen, S) is action


@pytest.mark.parametrize(
    ("frozen", "after_last", "since_s", "due"),
    [
        (10_000, 10_000, 3_600.0, False),  # no growth
        (14_999, 10_000, 3_600.0, False),  # under half as much again
        (15_000, 10_000, 3_600.0, True),  # half as much again, an hour after the last sweep
        (15_000, 10_000, 59.9, False),  # ... but never twice within the minimum interval
        (15_000, 10_000, 60.0, True),
        (1_999, 1_000, 3_600.0, False),  # a small heap: at least sweep_min_blocks of growth
        (2_000, 1_000, 3_600.0, True),
        (5_000, 10_000, 3_600.0, False),  # shrunk (sessions closed): nothing leaked
    ],
)
def test_sweep_due(frozen: int, after_last: int, since_s: float, due: bool) -> None:
    assert sweep_due(frozen, after_last, since_s, S) is due


@given(st.integers(0, 10**8), st.integers(0, 10**8), st.floats(0, 10**6))
def test_a_sweep_needs_growth_and_time(frozen: int, after_last: int, since_s: float) -> None:
    if sweep_due(frozen, after_last, since_s, S):
        assert frozen - after_last >= S.sweep_min_blocks and since_s >= S.sweep_min_interval_s


@pytest.mark.parametrize(
    "bad",
    [
        {"thresholds": (0, 10, 10)},
        {"freeze_at": 0},
        {"freeze_at": 2_000, "collect_limit": 1_000},
        {"check_s": 0.0},
        {"sweep_check_s": -1.0},
        {"sweep_growth": 0.0},
    ],
)
def test_settings_refuse_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        GcSettings(**bad)


def test_stats_count_pauses_per_generation_and_the_full_ones_over_budget() -> None:
    stats = GcStats(pause_budget_s=0.020)
    assert stats.record(0, 0.001, 5) is False
    assert stats.record(1, 0.030, 0) is False  # a young pause is never "over budget"
    assert stats.record(2, 0.010, 7) is False
    assert stats.record(2, 0.025, 0) is True  # the first full pause over the budget: log it
    assert stats.record(2, 0.400, 0) is False  # the rest are counted only
    assert stats.collections == [1, 1, 3]
    assert stats.collected == [5, 0, 7]
    assert stats.longest_s == [0.001, 0.030, 0.400]
    assert stats.pause_s[2] == pytest.approx(0.435)
    assert stats.over_budget == 2
    assert stats.full_pauses.count == 3
    assert dict(stats.full_pauses.cumulative())[0.02] == 1


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def restored_gc():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_install_freezes_sets_thresholds_and_records(restored_gc) -> None:
    before = gc.get_threshold()
    policy = GcPolicy(GcSettings(thresholds=(1_500, 7, 999_999)))
    policy.install()
    try:
        assert gc.get_threshold() == (1_500, 7, 999_999)
        assert policy.stats.frozen > 0 and policy.stats.frozen == gc.get_freeze_count() and policy.stats.blocks > 0
        gc.collect(2)
        assert policy.stats.collections[2] == 1 and policy.stats.full_pauses.count == 1
    finally:
        policy.uninstall()
    assert gc.get_threshold() == before and not policy.installed
    gc.collect(2)
    assert policy.stats.collections[2] == 1  # no longer recording


def test_a_step_collects_a_small_unfrozen_set_and_freezes_the_survivors(restored_gc) -> None:
    policy = GcPolicy(GcSettings(freeze_at=1, collect_limit=10_000_000))
    policy.install()
    try:
        keep = [[i] for i in range(200)]  # alive: frozen by the step
        for _ in range(50):
            _Cycle()  # garbage: collected by the step's full pass, not frozen
        frozen = gc.get_freeze_count()
        assert policy.step() is Action.COLLECT_AND_FREEZE
        assert policy.stats.collected[2] >= 50
        assert gc.get_freeze_count() >= frozen + len(keep)
        assert len(gc.get_objects(generation=2)) == 0
    finally:
        policy.uninstall()


def test_a_sweep_frees_cycles_that_became_garbage_after_they_were_frozen(restored_gc) -> None:
    """Frozen objects are never collected: what leaks that way is freed by the sweep."""
    clock = [0.0]
    settings = GcSettings(freeze_at=1, collect_limit=1, sweep_check_s=1.0, sweep_growth=0.001, sweep_min_blocks=1_000, sweep_min_interval_s=10.0)
    policy = GcPolicy(settings, clock=lambda: clock[0])
    policy.install()
    try:
        installed = gc.get_freeze_count()
        leaked = [_Cycle() for _ in range(5_000)]
        assert policy.step() is Action.FREEZE  # more than collect_limit: frozen without a full pass
        del leaked  # unreachable cycles, but frozen: no collection frees them now
        gc.collect()
        grown = gc.get_freeze_count()
        assert grown >= installed + 5_000
        clock[0] = 5.0
        policy.step()
        assert policy.stats.sweeps == 0  # too soon after the install
        clock[0] = 11.0
        with capture_logs() as logs:
            policy.step()
        assert policy.stats.sweeps == 1
        assert gc.get_freeze_count() <= grown - 5_000
        sweep = next(e for e in logs if e["event"] == "gc_sweep")
        assert sweep["unreachable"] >= 5_000 and sweep["frozen"] == policy.stats.frozen
        assert sweep["blocks_after"] < sweep["blocks_before"]  # the memory of the cycles is back
    finally:
        policy.uninstall()


async def test_serving_gc_runs_the_loop_as_a_named_task_and_restores_the_thresholds(restored_gc) -> None:
    import asyncio

    before = gc.get_threshold()
    async with serving_gc(GcSettings(check_s=0.01, freeze_at=1)) as policy:
        assert any(t.get_name() == "gc:policy" for t in asyncio.all_tasks())
        await asyncio.sleep(0.1)
        assert policy.stats.freezes > 1  # install, then the loop's steps
    assert gc.get_threshold() == before
    assert not any(t.get_name() == "gc:policy" and not t.done() for t in asyncio.all_tasks())


async def test_the_gateway_holds_full_collections_off_from_start_up_and_restores_on_exit(restored_gc) -> None:
    before = gc.get_threshold()
    settings = GcSettings(thresholds=(1_234, 9, 777_777))
    async with gateway_gc(settings) as policy:
        assert gc.get_threshold() == (1_234, 9, 777_777)  # held from the start, before anything is frozen
        assert not policy.installed and policy.stats.freezes == 0
        policy.serve()
        assert policy.installed and policy.stats.freezes == 1
    assert gc.get_threshold() == before and not policy.installed


async def test_a_start_up_that_fails_restores_the_thresholds(restored_gc) -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        async with gateway_gc(GcSettings(thresholds=(1_234, 9, 777_777))):
            raise RuntimeError("the server port is busy")
    assert gc.get_threshold() == before


def test_paused_gc_restores_the_state_it_found() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()
