"""Variables built in bulk, lean: what asyncua's AddNodes builds, in well under half the memory.

asyncua keeps every attribute of every node as an ``AttributeValue`` holding its own ``DataValue``
with its own ``Variant``: the gateway took 7.8 KB and 0.46 ms of CPU per variable that way. Most
of it is the same for every variable of a kind: the NodeClass, DataType, ValueRank, AccessLevel,
MinimumSamplingInterval, Historizing, WriteMask... and the two references every variable has
(HasTypeDefinition, and the inverse reference to its parent). Built here: about 3 KB and 75 µs.

``VariableFactory.add`` builds the first variable of each ``VariableKind`` through asyncua itself
(``asyncua_patches.add_node``), then takes that node as the prototype of the others:

* the constant attributes of the kind share the prototype's ``DataValue`` objects (asyncua never
  changes a stored DataValue in place; a write replaces it), each held by a per-node
  ``LeanAttributeValue`` (``__slots__``, 64 bytes, its data-change callbacks dict made on first
  use), so a write, a value callback or a monitored item on one node's attribute stays that node's;
* NodeId, BrowseName, DisplayName and Description keep the node's own object and become a
  ``DataValue`` when first read (``LazyAttributeValue``);
* the Value is asyncua's own ``AttributeValue`` (the publish path and monitored items see what
  they always saw), stamped as asyncua's AddNodes stamps it;
* the node is a ``LeanNodeData`` (``__slots__``: nodeid, attributes, references, call); its
  HasTypeDefinition reference is the prototype's, its reference back to the parent is shared by
  the parent's children of that reference type (made once per parent by asyncua's own
  ``_add_reference_no_check``); the parent's forward reference is the node's own.

Reading, browsing, translating browse paths, writing (with the access checks), history and
monitored items go through asyncua's services unchanged. ``tests/edge/opcua/test_lean_nodes.py``
compares every attribute and reference of a lean variable with one built by asyncua's AddNodes;
the asyncua layout this relies on is checked by ``asyncua_patches.check_node_layout`` (pinned by
``tests/edge/opcua/test_asyncua_patches.py``).
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.server.address_space import AttributeValue

from edge.opcua import asyncua_patches

__all__ = ["GcPause", "LazyAttributeValue", "LeanAttributeValue", "LeanNodeData", "VariableFactory", "VariableKind", "initial_value"]

_A = ua.AttributeIds
# the attributes that differ from node to node (the rest are the kind's); their variant types
_OWN = {_A.NodeId: ua.VariantType.NodeId, _A.BrowseName: ua.VariantType.QualifiedName, _A.DisplayName: ua.VariantType.LocalizedText}
_OWN[_A.Description] = ua.VariantType.LocalizedText
_HAS_TYPE_DEFINITION = ua.NodeId(ua.ObjectIds.HasTypeDefinition)


class LeanAttributeValue:
    """One attribute of one node, as asyncua's ``AttributeValue`` (same fields) in ``__slots__``."""

    __slots__ = ("_callbacks", "_value", "value_callback", "value_setter")

    def __init__(self, value: ua.DataValue | None) -> None:
        self._value = value
        self.value_callback: Any = None
        self.value_setter: Any = None
        self._callbacks: dict[int, Any] | None = None

    @property
    def value(self) -> ua.DataValue | None:
        return self._value

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._value = value

    @property
    def datachange_callbacks(self) -> dict[int, Any]:
        """The monitored items' callbacks on this attribute (the dict is made when first asked for)."""
        if self._callbacks is None:
            self._callbacks = {}
        return self._callbacks

    @datachange_callbacks.setter
    def datachange_callbacks(self, callbacks: dict[int, Any]) -> None:
        self._callbacks = callbacks

    def __repr__(self) -> str:
        return f"AttributeValue({self.value_callback or self.value})"


