"""The bus's plan cache: one plan per points tuple, found again by identity; points read alone after a split."""

from __future__ import annotations

from drivers.modbus import make_point
from drivers.modbus.plan_cache import PlanCache


def _points(*addresses: int) -> tuple:
    return tuple(make_point(name=f"p{a}", address=f"hr:{a}", type="uint16", unit_id=1) for a in addresses)


def test_the_same_tuple_gets_the_same_plan_object_and_equal_tuples_share_it() -> None:
    cache = PlanCache(max_registers=125, max_bits=2000, max_gap=10)
    key = _points(0, 1, 2)
    first = cache.plan(key)
    assert cache.plan(key) is first
    assert cache.plan(tuple(key)) is first  # an equal tuple finds the cached plan too
    requests, planned = first
    assert [(r.start, r.count) for r in requests] == [(0, 3)]
    assert planned == key


def test_points_of_a_refused_block_are_read_alone_from_then_on() -> None:
    cache = PlanCache(max_registers=125, max_bits=2000, max_gap=10)
    key = _points(0, 1, 2, 50)
    (block, _), _ = cache.plan(key)
    cache.read_alone(block.points)
    requests, _ = cache.plan(key)
    assert [(r.start, r.count) for r in requests] == [(0, 1), (1, 1), (2, 1), (50, 1)]


def test_a_full_cache_starts_over_rather_than_growing() -> None:
    cache = PlanCache(max_registers=125, max_bits=2000, max_gap=10, size=2)
    a, b, c = _points(0), _points(10), _points(20)
    plan_a = cache.plan(a)
    cache.plan(b)
    cache.plan(c)  # third distinct tuple: the cache was full and forgot a and b
    assert cache.plan(a) is not plan_a
    assert cache.plan(a) == plan_a


def test_repeated_point_keeps_one_planned_object_per_position() -> None:
    cache = PlanCache(max_registers=125, max_bits=2000, max_gap=10)
    (p,) = _points(7)
    q = make_point(name="p7", address="hr:7", type="uint16", unit_id=1)  # equal, not identical
    _, planned = cache.plan((p, q))
    assert planned[0] is p and planned[1] is p
