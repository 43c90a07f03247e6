"""What the gateway's own fast code relies on inside asyncua (the lean variables, the publish
fast path), checked once at start: layouts of asyncua's objects rather than replaced attributes."""

from __future__ import annotations

import functools
import inspect

from asyncua import ua

from edge.opcua.asyncua_patches.targets import TARGETS, Target, _incompatible, _original

# -- lean variables (edge.opcua.lean_nodes) ------------------------------------------------------
NODE_LAYOUT: dict[str, tuple[str, ...]] = {
    "NodeData": ("nodeid", "attributes", "references", "call"),
    "AttributeValue": ("value", "value_callback", "value_setter", "datachange_callbacks"),
}
LAYOUT_TARGETS = (
    Target("AddressSpace", "read_attribute_value", ("nodeid", "attr"), False),
    Target("AddressSpace", "write_attribute_value", ("nodeid", "attr", "value"), True),
    Target("AddressSpace", "add_datachange_callback", ("nodeid", "attr", "callback"), False),
    Target("AddressSpace", "set_attribute_value_callback", ("nodeid", "attr", "callback"), False),
    Target("NodeManagementService", "_add_reference_no_check", ("sourcedata", "addref"), False),
)


@functools.cache
def check_node_layout() -> None:
    """Raise RuntimeError unless asyncua's ``NodeData`` and ``AttributeValue`` have exactly the
    fields ``edge.opcua.lean_nodes`` mirrors (``NODE_LAYOUT``) and the ``AddressSpace`` methods
    that use them look as they did (``LAYOUT_TARGETS``). Checked once."""
    from asyncua.server.address_space import AddressSpace, AttributeValue, NodeData, NodeManagementService

    for cls, obj in ((NodeData, NodeData(ua.NodeId())), (AttributeValue, AttributeValue(ua.DataValue()))):
        fields = tuple(vars(obj))
        if fields != NODE_LAYOUT[cls.__name__]:
            raise _incompatible(f"{cls.__name__} has the fields ({', '.join(fields)}), expected ({', '.join(NODE_LAYOUT[cls.__name__])})")
    for target in LAYOUT_TARGETS:
        _original(AddressSpace if target.owner == "AddressSpace" else NodeManagementService, target)


# -- the publish fast path (edge.opcua.fastpath, edge.opcua.wire): what it relies on, checked once ----
_FAST_PATH_FIELDS = {
    ua.Variant: ("Value", "VariantType", "Dimensions", "is_array"),
    ua.DataValue: ("Encoding", "Value", "StatusCode", "SourceTimestamp", "ServerTimestamp", "SourcePicoseconds", "ServerPicoseconds"),
    ua.MonitoredItemNotification: ("ClientHandle", "Value"),
    ua.DataChangeNotification: ("MonitoredItems", "DiagnosticInfos"),
    ua.ExtensionObject: ("TypeId", "Encoding", "Body"),
}
_FAST_PATH: list[bool] = []