class LazyAttributeValue(LeanAttributeValue):
    """An attribute whose DataValue (``DataValue(Variant(raw, vtype))``, as asyncua builds it) is
    made when it is first read; until then it holds only the node's own object (*raw*)."""

    __slots__ = ("_vtype",)

    def __init__(self, raw: Any, vtype: ua.VariantType) -> None:
        self._value = raw
        self.value_callback = None
        self.value_setter = None
        self._callbacks = None
        self._vtype: ua.VariantType | None = vtype

    @property
    def value(self) -> ua.DataValue | None:
        if self._vtype is not None:
            self._value, self._vtype = ua.DataValue(ua.Variant(self._value, self._vtype)), None
        return self._value

    @value.setter
    def value(self, value: ua.DataValue | None) -> None:
        self._value, self._vtype = value, None


class LeanNodeData:
    """asyncua's ``NodeData`` (same fields) in ``__slots__``."""

    __slots__ = ("attributes", "call", "nodeid", "references")

    def __init__(self, nodeid: ua.NodeId, attributes: dict[ua.AttributeIds, Any], references: list[ua.ReferenceDescription]) -> None:
        self.nodeid = nodeid
        self.attributes = attributes
        self.references = references
        self.call: Any = None

    def __repr__(self) -> str:
        return f"NodeData(id:{self.nodeid}, attrs:{self.attributes}, refs:{self.references})"


@dataclass(frozen=True, slots=True)
class VariableKind:
    """What every variable of a kind has in common: its VariableAttributes apart from the names,
    description and value, its reference from the parent and its type definition."""

    ref_type: ua.NodeId
    type_definition: ua.NodeId
    data_type: ua.NodeId
    value_rank: int
    array_dimensions: tuple[int, ...] | None  # None: not specified (asyncua's default, an empty list)
    access_level: int
    user_access_level: int
    minimum_sampling_interval: float = 0
    historizing: bool = True  # VariableAttributes' defaults
    write_mask: int = 0
    user_write_mask: int = 0

    def item(
        self, parent: ua.NodeId, nid: ua.NodeId, name: ua.QualifiedName, display: ua.LocalizedText, description: ua.LocalizedText, value: ua.Variant
    ) -> ua.AddNodesItem:
        """The AddNodesItem asyncua's AddNodes takes for this variable."""
        attrs = ua.VariableAttributes(
            DisplayName=display, Description=description, Value=value, DataType=self.data_type, ValueRank=self.value_rank,
            AccessLevel=self.access_level, UserAccessLevel=self.user_access_level, MinimumSamplingInterval=self.minimum_sampling_interval,
            Historizing=self.historizing, WriteMask=self.write_mask, UserWriteMask=self.user_write_mask,
        )  # fmt: skip
        if self.array_dimensions is not None:
            attrs.ArrayDimensions = list(self.array_dimensions)
        return ua.AddNodesItem(
            ParentNodeId=parent, ReferenceTypeId=self.ref_type, RequestedNewNodeId=nid, BrowseName=name,
            NodeClass=ua.NodeClass.Variable, NodeAttributes=attrs, TypeDefinition=self.type_definition,
        )  # fmt: skip


_SHARED, _VALUE, _NODE_ID, _BROWSE_NAME, _DISPLAY_NAME, _DESCRIPTION = range(6)
_CODES = {_A.Value: _VALUE, _A.NodeId: _NODE_ID, _A.BrowseName: _BROWSE_NAME, _A.DisplayName: _DISPLAY_NAME, _A.Description: _DESCRIPTION}
_NULL = ua.Variant(None, ua.VariantType.Null)  # never changed in place (asyncua replaces variants, never edits them)


class _Typed(dict[ua.VariantType, ua.DataValue]):
    """A DataValue holding a value of each variant type (what ``initial_value`` compares against)."""

    def __missing__(self, vtype: ua.VariantType) -> ua.DataValue:
        self[vtype] = dv = ua.DataValue(ua.Variant([], vtype, is_array=True))
        return dv


_TYPED = _Typed()


