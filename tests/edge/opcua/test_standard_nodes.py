"""asyncua's standard nodes from a shelf in the state directory (edge/opcua/standard_nodes.py).

The shelf is built once (owner-only, whatever the umask), reused by later starts, rebuilt when it
cannot be trusted or read, and one of another asyncua or Python version is replaced. A server that
loads its standard nodes lazily shows clients the same standard nodes as one that builds them in
memory, and keeps only the ones it touched in memory.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from asyncua import Client, Server, ua
from structlog.testing import capture_logs

from edge.opcua import asyncua_patches
from edge.opcua.standard_nodes import ENV, build_shelf, folder_name, prepare, shelf_for, shelf_path, trusted_shelf, use_shelf

SMALL = {ua.NodeId(i): f"node {i}" for i in (84, 85, 86)}  # any picklable mapping builds a shelf


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(path: Path) -> dict[str, int]:
    folder = path.parent
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}


def test_shelf_location_follows_versions_and_environment(tmp_path: Path) -> None:
    """One folder per asyncua and Python version; EDGETWIN_STANDARD_NODES moves it or turns it off."""
    assert folder_name("2.1.0", (3, 11)) == "opcua-standard-nodes-asyncua2.1.0-py311"
    assert folder_name() == f"opcua-standard-nodes-asyncua{asyncua_patches.ASYNCUA_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    gen = tmp_path / "state" / "generated"
    assert shelf_for(gen, {}) == gen / folder_name() / "nodes"
    assert shelf_for(gen, {ENV: str(tmp_path / "shared")}) == tmp_path / "shared" / folder_name() / "nodes"
    assert shelf_for(gen, {ENV: "memory"}) is None


def test_built_owner_only_whatever_the_umask_and_other_versions_removed(tmp_path: Path) -> None:
    gen = tmp_path / "generated"
    old = shelf_path(gen, asyncua_version="2.0.0")
    with umask(0):
        build_shelf(SMALL, old)
        assert trusted_shelf(old)
        new = build_shelf(SMALL, shelf_path(gen))
    assert set(modes(new).values()) <= {0o700, 0o600}
    assert modes(new)[new.parent.name] == 0o700
    assert stat.S_IMODE(gen.stat().st_mode) == 0o700
    assert trusted_shelf(new)
    assert not old.parent.exists(), "the shelf of another asyncua version is deleted"
    assert [p.name for p in gen.iterdir()] == [new.parent.name], "no staging folder is left behind"


def test_a_shelf_others_can_write_or_missing_is_not_trusted(tmp_path: Path) -> None:
    path = build_shelf(SMALL, shelf_path(tmp_path))
    assert trusted_shelf(path)
    victim = next(path.parent.glob("nodes*"))
    os.chmod(victim, 0o664)
    assert not trusted_shelf(path), "a group-writable file could hold any pickle"
    os.chmod(victim, 0o600)
    os.chmod(path.parent, 0o777)
    assert not trusted_shelf(path)
    os.chmod(path.parent, 0o700)
    if os.geteuid() == 0:
        os.chown(victim, 65534, -1)
        assert not trusted_shelf(path), "a file of another user is not loaded"
    assert not trusted_shelf(tmp_path / "none" / "nodes")


async def test_standard_nodes_served_from_the_shelf(shared_standard_nodes: Path, free_port: int) -> None:
    """The run's shared shelf (tests/conftest.py): the Server object, its capabilities and the
    event types answer as usual, and only the nodes the server touched are in memory."""
    path = shelf_path(shared_standard_nodes)
    assert trusted_shelf(path)
    server = Server()
    use_shelf(server, path)
    with capture_logs() as logs:
        await server.init()
    assert not [e for e in logs if e["event"].startswith("opcua_standard_nodes")], "a trusted shelf is loaded as it is"
    url = f"opc.tcp://127.0.0.1:{free_port}/shelf"
    server.set_endpoint(url)
    nodes = server.iserver.aspace._nodes
    assert not isinstance(nodes, dict)
    async with server, Client(url, timeout=10) as client:
        assert (await client.get_node(ua.ObjectIds.Server_NamespaceArray).read_value())[0] == "http://opcfoundation.org/UA/"
        assert await client.get_node(ua.ObjectIds.Server_ServerStatus_State).read_value() == ua.ServerState.Running
        limit = client.get_node(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
        assert await limit.read_value() == 10000
        caps = {(await c.read_browse_name()).Name for c in await client.get_node(ua.ObjectIds.Server_ServerCapabilities).get_children()}
        assert {"OperationLimits", "MaxBrowseContinuationPoints", "ServerProfileArray"} <= caps
        alarm = client.get_node(ua.ObjectIds.AlarmConditionType)
        assert (await alarm.read_browse_name()).Name == "AlarmConditionType"
        assert "ShelvingState" in {(await c.read_browse_name()).Name for c in await alarm.get_children()}
        path_node = await client.nodes.root.get_child(["0:Types", "0:EventTypes", "0:BaseEventType", "0:ConditionType"])
        assert path_node.nodeid == ua.NodeId(ua.ObjectIds.ConditionType)
        bad = await client.uaclient.read(ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=ua.NodeId(999999), AttributeId=ua.AttributeIds.BrowseName)]))
        assert bad[0].StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
    assert 0 < len(nodes) < len(nodes.source) / 4, "most standard nodes stay on disk"


@pytest.mark.slow
async def test_first_start_builds_later_starts_reuse_and_a_broken_shelf_is_rebuilt(tmp_path: Path) -> None:
    path = shelf_path(tmp_path / "state" / "generated")
    with umask(0), capture_logs() as logs:
        assert await prepare(path)
    assert [e["event"] for e in logs] == ["opcua_standard_nodes_saved"]
    assert logs[0]["nodes"] > 5000
    assert set(modes(path).values()) <= {0o700, 0o600}
    stamps = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}

    with capture_logs() as logs:
        assert not await prepare(path), "a trusted shelf is not built again"
        server = Server()
        use_shelf(server, path)
        await server.init()
    assert logs == []
    assert {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()} == stamps
    assert not isinstance(server.iserver.aspace._nodes, dict)

    dat = next(p for p in path.parent.iterdir() if p.suffix in (".dat", "") and p.stat().st_size > 1_000_000)
    dat.write_bytes(b"\0" * dat.stat().st_size)  # every pickle unreadable, the index intact
    with capture_logs() as logs:
        server = Server()
        use_shelf(server, path)
        await server.init()
    assert [e["event"] for e in logs] == ["opcua_standard_nodes_unreadable", "opcua_standard_nodes_saved"]
    assert trusted_shelf(path)
    assert (await server.get_node(ua.ObjectIds.Server).read_browse_name()).Name == "Server"


@pytest.mark.slow
async def test_browsing_matches_a_server_built_in_memory(shared_standard_nodes: Path) -> None:
    """The Server object and the event types, two levels deep: the same references either way."""
    lazy, memory = Server(), Server()
    use_shelf(lazy, shelf_path(shared_standard_nodes))
    await lazy.init()
    await memory.init()

    async def walk(server: Server, start: int, depth: int) -> set[tuple[str, str, int]]:
        seen: set[tuple[str, str, int]] = set()
        todo = [(server.get_node(start), 0)]
        while todo:
            node, level = todo.pop()
            for ref in await node.get_references():
                seen.add((node.nodeid.to_string(), ref.NodeId.to_string(), ref.ReferenceTypeId.Identifier))
                if ref.IsForward and level < depth:
                    todo.append((server.get_node(ref.NodeId), level + 1))
        return seen

    for start in (ua.ObjectIds.Server, ua.ObjectIds.BaseEventType):
        assert await walk(lazy, start, 2) == await walk(memory, start, 2)
