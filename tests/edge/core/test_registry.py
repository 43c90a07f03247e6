"""TagRegistry: initial status, stale rules, Bad never carries a value, fan-out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry


def _registry() -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.a", ("Devices", "plc", "a"), device="plc"))
    reg.add(TagInfo("plc.b", ("Devices", "plc", "b"), device="plc"))
    return reg


def test_a_tag_never_read_is_waiting_for_initial_data() -> None:
    reg = _registry()
    s = reg.latest("plc.a")
    assert s.status == Status.BadWaitingForInitialData and s.value is None


def test_lost_link_keeps_last_value_as_uncertain_with_the_old_source_time() -> None:
    """A lost link keeps the last value but downgrades it to UncertainNoCommunicationLastUsableValue."""
    reg = _registry()
    t0 = utcnow() - timedelta(seconds=5)
    reg.publish([TagSample("plc.a", 12.5, Status.Good, t0, t0)])
    reg.mark_stale(reg.device_tags("plc"))
    a, b = reg.latest("plc.a"), reg.latest("plc.b")
    assert (a.value, a.status, a.source_time) == (12.5, Status.UncertainNoCommunicationLastUsableValue, t0)
    assert (b.value, b.status) == (None, Status.BadNoCommunication)


def test_bad_sample_never_carries_a_value() -> None:
    reg = _registry()
    now = utcnow()
    reg.publish([TagSample("plc.a", 3.0, Status.BadTimeout, now, now)])
    assert reg.latest("plc.a").value is None


def test_listeners_get_one_batch_and_can_unsubscribe() -> None:
    reg = _registry()
    got: list[list[str]] = []
    unsubscribe = reg.subscribe(lambda batch: got.append([s.tag for s in batch]))
    now = utcnow()
    reg.publish([TagSample("plc.a", 1.0, Status.Good, now, now), TagSample("plc.b", 2.0, Status.Good, now, now)])
    unsubscribe()
    reg.publish([TagSample("plc.a", 1.0, Status.Good, now, now)])
    assert got == [["plc.a", "plc.b"]]


def test_marking_stale_twice_publishes_once() -> None:
    reg = _registry()
    now = utcnow()
    reg.publish([TagSample("plc.a", 1.0, Status.Good, now, now)])
    got = []
    reg.subscribe(got.append)
    reg.mark_stale(["plc.a", "plc.b"])
    reg.mark_stale(["plc.a", "plc.b"])
    assert len(got) == 1


def test_unknown_and_duplicate_keys_are_refused() -> None:
    reg = _registry()
    with pytest.raises(ValueError):
        reg.add(TagInfo("plc.a", ("x",)))
    with pytest.raises(KeyError):
        reg.publish([TagSample("nope", 1, Status.Good, utcnow(), utcnow())])
    with pytest.raises(ValueError):
        TagInfo("k", ("k",), data_type="double")


def test_a_failing_listener_is_logged_once_and_never_stops_publish_or_the_other_listeners() -> None:
    """A listener that raises does not reach the producer: publish returns, the listeners after it
    still get every batch, the failure is logged once (listener_failed) and every failure counted."""
    reg = _registry()
    before: list[float] = []
    after: list[float] = []

    def broken(batch) -> None:
        raise RuntimeError("disk on fire")

    reg.subscribe(lambda batch: before.append(batch[0].value))
    reg.subscribe(broken)
    reg.subscribe(lambda batch: after.append(batch[0].value))
    with capture_logs() as logs:
        for v in (1.0, 2.0, 3.0):
            now = utcnow()
            reg.publish([TagSample("plc.a", v, Status.Good, now, now)])
    assert before == after == [1.0, 2.0, 3.0]
    assert reg.latest("plc.a").value == 3.0
    failed = [e for e in logs if e["event"] == "listener_failed"]
    assert len(failed) == 1
    assert "broken" in failed[0]["listener"] and "disk on fire" in failed[0]["error"]
    assert reg.listener_failures == 3


def test_removed_keys_are_forgotten_and_can_be_declared_again() -> None:
    """A reload removes keys: their samples are refused, the device's list drops them, and the key
    may be added again (it then waits for initial data)."""
    reg = _registry()
    now = utcnow()
    reg.publish([TagSample("plc.a", 1.0, Status.Good, now, now), TagSample("plc.b", 2.0, Status.Good, now, now)])
    reg.remove(["plc.a", "plc.unknown"])
    assert "plc.a" not in reg and len(reg) == 1 and reg.device_tags("plc") == ["plc.b"]
    with pytest.raises(KeyError):
        reg.publish([TagSample("plc.a", 1.0, Status.Good, now, now)])
    assert reg.latest("plc.b").value == 2.0
    reg.remove(["plc.b"])
    assert reg.device_tags("plc") == []
    reg.add(TagInfo("plc.a", ("Devices", "plc", "a"), device="plc"))
    assert reg.latest("plc.a").status == Status.BadWaitingForInitialData and reg.device_tags("plc") == ["plc.a"]
