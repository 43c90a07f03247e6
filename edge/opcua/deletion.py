"""Deleting nodes from a running server (a config reload): whole subtrees, cheaply, and visibly to
the clients that monitor them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua

from edge.opcua import asyncua_patches


async def delete_subtrees(server: Server, roots: Sequence[ua.NodeId]) -> None:
    """Delete *roots*, every node below them, and every reference to any of them.

    Monitored items of a deleted variable get one last value, null with BadNodeIdUnknown, so a
    client sees its node go rather than a value that silently stops changing. References to the
    deleted nodes are dropped in one pass (``asyncua_patches.drop_references_to``)."""
    doomed: list[ua.NodeId] = []
    for i, root in enumerate(roots):
        if i % 10 == 9:  # nothing here waits: let the server's clients and devices in between
            await asyncio.sleep(0)
        doomed += await _subtree(server.get_node(root))
    if not doomed:
        return
    aspace = server.iserver.aspace
    for nid in doomed:
        if asyncua_patches.datachange_handles(aspace, nid):
            now = datetime.now(UTC)
            status = ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)
            gone = ua.DataValue(Value=ua.Variant(None, ua.VariantType.Null), StatusCode=status, SourceTimestamp=now, ServerTimestamp=now)
            await aspace.write_attribute_value(nid, ua.AttributeIds.Value, gone)
            asyncua_patches.detach_datachange_callbacks(aspace, nid)
    items = [ua.DeleteNodesItem(NodeId=nid, DeleteTargetReferences=False) for nid in doomed]
    await server.iserver.isession.delete_nodes(ua.DeleteNodesParameters(NodesToDelete=items))
    asyncua_patches.drop_references_to(aspace, doomed)


async def _subtree(node: Any) -> list[ua.NodeId]:
    """*node* and every node below it by hierarchical references, children first."""
    out: list[ua.NodeId] = []
    for child in await node.get_children():
        out += await _subtree(child)
    out.append(node.nodeid)
    return out
