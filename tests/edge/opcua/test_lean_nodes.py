"""Lean variables (edge/opcua/lean_nodes.py) against variables built by asyncua's own AddNodes.

Each variable kind is built both ways in one real server: the lean ones share their constant
attributes with a prototype, the stock ones are asyncua's. Every attribute, every reference and
what a real client sees (Read of every attribute, Browse, TranslateBrowsePath, Write, a monitored
item) must be the same, and the lean ones must take far less memory.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from asyncua import Client, Server, ua

from edge.opcua.lean_nodes import GcPause, LazyAttributeValue, LeanAttributeValue, LeanNodeData, VariableFactory, VariableKind, initial_value
from edge.opcua.model import property_kind, variable_kind

NS = "urn:test:lean-nodes"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
GOOD = ua.DataValue(ua.Variant(21.5, ua.VariantType.Double), StatusCode=ua.StatusCode(0), SourceTimestamp=NOW, ServerTimestamp=NOW)
WAITING = ua.DataValue(ua.Variant(None, ua.VariantType.Null), StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData), SourceTimestamp=NOW)
WRONG_TYPE = ua.DataValue(ua.Variant("text", ua.VariantType.String), SourceTimestamp=NOW)

_BASE, _DOUBLE = ua.ObjectIds.BaseDataVariableType, ua.VariantType.Double.value
_ZERO = ua.Variant(0.0, ua.VariantType.Double)
# (kind, default value, initial DataValue or None)
KINDS: dict[str, tuple[VariableKind, ua.Variant, ua.DataValue | None]] = {
    "double": (variable_kind(_DOUBLE, False, False, 500.0, _BASE, False), _ZERO, GOOD),
    "waiting": (variable_kind(_DOUBLE, False, False, 0.0, _BASE, False), _ZERO, WAITING),
    "analog_rw": (variable_kind(ua.VariantType.Int16.value, True, False, 100.0, ua.ObjectIds.AnalogItemType, False), ua.Variant(0, ua.VariantType.Int16), None),
    "array": (variable_kind(_DOUBLE, False, True, 0.0, _BASE, False), ua.Variant([], ua.VariantType.Double, is_array=True), None),
    "mismatch": (variable_kind(_DOUBLE, False, False, 0.0, _BASE, False), _ZERO, WRONG_TYPE),
    "property": (property_kind(ua.ObjectIds.Range, False), ua.Variant(ua.Range(Low=0.0, High=1.0), ua.VariantType.ExtensionObject), None),
}
COPIES = 3  # per kind and folder: the first lean one is the prototype, the others are built lean


async def _folder(server: Server, ns: int, name: str) -> ua.NodeId:
    node = await server.nodes.objects.add_folder(ua.NodeId(name, ns), ua.QualifiedName(name, ns))
    return node.nodeid


def _names(ns: int, folder: str, kind: str, i: int) -> tuple[ua.NodeId, ua.QualifiedName, ua.LocalizedText, ua.LocalizedText]:
    name = f"{kind}{i}"
    return ua.NodeId(f"{folder}/{name}", ns), ua.QualifiedName(name, ns), ua.LocalizedText(name), ua.LocalizedText(f"{name} of {folder}")


async def _build_both(server: Server, ns: int) -> VariableFactory:
    iserver = server.iserver
    stock, lean = await _folder(server, ns, "stock"), await _folder(server, ns, "lean")
    factory = VariableFactory(iserver)
    for kind_name, (kind, default, initial) in KINDS.items():
        for i in range(COPIES):
            nid, qn, dn, desc = _names(ns, "stock", kind_name, i)
            (result,) = await iserver.isession.add_nodes([kind.item(stock, nid, qn, dn, desc, default)])
            result.StatusCode.check()
            if initial is not None:
                await iserver.aspace.write_attribute_value(nid, ua.AttributeIds.Value, initial)
            nid, qn, dn, desc = _names(ns, "lean", kind_name, i)
            accepted = factory.add(lean, nid, qn, dn, desc, kind, default, initial)
            assert accepted == (initial is not WRONG_TYPE)
    # a property below each "double" variable: a new parent each time
    rng = ua.Variant(ua.Range(Low=0.0, High=5.0), ua.VariantType.ExtensionObject)
    eu_kind = property_kind(ua.ObjectIds.Range, False)
    for folder in ("stock", "lean"):
        for i in range(COPIES):
            parent = _names(ns, folder, "double", i)[0]
            nid, qn, text = ua.NodeId(f"{parent.Identifier}/EURange", ns), ua.QualifiedName("EURange", 0), ua.LocalizedText("EURange")
            if folder == "stock":
                (result,) = await iserver.isession.add_nodes([eu_kind.item(parent, nid, qn, text, text, rng)])
                result.StatusCode.check()
            else:
                factory.add(parent, nid, qn, text, text, eu_kind, rng)
    assert factory.lean == (len(KINDS) + 1) * COPIES - len({kind for kind, _, _ in KINDS.values()})  # one prototype per kind
    return factory


def _ref_view(refs: list[ua.ReferenceDescription]) -> list[tuple]:
    """The references with the folder names (stock, lean) left out."""

    def same(text: object) -> object:
        return text.replace("stock/", "").replace("lean/", "").replace("stock", "F").replace("lean", "F") if isinstance(text, str) else text

    out = [
        (r.ReferenceTypeId, r.IsForward, same(r.NodeId.Identifier), r.NodeClass, same(r.BrowseName.Name), same(r.DisplayName.Text), r.TypeDefinition)
        for r in refs
    ]
    return sorted(out, key=repr)


def _same_value(a: ua.DataValue, b: ua.DataValue, attr: ua.AttributeIds) -> None:
    if attr == ua.AttributeIds.NodeId:
        assert a.Value.Value.Identifier.replace("stock/", "lean/") == b.Value.Value.Identifier
        return
    if attr == ua.AttributeIds.Description:
        assert a.Value.Value.Text.replace("stock", "lean") == b.Value.Value.Text
        return
    assert a.StatusCode == b.StatusCode, attr.name
    assert a.Value == b.Value, attr.name
    if attr == ua.AttributeIds.Value and a.SourceTimestamp == NOW:
        assert (b.SourceTimestamp, b.ServerTimestamp) == (a.SourceTimestamp, a.ServerTimestamp)
    assert (a.SourceTimestamp is None, a.ServerTimestamp is None) == (b.SourceTimestamp is None, b.ServerTimestamp is None), attr.name


async def test_every_attribute_and_reference_is_what_asyncua_add_nodes_builds() -> None:
    """For each kind, the variables built lean equal asyncua's: every attribute id (value, status,
    timestamps present or not), the node's references, the parent's reference to it."""
    server = Server()
    await server.init()
    ns = await server.register_namespace(NS)
    await _build_both(server, ns)
    aspace = server.iserver.aspace
    for kind_name in KINDS:
        for i in range(COPIES):
            s_nid, *_ = _names(ns, "stock", kind_name, i)
            l_nid, *_ = _names(ns, "lean", kind_name, i)
            node = aspace.get(l_nid)
            assert isinstance(node, LeanNodeData) == (i > 0 or kind_name == "mismatch"), kind_name
            assert list(node.attributes) == list(aspace.get(s_nid).attributes)
            for attr in ua.AttributeIds:
                _same_value(aspace.read_attribute_value(s_nid, attr), aspace.read_attribute_value(l_nid, attr), attr)
            assert _ref_view(aspace.get(s_nid).references) == _ref_view(node.references)
    for i in range(COPIES):
        s_nid, l_nid = (ua.NodeId(f"{folder}/double{i}/EURange", ns) for folder in ("stock", "lean"))
        assert isinstance(aspace.get(l_nid), LeanNodeData)
        for attr in ua.AttributeIds:
            if attr != ua.AttributeIds.NodeId:
                _same_value(aspace.read_attribute_value(s_nid, attr), aspace.read_attribute_value(l_nid, attr), attr)
        assert _ref_view(aspace.get(s_nid).references) == _ref_view(aspace.get(l_nid).references)
    stock_refs = _ref_view(aspace.get(ua.NodeId("stock", ns)).references)
    assert stock_refs == _ref_view(aspace.get(ua.NodeId("lean", ns)).references)


@pytest_asyncio.fixture
async def both(free_port: int) -> AsyncIterator[tuple[Server, Client, int]]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{free_port}")
    ns = await server.register_namespace(NS)
    await _build_both(server, ns)
    async with server:
        client = Client(f"opc.tcp://127.0.0.1:{free_port}", timeout=10)
        async with client:
            yield server, client, ns


async def test_a_client_sees_the_same_through_every_service(both: tuple[Server, Client, int]) -> None:
    """Read of every attribute, Browse, TranslateBrowsePath, Write with the access level, and a
    monitored item: the same answers for the lean variables as for asyncua's."""
    server, client, ns = both
    pairs = [(_names(ns, "stock", k, i)[0], _names(ns, "lean", k, i)[0]) for k in KINDS for i in range(COPIES)]
    attrs = list(ua.AttributeIds)
    for s_nid, l_nid in pairs:
        reads = [ua.ReadValueId(NodeId=n, AttributeId=a) for n in (s_nid, l_nid) for a in attrs]
        params = ua.ReadParameters(NodesToRead=reads, TimestampsToReturn=ua.TimestampsToReturn.Both)
        results = await client.uaclient.read(params)
        for attr, a, b in zip(attrs, results[: len(attrs)], results[len(attrs) :], strict=True):
            if attr == ua.AttributeIds.Value and a.SourceTimestamp != NOW:  # stamped when built
                a, b = a.Value, b.Value
                assert a == b
                continue
            _same_value(a, b, attr)
    for folder in ("stock", "lean"):
        refs = await client.get_node(ua.NodeId(folder, ns)).get_references(ua.ObjectIds.HierarchicalReferences, ua.BrowseDirection.Forward)
        assert len(refs) == len(KINDS) * COPIES
    stock_children = {r.BrowseName.Name for r in await client.get_node(ua.NodeId("stock", ns)).get_references()}
    assert stock_children == {r.BrowseName.Name for r in await client.get_node(ua.NodeId("lean", ns)).get_references()}
    found = await client.nodes.objects.get_child([f"{ns}:lean", f"{ns}:double2"])
    assert found.nodeid == ua.NodeId("lean/double2", ns)
    for folder, expect in (("stock", ua.StatusCodes.Good), ("lean", ua.StatusCodes.Good)):
        node = client.get_node(ua.NodeId(f"{folder}/analog_rw2", ns))
        await node.write_value(ua.DataValue(ua.Variant(7, ua.VariantType.Int16)))
        assert await node.read_value() == 7, expect
    for folder in ("stock", "lean"):  # read-only: asyncua refuses a write from a non-admin user only; both the same
        node = client.get_node(ua.NodeId(f"{folder}/double2", ns))
        with pytest.raises(ua.UaStatusCodeError):
            await node.write_value(ua.DataValue(ua.Variant("x", ua.VariantType.String)))
    seen: asyncio.Queue[object] = asyncio.Queue()

    class Handler:
        def datachange_notification(self, node: object, val: object, data: object) -> None:
            seen.put_nowait(val)

    sub = await client.create_subscription(50, Handler())
    await sub.subscribe_data_change(client.get_node(ua.NodeId("lean/double2", ns)))
    assert await asyncio.wait_for(seen.get(), 5) == 21.5
    await server.write_attribute_value(ua.NodeId("lean/double2", ns), ua.DataValue(ua.Variant(3.5, ua.VariantType.Double)))
    assert await asyncio.wait_for(seen.get(), 5) == 3.5
    await sub.delete()


