"""Test helper: wait for an asynchronous condition, failing with what was awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Await *predicate()* every 50 ms until it is true; AssertionError naming *what* after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)
