"""Test helpers of the Modbus driver tests: points by address, a driver read as one sample per point
(in order, for table-style assertions), samples by tag, and a TCP driver with a short timeout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drivers.base import ReadResult
from drivers.modbus import ModbusTcpDriver
from drivers.modbus.address import RegisterPoint, make_point
from drivers.sample import TagSample

TIMEOUT_S = 0.3  # short, so outage tests stay fast


def pt(name: str, address: str, type_: str = "uint16", unit_id: int = 1, **kw: Any) -> RegisterPoint:
    return make_point(name=name, address=address, type=type_, unit_id=unit_id, **kw)


def by_name(samples: list[TagSample]) -> dict[str, TagSample]:
    return {s.tag: s for s in samples}


def tcp_driver(port: int, **kw: Any) -> ModbusTcpDriver:
    """A driver for 127.0.0.1:*port* named plc1, with the short ``TIMEOUT_S`` unless given."""
    kw.setdefault("timeout_s", TIMEOUT_S)
    return ModbusTcpDriver(name=kw.pop("name", "plc1"), host="127.0.0.1", port=port, **kw)


def per_point(result: ReadResult, points: Sequence[Any]) -> list[TagSample]:
    """One sample per point, in order. A point in ``not_fetched`` shows as a sample with that status,
    no value and no times (None), so assertions can compare statuses position by position."""
    fetched: dict[str, list[TagSample]] = {}
    for s in result.samples:
        fetched.setdefault(s.tag, []).append(s)
    missing = {key: status for status, keys in result.not_fetched.items() for key in keys}
    out = []
    for p in points:
        queue = fetched.get(p.name)
        if queue:
            out.append(queue.pop(0))
        else:
            out.append(TagSample(p.name, None, missing[p.name], None, None))  # type: ignore[arg-type]
    assert not any(fetched.values()), f"samples for points not asked: {fetched}"
    return out


async def read_all(driver: Any, points: Sequence[Any]) -> list[TagSample]:
    """``driver.read(points)`` as one sample per point (see ``per_point``)."""
    return per_point(await driver.read(points), points)


def gateway_driver(port: int, **kw: Any) -> ModbusTcpDriver:
    """A driver named gw (a gateway serving several unit ids), with a 0.2 s timeout unless given."""
    kw.setdefault("timeout_s", 0.2)
    return tcp_driver(port, name="gw", **kw)