@dataclass(slots=True)
class _Prototype:
    plan: tuple[tuple[ua.AttributeIds, int, ua.DataValue | None], ...]  # (attribute, its code, the kind's DataValue if shared), in asyncua's order
    references: tuple[ua.ReferenceDescription | None, ...]  # the node's references; None: the one back to its parent


def initial_value(current: ua.DataValue | None, dv: ua.DataValue) -> ua.DataValue | None:
    """What asyncua's ``AddressSpace.write_attribute_value`` stores when *dv* is written to a Value
    now holding *current* (None: it refuses the write with BadTypeMismatch). A Bad status nulls the
    value; otherwise the variant type must be the node's. (asyncua looks a null value's type up in
    the DataType attribute; the factory never creates a variable holding null.)"""
    if dv.StatusCode is not None and dv.StatusCode.is_bad():
        return ua.DataValue(
            Value=_NULL, StatusCode=dv.StatusCode, SourceTimestamp=dv.SourceTimestamp, ServerTimestamp=dv.ServerTimestamp,
            SourcePicoseconds=dv.SourcePicoseconds, ServerPicoseconds=dv.ServerPicoseconds,
        )  # fmt: skip
    if current is None or current.Value is None or dv.Value is None or current.Value.VariantType in (dv.Value.VariantType, ua.VariantType.Null):
        return dv
    return None


