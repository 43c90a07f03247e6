"""Browse an upstream OPC UA server and print its variables as ready-to-paste tag entries.

``browse_variables`` walks the address space below a start node (the Objects folder by default)
along hierarchical references, and returns every Variable it finds with what a tag entry needs:
a NodeId written with its namespace URI (``nsu=...``), so the entry survives a server that
reorders its namespace array), the registry type matching the node's DataType, whether it is
an array, whether the node is writable, and its browse path. ``render_toml`` and ``render_csv``
are pure: they turn those into ``[[devices.tags]]`` tables or rows for the CSV tag import, with
unique names that satisfy the config's name rule.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua

from drivers.opcua_client.mapping import REGISTRY_TYPES, variant_type_of
from drivers.opcua_client.points import parse_node_id

_HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class BrowsedVariable:
    """One upstream variable, as a tag entry needs it."""

    node: str  # NodeId text with the namespace URI (nsu=...;) or, for namespace 0, without prefix
    browse_path: str  # /Objects/2:Boiler/2:Temperature
    display_name: str
    type: str | None  # registry data type, or None when the DataType has no built-in type (structures)
    array: bool
    writable: bool
    description: str = ""


def resolve_node_id(text: str, namespaces: Sequence[str]) -> ua.NodeId:
    """*text* in the config's notation (``ns=<index>;`` or ``nsu=<uri>;``, see ``points.parse_node_id``)
    as a NodeId of this server; ValueError for bad syntax or a namespace URI the server does not have."""
    ref = parse_node_id(text)
    if isinstance(ref.namespace, str):
        if ref.namespace not in namespaces:
            raise ValueError(f"the server has no namespace {ref.namespace!r}")
        index = namespaces.index(ref.namespace)
    else:
        index = ref.namespace
    ident: int | str | bytes | uuid.UUID = uuid.UUID(str(ref.identifier)) if ref.kind == "g" else ref.identifier
    return ua.NodeId(ident, index)


def node_text(node_id: ua.NodeId, namespaces: Sequence[str]) -> str:
    """*node_id* in the config's notation, its namespace named by URI (index 0 needs no prefix)."""
    ident: str = node_id.to_string()  # "ns=2;s=Boiler.Temperature" or "i=85"
    if node_id.NamespaceIndex == 0:
        return ident
    rest = ident.split(";", 1)[1]
    index = node_id.NamespaceIndex
    if index < len(namespaces):
        return f"nsu={namespaces[index]};{rest}"
    return ident  # an index the namespace array does not list: keep the index


async def browse_variables(client: Any, *, root: str | None = None, max_depth: int = 10, max_nodes: int = 100_000) -> list[BrowsedVariable]:
    """Every Variable below *root* (NodeId text as in the config; default: the Objects folder),
    depth first, each node once.

    Properties (HasProperty children such as EURange) are not tags and are skipped. Stops after
    *max_nodes* visited nodes, so a huge or cyclic address space cannot run away.
    """
    namespaces = await client.get_namespace_array()
    start = client.get_node(resolve_node_id(root, namespaces) if root else ua.NodeId(ua.ObjectIds.ObjectsFolder))
    start_name = (await start.read_browse_name()).to_string()
    out: list[BrowsedVariable] = []
    seen: set[ua.NodeId] = {start.nodeid}
    stack: list[tuple[Any, str, int]] = [(start, "/" + _element(start_name), 0)]
    while stack and len(seen) < max_nodes:
        node, path, depth = stack.pop()
        if depth >= max_depth:
            continue
        refs = await node.get_references(refs=_HIERARCHICAL, direction=ua.BrowseDirection.Forward, includesubtypes=True)
        children = []
        for ref in refs:
            child_id = ref.NodeId
            if child_id in seen or ref.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasProperty):
                continue
            seen.add(child_id)
            child_path = f"{path}/{_element(ref.BrowseName.to_string())}"
            child = client.get_node(child_id)
            if ref.NodeClass == ua.NodeClass.Variable:
                out.append(await _variable(child, child_path, ref, namespaces))
            if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                children.append((child, child_path, depth + 1))
        stack.extend(reversed(children))
    return out


