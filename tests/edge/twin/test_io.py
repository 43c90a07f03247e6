"""Batched registry reads and the fast sample constructor of the twin."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.io import SAMPLE_FIELDS, gather, held_values, sample


def test_fast_sample_equals_the_dataclass_and_tracks_its_fields() -> None:
    now = utcnow()
    assert sample("a.b", 1.5, Status.Good, now, now) == TagSample("a.b", 1.5, Status.Good, now, now)
    assert tuple(f.name for f in dataclasses.fields(TagSample)) == SAMPLE_FIELDS
    assert not hasattr(TagSample, "__post_init__")  # a validation step would be skipped by sample()


def _registry(n: int) -> TagRegistry:
    reg = TagRegistry()
    for i in range(n):
        reg.add(TagInfo(f"d.t{i}", ("Devices", "d", f"t{i}"), device="d"))
    return reg


def test_gather_marks_only_new_usable_measurements_fresh() -> None:
    reg = _registry(4)
    t = utcnow()
    reg.publish([
        TagSample("d.t0", 1.0, Status.Good, t, t),
        TagSample("d.t1", 2.0, Status.UncertainLastUsableValue, t, t),
        TagSample("d.t2", None, Status.BadNoCommunication, t, t),
    ])  # fmt: skip
    last: list = [None] * 4
    g = gather(reg, [f"d.t{i}" for i in range(4)], last)
    assert g.fresh.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(g.value[:2], [1.0, 2.0])
    assert np.isnan(g.value[2:]).all() and last[:2] == [t, t]
    again = gather(reg, [f"d.t{i}" for i in range(4)], last)
    assert not again.fresh.any()  # same source times: not fed twice
    reg.mark_stale(["d.t0"])
    t2 = t + timedelta(seconds=1)
    reg.publish([TagSample("d.t1", 3.0, Status.Good, t2, t2)])
    g = gather(reg, [f"d.t{i}" for i in range(4)], last)
    assert g.fresh.tolist() == [False, True, False, False]  # a stale copy is not a measurement


def test_held_values_hide_bad_but_keep_uncertain() -> None:
    reg = _registry(3)
    t = utcnow()
    reg.publish([TagSample("d.t0", 5.0, Status.Good, t, t), TagSample("d.t1", 6.0, Status.UncertainLastUsableValue, t, t)])
    value, status = held_values(reg, ["d.t0", "d.t1", "d.t2"])
    assert value[:2].tolist() == [5.0, 6.0] and np.isnan(value[2])
    assert status.tolist() == [Status.Good, Status.UncertainLastUsableValue, Status.BadWaitingForInitialData]
