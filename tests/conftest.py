"""Shared fixtures: free ports, leaked-task detection, log capture, an isolated state folder, umask 000."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# Property tests draw new examples on every local run (that is how they find counterexamples); under
# CI they draw the same ones every run, so a gate is never red by the luck of the draw.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
# where a default state folder would land if a test escaped its isolation (edge/core/statedir.py)
_REAL_STATE = (Path.home() / ".local" / "state" / "edgetwin", Path("/var/lib/edgetwin"), ROOT / "config" / "state", ROOT / "state")


def _snapshot() -> dict[Path, bool]:
    return {p: p.exists() for p in _REAL_STATE}


@pytest.fixture(scope="session", autouse=True)
def isolated_state_dir(tmp_path_factory: pytest.TempPathFactory):
    """Every default state folder of the run (also in subprocesses, which inherit the environment)
    is under pytest's tmp folder: ``XDG_STATE_HOME`` points there and the systemd variables are
    unset. At the end, fail if the run created a state folder in the home directory, /var/lib
    or the repository."""
    before = _snapshot()
    xdg = tmp_path_factory.mktemp("xdg-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(xdg))
        for name in ("STATE_DIRECTORY", "CONFIGURATION_DIRECTORY"):
            mp.delenv(name, raising=False)
        yield xdg / "edgetwin"
    created = [str(p) for p, existed in before.items() if p.exists() and not existed]
    assert not created, f"the test run wrote state outside its tmp folder: {created}"


@pytest.fixture(scope="session", autouse=True)
def shared_standard_nodes(tmp_path_factory: pytest.TempPathFactory):
    """One shelf of asyncua's standard nodes for the whole run (``edge.opcua.standard_nodes``):
    ``EDGETWIN_STANDARD_NODES`` points every gateway (subprocesses too) at a folder of the run,
    built here once when the collected tests import asyncua, instead of once per state folder.
    The tests of the shelf itself pass their own paths."""
    folder = tmp_path_factory.mktemp("standard-nodes")
    if "asyncua" in sys.modules:
        from edge.opcua.standard_nodes import prepare, shelf_path

        asyncio.run(prepare(shelf_path(folder)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGETWIN_STANDARD_NODES", str(folder))
        yield folder


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port()


@pytest.fixture(scope="session")
def free_port_factory():
    return _free_port


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The process umask is 0 during the test (so only the code's own modes protect its files)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail a test that leaves asyncio tasks running behind it."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leaked:
        for t in leaked:
            t.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test leaked tasks: {sorted(t.get_name() for t in leaked)}")