async def _variable(node: Any, path: str, ref: Any, namespaces: Sequence[str]) -> BrowsedVariable:
    attrs = [ua.AttributeIds.DataType, ua.AttributeIds.ValueRank, ua.AttributeIds.AccessLevel, ua.AttributeIds.Description]
    data_type, value_rank, access, description = (dv.Value.Value if dv.Value is not None else None for dv in await node.read_attributes(attrs))
    vtype = variant_type_of(data_type) if isinstance(data_type, ua.NodeId) else None
    return BrowsedVariable(
        node=node_text(node.nodeid, namespaces),
        browse_path=path,
        display_name=ref.DisplayName.Text or ref.BrowseName.Name,
        type=REGISTRY_TYPES.get(vtype) if vtype is not None else None,
        array=isinstance(value_rank, int) and value_rank >= 1,
        writable=bool(isinstance(access, int) and access & ua.AccessLevel.CurrentWrite.mask),
        description=text if (text := _text(description)) != (ref.DisplayName.Text or ref.BrowseName.Name) else "",
    )


def _text(value: Any) -> str:
    return (value.Text or "") if isinstance(value, ua.LocalizedText) else ""


def _element(browse_name: str) -> str:
    """'2:Boiler' stays; a namespace-0 name has no prefix."""
    return browse_name[2:] if browse_name.startswith("0:") else browse_name


def tag_names(variables: Sequence[BrowsedVariable]) -> list[str]:
    """A unique config name per variable (``^[A-Za-z][A-Za-z0-9_-]{0,63}$``), from its display name;
    a clash gets the parent's name in front, then a number."""
    names: list[str] = []
    used: set[str] = set()
    for v in variables:
        base = _clean(v.display_name)
        name = base
        if name in used:
            parent = v.browse_path.rsplit("/", 2)[-2] if v.browse_path.count("/") >= 2 else ""
            name = _clean(f"{parent.split(':')[-1]}_{v.display_name}")[:64]
        n = 2
        while name in used:
            suffix = f"_{n}"
            name = f"{base[: 64 - len(suffix)]}{suffix}"
            n += 1
        used.add(name)
        names.append(name)
    return names


def _clean(text: str) -> str:
    name = _NAME_BAD.sub("_", text).strip("_") or "tag"
    if not name[0].isalpha():
        name = f"t_{name}"
    return name[:64]


def render_toml(variables: Sequence[BrowsedVariable]) -> str:
    """``[[devices.tags]]`` tables for *variables* (one per variable, in order). A variable whose
    DataType has no built-in type is written commented out, with the reason."""
    out = []
    for name, v in zip(tag_names(variables), variables, strict=True):
        lines = [
            "[[devices.tags]]",
            f"name = {_toml_str(name)}",
            f"node = {_toml_str(v.node)}",
            f"type = {_toml_str(v.type)}" if v.type else "# type = ?   the DataType is not a built-in type (a structure or vendor type): not supported",
        ]
        if v.array:
            lines.append("array = true")
        lines.append("writable = true" if v.writable else "# writable = true   (the server says this node is read-only)")
        if v.description:
            lines.append(f"description = {_toml_str(v.description)}")
        lines.append(f"# browse_path = {_toml_str(v.browse_path)}")
        if not v.type:
            lines = [line if line.startswith("#") else f"# {line}" for line in lines]
        out.append("\n".join(lines))
    return "\n\n".join(out) + ("\n" if out else "")


def render_csv(variables: Sequence[BrowsedVariable]) -> str:
    """Rows for the CSV tag import (``tags_csv``): name, node, type, array, writable, description.
    Variables without a built-in type are left out."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "node", "type", "array", "writable", "description"])
    for name, v in zip(tag_names(variables), variables, strict=True):
        if v.type:
            writer.writerow([name, v.node, v.type, str(v.array).lower(), str(v.writable).lower(), v.description])
    return buf.getvalue()


def _toml_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
