"""Test helper: the whole gateway in a task of the test's event loop, from start to shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from edge.app import run_gateway
from edge.config.models import GatewayConfig


@contextlib.asynccontextmanager
async def running_gateway(cfg: GatewayConfig, *, ready_s: float = 30.0, stop_s: float | None = 15.0) -> AsyncIterator[asyncio.Task[None]]:
    """Run the gateway of *cfg* until the block ends; enter once it serves (within *ready_s*).

    On exit the shutdown trigger fires and the task is awaited (within *stop_s*; None: no limit),
    so a gateway that failed raises here. The task is yielded for checks after the block.
    """
    stop, ready = asyncio.Event(), asyncio.Event()
    gateway = asyncio.create_task(run_gateway(cfg, shutdown_trigger=stop.wait, on_ready=lambda gw: ready.set()), name="gateway")
    try:
        async with asyncio.timeout(ready_s):
            await ready.wait()
        yield gateway
    finally:
        stop.set()
        async with asyncio.timeout(stop_s):
            await gateway
