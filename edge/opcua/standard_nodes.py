"""asyncua's standard address space kept on disk and loaded node by node (about 50 MB less RSS).

asyncua builds the OPC UA standard nodes (some 20,000 of them: types, the Server object, its
capabilities and diagnostics) as Python objects at every start, from generated code that is itself
tens of megabytes once imported. A gateway reads a few hundred of them. asyncua can instead keep
them in a ``shelve`` file and copy a node into memory the first time it is read
(``AddressSpace.load_aspace_shelf``); every node the server touches (the Server object, the
capabilities, event types, the folders the gateway adds to) is then an ordinary in-memory node,
and the rest stay on disk.

The shelf lives in the state directory, one folder per asyncua and Python version (the pickled
nodes are asyncua's classes)::

    <state_dir>/generated/opcua-standard-nodes-asyncua<version>-py<major><minor>/nodes.*

The first start builds it (in memory as before, then written to a staging folder and renamed into
place, so a crash never leaves half a shelf); later starts load it. A folder of another version is
deleted when the new one is built. The folder is 0700 and every file 0600
(``edge.core.private_files``). Because a shelf is unpickled, one that is not owned by the gateway's
user, or that others can write to, is never loaded: it is rebuilt. So is one that cannot be read.

``EDGETWIN_STANDARD_NODES`` (environment) moves the shelf: a folder (a package can ship a shelf
built at install time, tests share one per run), or ``memory`` to keep the standard nodes in memory
as asyncua does by default (``shelf_for``).

``use_shelf(server, path)`` installs this on an asyncua ``Server`` before ``init()``
(``asyncua_patches.wrap_standard_address_space``); ``OpcUaServer(standard_nodes=...)`` does it.
"""

from __future__ import annotations

import asyncio
import dbm
import os
import pickle
import shelve
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from asyncua import ua

from edge.core.private_files import DIR_MODE, FILE_MODE, private_dir
from edge.opcua import asyncua_patches

__all__ = ["ENV", "PREFIX", "build_shelf", "folder_name", "shelf_for", "shelf_path", "trusted_shelf", "use_shelf"]

log = structlog.get_logger("edge.opcua.standard_nodes")

ENV = "EDGETWIN_STANDARD_NODES"
PREFIX = "opcua-standard-nodes-"
SHELF_NAME = "nodes"


def folder_name(asyncua_version: str = asyncua_patches.ASYNCUA_VERSION, python: tuple[int, int] = sys.version_info[:2]) -> str:
    """The shelf's folder name: a new asyncua or Python version gets a shelf of its own."""
    return f"{PREFIX}asyncua{asyncua_version}-py{python[0]}{python[1]}"


def shelf_path(generated_dir: Path, **version: Any) -> Path:
    """The shelf (the name ``shelve`` opens; the backend adds its suffixes) under *generated_dir*
    (``StateDir.generated_dir``)."""
    return Path(generated_dir) / folder_name(**version) / SHELF_NAME


def shelf_for(generated_dir: Path, env: Mapping[str, str] | None = None) -> Path | None:
    """The shelf a gateway whose state directory has *generated_dir* uses: under ``$EDGETWIN_STANDARD_NODES``
    when that names a folder, none (in memory) when it is ``memory``, else under *generated_dir*."""
    override = (os.environ if env is None else env).get(ENV, "").strip()
    if override == "memory":
        return None
    return shelf_path(Path(override) if override else generated_dir)


def _shelf_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + "*") if p.is_file()) if path.parent.is_dir() else []


def trusted_shelf(path: Path) -> bool:
    """Whether the shelf at *path* exists and may be unpickled: a dbm file of a backend this
    Python has, in a folder and files owned by this user that no one else can write to."""
    files = _shelf_files(path)
    if not files or not dbm.whichdb(str(path)):
        return False
    uid = os.geteuid()
    for p in (path.parent, *files):
        st = p.lstat()
        if st.st_uid != uid or st.st_mode & 0o022 or p.is_symlink():
            return False
    return True


def build_shelf(nodes: Any, path: Path) -> Path:
    """Write *nodes* (an ``AddressSpace``'s NodeId -> NodeData mapping, standard nodes only) to a
    shelf at *path*: built in a staging folder of *path*'s parent, owner-only, then renamed into
    place; other versions' folders beside it are deleted. Return *path*."""
    folder = path.parent
    generated = private_dir(folder.parent)
    staging = generated / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    private_dir(staging)
    with shelve.Shelf(dbm.open(str(staging / path.name), "n", FILE_MODE), protocol=pickle.HIGHEST_PROTOCOL) as shelf:
        for nodeid, ndata in nodes.items():
            shelf[nodeid.to_string()] = ndata
    for p in staging.iterdir():
        os.chmod(p, FILE_MODE)
    os.chmod(staging, DIR_MODE)
    shutil.rmtree(folder, ignore_errors=True)  # an untrusted or unreadable shelf of this version
    os.rename(staging, folder)
    for old in generated.glob(PREFIX + "*"):
        if old.is_dir() and old.name != folder.name and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return path


def use_shelf(server: Any, path: Path) -> None:
    """Make ``server.init()`` (an asyncua ``Server``, before init) load the standard nodes from the
    shelf at *path*, building it first if it is missing, untrusted or unreadable."""
    iserver = server.iserver

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        async def load_standard_address_space(shelf_file: Path | None = None) -> None:
            aspace = iserver.aspace
            if trusted_shelf(path):
                try:
                    aspace.load_aspace_shelf(path)
                    # one read proves the shelf holds what this asyncua pickled (the Root folder)
                    if aspace.get(ua.NodeId(ua.ObjectIds.RootFolder)) is not None:
                        return
                    reason = "no Root folder"
                except (OSError, *dbm.error, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                log.warning("opcua_standard_nodes_unreadable", shelf=str(path), reason=reason)
                aspace._nodes = {}
            await original(None)  # asyncua builds them in memory, as without a shelf
            count = len(aspace._nodes)
            try:
                await asyncio.to_thread(build_shelf, aspace._nodes, path)
            except OSError as exc:  # a read-only state folder: run from memory, as before
                log.warning("opcua_standard_nodes_not_saved", shelf=str(path), error=str(exc))
                return
            aspace._nodes = {}
            aspace.load_aspace_shelf(path)  # this start too: the in-memory copies are released
            log.info("opcua_standard_nodes_saved", shelf=str(path), nodes=count)

        return load_standard_address_space

    asyncua_patches.wrap_standard_address_space(iserver, wrap)


async def prepare(path: Path) -> bool:
    """Build the shelf at *path* now unless a trusted one is there (a package's install step, a
    test run, a benchmark); return whether it was built."""
    if trusted_shelf(path):
        return False
    from asyncua import Server

    server = Server()
    use_shelf(server, path)
    await server.iserver.load_standard_address_space()
    return True