async def test_a_change_to_one_lean_node_stays_on_that_node() -> None:
    """The kind's attributes are shared read-only: a write, a value callback or a monitored item
    on one node's attribute leaves its siblings as they were."""
    server = Server()
    await server.init()
    ns = await server.register_namespace(NS)
    await _build_both(server, ns)
    aspace = server.iserver.aspace
    one, two = _names(ns, "lean", "double", 1)[0], _names(ns, "lean", "double", 2)[0]
    level = ua.DataValue(ua.Variant(3, ua.VariantType.Byte))
    assert (await aspace.write_attribute_value(one, ua.AttributeIds.AccessLevel, level)).is_good()
    assert aspace.read_attribute_value(one, ua.AttributeIds.AccessLevel).Value.Value == 3
    assert aspace.read_attribute_value(two, ua.AttributeIds.AccessLevel).Value.Value == 1
    status, handle = aspace.add_datachange_callback(one, ua.AttributeIds.AccessLevel, lambda *a: None)
    assert status.is_good()
    assert aspace.get(two).attributes[ua.AttributeIds.AccessLevel].datachange_callbacks == {}
    aspace.delete_datachange_callback(handle)
    aspace.set_attribute_value_callback(one, ua.AttributeIds.Historizing, lambda nid, attr: ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
    assert aspace.read_attribute_value(one, ua.AttributeIds.Historizing).Value.Value is True
    assert aspace.read_attribute_value(two, ua.AttributeIds.Historizing).Value.Value is False
    name = ua.DataValue(ua.Variant(ua.LocalizedText("renamed"), ua.VariantType.LocalizedText))
    assert (await aspace.write_attribute_value(one, ua.AttributeIds.DisplayName, name)).is_good()
    parent_refs = {r.NodeId: r.DisplayName.Text for r in aspace.get(ua.NodeId("lean", ns)).references}
    assert (parent_refs[one], parent_refs[two]) == ("renamed", "double2")
    assert isinstance(aspace.get(two).attributes[ua.AttributeIds.DisplayName], LazyAttributeValue)
    assert type(aspace.get(two).attributes[ua.AttributeIds.AccessLevel]) is LeanAttributeValue


async def test_a_parent_made_again_gets_fresh_references() -> None:
    """A parent deleted and made again (a reload) under another name: its new children point back
    to the new parent, never to the old one's reference."""
    server = Server()
    await server.init()
    ns = await server.register_namespace(NS)
    factory = VariableFactory(server.iserver)
    kind, default, _ = KINDS["double"]
    parent = await _folder(server, ns, "p")
    for i in range(2):
        factory.add(parent, ua.NodeId(f"p/v{i}", ns), ua.QualifiedName(f"v{i}", ns), ua.LocalizedText("v"), ua.LocalizedText("v"), kind, default)
    await server.delete_nodes([server.get_node(parent)], recursive=True)
    again = await server.nodes.objects.add_object(parent, ua.QualifiedName("renamed", ns))
    factory.add(again.nodeid, ua.NodeId("p/v9", ns), ua.QualifiedName("v9", ns), ua.LocalizedText("v"), ua.LocalizedText("v"), kind, default)
    back = [r for r in server.iserver.aspace.get(ua.NodeId("p/v9", ns)).references if not r.IsForward]
    assert [(r.BrowseName.Name, r.NodeClass) for r in back] == [("renamed", ua.NodeClass.Object)]
    with pytest.raises(ua.UaStatusCodeError) as info:
        factory.add(again.nodeid, ua.NodeId("p/v9", ns), ua.QualifiedName("v9", ns), ua.LocalizedText("v"), ua.LocalizedText("v"), kind, default)
    assert info.value.code == ua.StatusCodes.BadNodeIdExists
    with pytest.raises(ua.UaStatusCodeError) as info:
        factory.add(ua.NodeId("nowhere", ns), ua.NodeId("p/x", ns), ua.QualifiedName("x", ns), ua.LocalizedText("x"), ua.LocalizedText("x"), kind, default)
    assert info.value.code == ua.StatusCodes.BadParentNodeIdInvalid


async def test_initial_value_is_what_write_attribute_value_stores() -> None:
    """A good value of the node's type is stored, another type is refused, a Bad status nulls the value."""
    server = Server()
    await server.init()
    ns = await server.register_namespace(NS)
    folder = await _folder(server, ns, "f")
    kind, default, _ = KINDS["double"]
    aspace = server.iserver.aspace
    for i, (dv, stored) in enumerate([(GOOD, GOOD), (WRONG_TYPE, None), (ua.DataValue(None), None), (WAITING, WAITING)]):
        item = kind.item(folder, ua.NodeId(f"v{i}", ns), ua.QualifiedName(f"v{i}", ns), ua.LocalizedText("v"), ua.LocalizedText("v"), default)
        (result,) = await server.iserver.isession.add_nodes([item])
        before = aspace.read_attribute_value(result.AddedNodeId, ua.AttributeIds.Value)
        status = await aspace.write_attribute_value(result.AddedNodeId, ua.AttributeIds.Value, dv)
        after = aspace.read_attribute_value(result.AddedNodeId, ua.AttributeIds.Value)
        assert initial_value(before, dv) == (after if status.is_good() else None)
        assert initial_value(before, dv) == stored


def test_a_bad_initial_value_is_stored_null_with_its_status() -> None:
    assert initial_value(ua.DataValue(ua.Variant(0.0, ua.VariantType.Double)), WAITING) == WAITING
    bad = ua.DataValue(ua.Variant(1.0, ua.VariantType.Double), StatusCode=ua.StatusCode(ua.StatusCodes.BadNoCommunication))
    assert initial_value(ua.DataValue(ua.Variant(0.0, ua.VariantType.Double)), bad).Value == ua.Variant(None, ua.VariantType.Null)


async def test_lean_variables_take_well_under_half_the_memory_of_asyncuas() -> None:
    """Bytes allocated per variable, lean against asyncua's AddNodes (300 of each)."""
    server = Server()
    await server.init()
    ns = await server.register_namespace(NS)
    kind, default, _ = KINDS["double"]
    per_node = {}
    for way in ("stock", "lean"):
        folder = await _folder(server, ns, way)
        factory = VariableFactory(server.iserver)
        names = [_names(ns, way, "v", i) for i in range(300)]
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for nid, qn, dn, desc in names:
            if way == "stock":
                server.iserver.node_mgt_service.add_nodes([kind.item(folder, nid, qn, dn, desc, default)])
            else:
                factory.add(folder, nid, qn, dn, desc, kind, default)
        per_node[way] = (tracemalloc.get_traced_memory()[0] - base) / len(names)
        tracemalloc.stop()
    assert per_node["lean"] < 0.4 * per_node["stock"], per_node


async def test_garbage_collection_is_paused_only_while_building() -> None:
    """Off while nodes are made, on while the builder yields to the event loop and afterwards; a
    collector that was off already stays off."""
    assert gc.isenabled()
    seen = []

    async def other() -> None:
        seen.append(gc.isenabled())

    with GcPause() as pause:
        assert not gc.isenabled()
        task = asyncio.create_task(other())
        await pause.yield_now()
        assert not gc.isenabled()
        await task
    assert gc.isenabled() and seen == [True]
    gc.disable()
    try:
        with GcPause() as pause:
            await pause.yield_now()
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
