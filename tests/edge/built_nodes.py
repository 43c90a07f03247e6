"""Test helper: the nodes the daemon's OPC UA server builds for a config, as ``(path, kind)``, to
compare with what ``edge.config.nodes.planned_nodes`` predicts."""

from __future__ import annotations

from collections.abc import Callable

from asyncua import ua

from edge.app import Gateway
from edge.config.models import GatewayConfig
from edge.opcua.extensions import northbound_extensions
from edge.opcua.model import ModelInfo
from edge.opcua.server import OpcUaServer


def node_kind(node_class: ua.NodeClass, type_definition: ua.NodeId) -> str | None:
    if node_class == ua.NodeClass.Method:
        return "method"
    if node_class == ua.NodeClass.Object:
        return "condition" if type_definition == ua.NodeId(ua.ObjectIds.AlarmConditionType) else "object"
    if node_class == ua.NodeClass.Variable and type_definition != ua.NodeId(ua.ObjectIds.PropertyType):
        return "variable"
    return None  # a property: named by its type, not by the config


async def built_nodes(cfg: GatewayConfig, port: int, *, prepare: Callable[[Gateway], object] | None = None) -> set[tuple[tuple[str, ...], str]]:
    """``(path, kind)`` of every node the daemon builds below its gateway object for *cfg*, served on
    127.0.0.1:*port*; *prepare* gets the Gateway first (to declare what a northbound sink adds)."""
    gw = Gateway(cfg)
    if prepare is not None:
        prepare(gw)
    gateway = cfg.gateway.name
    async with northbound_extensions(cfg, gw.registry, gw.twins) as extensions:
        server = OpcUaServer(
            gw.registry, endpoint=f"opc.tcp://127.0.0.1:{port}/x", namespace_uri=cfg.gateway.namespace_uri, gateway_name=gateway,
            extensions=extensions, model=ModelInfo.from_config(cfg),
        )  # fmt: skip
        async with server:
            out = set()
            for nid in list(server.ua_server.iserver.aspace.keys()):
                text = nid.Identifier
                if nid.NamespaceIndex != server.namespace_index or not isinstance(text, str):
                    continue
                if (text != gateway and not text.startswith(f"{gateway}/")) or "." in text:
                    continue  # types, and the members asyncua instantiates below a condition ("<condition>.<member>")
                node = server.ua_server.get_node(nid)
                kind = node_kind(await node.read_node_class(), await node.read_type_definition())
                if kind is not None:
                    out.add((tuple(text.split("/")[1:]), kind))
            return out
