"""Test helpers: a Modbus driver polled by the gateway's DeviceRunner into a TagRegistry, and a wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from drivers.modbus import ModbusTcpDriver
from drivers.modbus.address import RegisterPoint
from edge.core.backoff import Backoff
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner


def runner_for(
    driver: ModbusTcpDriver,
    points: list[RegisterPoint],
    *,
    poll_s: float,
    backoff: Backoff | None = None,
    stale_after_s: float | None = None,
) -> tuple[DeviceRunner, TagRegistry]:
    """A runner of device ``gw`` and its registry; the points are named by registry key (``gw.<tag>``)."""
    reg = TagRegistry()
    for p in points:
        reg.add(TagInfo(p.name, ("Devices", *p.name.split(".")), "float64", device="gw", writable=p.writable))
    runner = DeviceRunner("gw", driver, points, reg, poll_interval_s=poll_s, backoff=backoff or Backoff(0.5, 30.0), stale_after_s=stale_after_s)
    for info in runner.health.infos():
        reg.add(info)
    return runner, reg


async def until(cond: Callable[[], Any], timeout: float = 5.0) -> None:
    """Return once *cond()* is true; TimeoutError after *timeout* seconds."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)
