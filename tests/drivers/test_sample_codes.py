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
