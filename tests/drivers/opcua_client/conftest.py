"""Fixtures of the OPC UA client driver tests: an upstream asyncua server and device settings."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from drivers.base import DriverContext
from drivers.opcua_client.driver import OpcUaDriver
from drivers.opcua_client.settings import OpcUaSettings
from tests.drivers.opcua_client.upstream import PLANT, ServerCert, Upstream, make_server_cert


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """As tests/drivers/conftest.py, except the event loop's default executor ("asyncio_<n>"): asyncua's
    server fills its address space in a thread of it, and asyncio ends those threads with the loop."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.name.startswith("asyncio_")]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if extra:
        pytest.fail(f"test leaked threads: {sorted(t.name for t in extra)}")


@pytest.fixture
async def upstream(free_port: int) -> AsyncIterator[Upstream]:
    """An anonymous, unsecured upstream server; its namespace array puts the plant namespace at 2."""
    server = Upstream(free_port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def module_upstream(free_port_factory: Any) -> AsyncIterator[Upstream]:
    """One upstream server for a module (asyncua builds its address space in seconds); tests that
    use it run in the module's event loop (``pytest.mark.asyncio(loop_scope="module")``)."""
    server = Upstream(free_port_factory())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def shared_upstream(module_upstream: Upstream) -> Upstream:
    """The module's server with every variable at its initial value."""
    await module_upstream.reset()
    return module_upstream


@pytest.fixture(scope="session")
def server_cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_server_cert(tmp_path_factory.mktemp("upstream-pki"))


def tag(name: str, type_: str = "float64", **kw: Any) -> dict[str, Any]:
    """A tag on Boiler.<name> by namespace URI (unless node or browse_path is given)."""
    if "node" not in kw and "browse_path" not in kw:
        kw["node"] = f"nsu={PLANT};s=Boiler.{name}"
    return {"name": name.lower(), "type": type_, **kw}


def settings(endpoint: str, tags: list[dict[str, Any]], **kw: Any) -> OpcUaSettings:
    return OpcUaSettings.model_validate({"name": "boiler", "driver": "opcua", "endpoint": endpoint, "timeout_s": 2.0, "tags": tags, **kw})


def make_driver(s: OpcUaSettings, state_dir: Path, config_dir: Path | None = None) -> OpcUaDriver:
    return OpcUaDriver.from_settings(s, context=DriverContext(state_dir=state_dir, config_dir=config_dir or state_dir))