class VariableFactory:
    """Adds variables to one asyncua server's address space (see the module docstring)."""

    def __init__(self, iserver: Any) -> None:
        asyncua_patches.check_node_layout()
        self.iserver = iserver
        self.aspace = iserver.aspace
        self._prototypes: dict[VariableKind, _Prototype] = {}
        # (parent, ref type) -> (the parent's NodeData then, a child's reference back to it)
        self._parent_refs: dict[tuple[ua.NodeId, ua.NodeId], tuple[Any, ua.ReferenceDescription]] = {}
        self.lean = 0  # variables built from a prototype (the rest went through asyncua)
        self._last: tuple[Any, ...] | None = None  # (kind, parent, prototype, parent's NodeData, reference back): the last add's

    def add(
        self, parent: ua.NodeId, nid: ua.NodeId, name: ua.QualifiedName, display: ua.LocalizedText, description: ua.LocalizedText,
        kind: VariableKind, default: ua.Variant, initial: ua.DataValue | None = None,
    ) -> bool:  # fmt: skip
        """Add the variable *nid* below *parent*, holding *default* (stamped now) and then *initial*
        as written by the server; False when *initial* was refused (the node keeps *default*).
        Raises ``UaStatusCodeError`` as asyncua's AddNodes refuses (BadNodeIdExists,
        BadParentNodeIdInvalid, BadTypeDefinitionInvalid...)."""
        aspace = self.aspace
        last = self._last
        if last is not None and last[0] is kind and last[1] is parent:  # the usual case: siblings of one kind, in a row
            proto, seen, back = last[2], last[3], last[4]
        else:
            proto = self._prototypes.get(kind)
            seen, back = self._parent_refs.get((parent, kind.ref_type), (None, None))
            self._last = (kind, parent, proto, seen, back)
        parent_data = aspace.get(parent)
        if proto is None:
            self._last = None
            self._through_asyncua(parent, nid, name, display, description, kind, default)
            if initial is None:
                return True
            value = aspace.get(nid).attributes[_A.Value]
            stored = initial_value(value.value, initial)
            if stored is not None:
                value.value = stored
            return stored is not None
        if seen is not parent_data or back is None:  # a new parent (or one deleted and made again: another NodeData)
            if parent_data is None:
                raise ua.UaStatusCodeError(ua.StatusCodes.BadParentNodeIdInvalid)
            back = self._back_reference(parent, kind.ref_type)
            self._parent_refs[(parent, kind.ref_type)] = (parent_data, back)
            self._last = (kind, parent, proto, parent_data, back)
        if nid in aspace:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadNodeIdExists)
        stored = None if initial is None else initial_value(_TYPED[default.VariantType], initial)
        attributes: dict[ua.AttributeIds, Any] = {}
        accepted = True
        for attr, code, shared in proto.plan:
            if code == _SHARED:
                attributes[attr] = LeanAttributeValue(shared)
            elif code == _VALUE:
                if stored is None:
                    now = datetime.now(UTC)
                    stored = ua.DataValue(default, SourceTimestamp=now, ServerTimestamp=now if aspace.force_server_timestamp else None)
                    accepted = initial is None
                else:
                    accepted = True
                attributes[attr] = AttributeValue(stored)
            else:
                own = nid if code == _NODE_ID else name if code == _BROWSE_NAME else display if code == _DISPLAY_NAME else description
                attributes[attr] = LazyAttributeValue(own, _OWN[attr])
        aspace[nid] = LeanNodeData(nid, attributes, [back if r is None else r for r in proto.references])
        parent_data.references.append(
            ua.ReferenceDescription(
                ReferenceTypeId=kind.ref_type, IsForward=True, NodeId=nid, BrowseName=name, DisplayName=display,
                NodeClass=ua.NodeClass.Variable, TypeDefinition=kind.type_definition,
            )
        )  # fmt: skip
        self.lean += 1
        return accepted

    def _back_reference(self, parent: ua.NodeId, ref_type: ua.NodeId) -> ua.ReferenceDescription:
        """The reference from a new child back to *parent*, as asyncua's AddNodes makes it
        (``NodeManagementService._add_reference_no_check``: the parent's class, names and type)."""
        scratch = LeanNodeData(ua.NodeId(), {}, [])
        item = ua.AddReferencesItem(ReferenceTypeId=ref_type, IsForward=False, TargetNodeId=parent, TargetNodeClass=ua.NodeClass.Unspecified)
        status = self.iserver.node_mgt_service._add_reference_no_check(scratch, item)
        if not status.is_good() or len(scratch.references) != 1:
            raise ua.UaStatusCodeError(status.value if not status.is_good() else ua.StatusCodes.BadReferenceNotAllowed)
        return scratch.references[0]  # type: ignore[no-any-return]

    def _through_asyncua(
        self, parent: ua.NodeId, nid: ua.NodeId, name: ua.QualifiedName, display: ua.LocalizedText, description: ua.LocalizedText,
        kind: VariableKind, default: ua.Variant,
    ) -> None:  # fmt: skip
        """Build the node with asyncua and keep it as the prototype of its kind (and the source of
        the reference back to *parent*)."""
        asyncua_patches.add_node(self.iserver, kind.item(parent, nid, name, display, description, default))
        node = self.aspace.get(nid)
        refs: list[ua.ReferenceDescription | None] = []
        for ref in node.references:
            if not ref.IsForward and ref.NodeId == parent and ref.ReferenceTypeId == kind.ref_type:
                self._parent_refs[(parent, kind.ref_type)] = (self.aspace.get(parent), ref)
                refs.append(None)
            elif ref.IsForward and ref.ReferenceTypeId == _HAS_TYPE_DEFINITION:
                refs.append(ref)
            else:  # a reference the prototype cannot share: build every node of this kind through asyncua
                return
        if kind not in self._prototypes:
            plan = tuple((a, _CODES.get(a, _SHARED), v.value if a not in _CODES else None) for a, v in node.attributes.items())
            self._prototypes[kind] = _Prototype(plan, tuple(refs))


class GcPause:
    """Garbage collection off while nodes are built in bulk, on again whenever the builder yields
    to the event loop (``await pause.yield_now()``) and at the end: every object made is part of a
    node that lives on, so a collection in between would only scan them (half the build time at
    20,000 variables). Nothing else runs while it is off. Left as it was if it was off already."""

    def __enter__(self) -> GcPause:
        self.was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()

    async def yield_now(self) -> None:
        if self.was_enabled:
            gc.enable()
        try:
            await asyncio.sleep(0)
        finally:
            if self.was_enabled:
                gc.disable()