def check_fast_path() -> None:
    """Check the asyncua 2.1.0 internals the publish fast path uses, once (RuntimeError otherwise):

    * ``fastpath.datavalue`` and ``wire.wire_item`` fill the slots of ``ua.Variant``,
      ``ua.DataValue`` and ``ua.MonitoredItemNotification`` themselves (without ``__init__`` /
      ``__post_init__``), and ``wire`` encodes them and ``DataChangeNotification`` in asyncua's
      layout: the fields, in this order;
    * ``fastpath.write_value`` sets ``AttributeValue.value`` and ``value_callback`` of a node of
      ``AddressSpace.get`` and calls its ``datachange_callbacks`` (handle -> callback), as
      ``AddressSpace.write_attribute_value`` does;
    * ``sampling.feed`` appends to ``InternalSubscription._triggered_datachanges`` (mid -> list),
      as ``InternalSubscription._enqueue_event`` does, when ``data.RevisedPublishingInterval`` > 0;
    * an ``ExtensionObject`` with a ``Body`` is written as its TypeId, 0x01 and the body.
    """
    if _FAST_PATH:
        return
    import dataclasses as dc

    from asyncua.server.address_space import AddressSpace, AttributeValue
    from asyncua.server.internal_subscription import InternalSubscription
    from asyncua.ua.ua_binary import extensionobject_to_binary, nodeid_to_binary

    for cls, names in _FAST_PATH_FIELDS.items():
        got = tuple(f.name for f in dc.fields(cls))
        slots_needed = cls in (ua.Variant, ua.DataValue, ua.MonitoredItemNotification)  # built slot by slot (fastpath, wire)
        if got != names or (slots_needed and not set(names) <= set(getattr(cls, "__slots__", ()))):
            raise _incompatible(f"{cls.__name__} has the fields {got}, expected {names}{' as slots' if slots_needed else ''}")
    attval = AttributeValue(ua.DataValue())
    if not {"value", "value_callback", "value_setter", "datachange_callbacks"} <= set(vars(attval)):
        raise _incompatible("AttributeValue keeps its value or callbacks elsewhere")
    for target in ("AddressSpace.get", "AddressSpace.write_attribute_value", "InternalSubscription._enqueue_event"):
        _original({"AddressSpace": AddressSpace, "InternalSubscription": InternalSubscription}[target.split(".")[0]], TARGETS[target])
    for needle in ("self._triggered_datachanges", "self.data"):
        if needle not in inspect.getsource(InternalSubscription.__init__):
            raise _incompatible(f"InternalSubscription no longer has {needle}")
    source = inspect.getsource(AddressSpace.write_attribute_value)
    if "attval.value = value" not in source or "datachange_callbacks.items()" not in source:
        raise _incompatible("AddressSpace.write_attribute_value no longer stores the value and calls datachange_callbacks")
    probe = ua.ExtensionObject(TypeId=ua.NodeId(811), Body=b"\x01\x02")
    if extensionobject_to_binary(probe) != nodeid_to_binary(ua.NodeId(811)) + b"\x01\x02\x00\x00\x00\x01\x02":
        raise _incompatible("an ExtensionObject's Body is no longer written as it is")
    _FAST_PATH.append(True)


# -- the columnar path (edge.opcua.columnar, edge.opcua.column_items): what it relies on, checked once ----
_COLUMNAR: list[bool] = []
_COLUMNAR_SOURCES = {
    # a Value attribute is read through ``attval.value`` (a ColumnValue builds it then)
    "AddressSpace.read_attribute_value": ("return attval.value",),
    # every queued list of _triggered_datachanges goes, item by item, into one DataChangeNotification
    # (a ColumnBlock stands in a list of its own under a negative key)
    "InternalSubscription._pop_triggered_datachanges": (
        "[item for sublist in self._triggered_datachanges.values() for item in sublist]",
        "self._triggered_datachanges = {}",
    ),
    # a client subscription has a publish request callback (the server's own ones have None)
    "InternalSubscription.__init__": ("self.pub_request_callback", "self._triggered_datachanges"),
    # the monitored item's fields the groups read
    "MonitoredItemData.__init__": ("self.client_handle", "self.mode", "self.queue_size"),
    "MonitoredItemService.__init__": ("self._monitored_items", "self._monitored_datachange"),
}


def check_columnar() -> None:
    """Check the asyncua 2.1.0 internals the columnar path uses, once (RuntimeError otherwise):
    each method in ``_COLUMNAR_SOURCES`` still has the lines named there. The publish fast path's
    own checks (``check_fast_path``) hold for it too."""
    if _COLUMNAR:
        return
    from asyncua.server.address_space import AddressSpace
    from asyncua.server.internal_subscription import InternalSubscription
    from asyncua.server.monitored_item_service import MonitoredItemData, MonitoredItemService

    owners = {"AddressSpace": AddressSpace, "InternalSubscription": InternalSubscription, "MonitoredItemData": MonitoredItemData}
    owners["MonitoredItemService"] = MonitoredItemService
    for name, needles in _COLUMNAR_SOURCES.items():
        owner, method = name.split(".")
        source = " ".join(inspect.getsource(getattr(owners[owner], method)).split())
        for needle in needles:
            if needle not in source:
                raise _incompatible(f"{name} no longer has `{needle}` (edge.opcua.columnar relies on it)")
    _COLUMNAR.append(True)
