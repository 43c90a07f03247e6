"""drivers.sample.Status carries the OPC UA numbers, identical to asyncua's."""

from __future__ import annotations

import pytest
from asyncua import ua

from drivers.sample import Status, is_bad, is_good, is_uncertain, severity


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_status_equals_asyncua(status: Status) -> None:
    """Every member has the value of the asyncua.ua.StatusCodes constant of the same name."""
    assert int(status) == getattr(ua.StatusCodes, status.name)


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_severity_agrees_with_asyncua(status: Status) -> None:
    code = ua.StatusCode(int(status))
    assert (is_good(status), is_uncertain(status), is_bad(status)) == (code.is_good(), code.is_uncertain(), code.is_bad())
    assert severity(status) in (0, 1, 2)


def test_tag_sample_built_through_its_slots_is_still_a_frozen_dataclass() -> None:
    """TagSample's faster __init__ sets every field, and the class keeps its dataclass behaviour."""
    import dataclasses
    import pickle

    from drivers.sample import TagSample, utcnow

    t1, t2 = utcnow(), utcnow()
    s = TagSample("dev.tag", 1.5, Status.Good, t1, t2)
    assert [getattr(s, f.name) for f in dataclasses.fields(TagSample)] == ["dev.tag", 1.5, Status.Good, t1, t2]
    assert TagSample(tag="dev.tag", value=1.5, status=Status.Good, source_time=t1, server_time=t2) == s
    assert hash(s) == hash(TagSample("dev.tag", 1.5, Status.Good, t1, t2))
    assert dataclasses.replace(s, value=None, status=Status.BadTimeout) == TagSample("dev.tag", None, Status.BadTimeout, t1, t2)
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.value = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        TagSample("dev.tag", 1.5, Status.Good, t1)  # type: ignore[call-arg]
