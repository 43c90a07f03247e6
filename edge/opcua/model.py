"""The information model: object types and the instance tree built from the registry.

Types (``Types/ObjectTypes/BaseObjectType/...``, NodeIds ``types:<Type>[/<member>]``):

* ``DeviceType``: LinkState, LastError, ReadsOk, ReadsFailed, Reconnects, PollCycleTime, plus any
  number of tag variables (placeholder ``<Tag>``).
* ``AssetType``: AnomalyScore, Alarm, plus any number of ``TwinSignalType`` signals (``<Signal>``).
* ``TwinSignalType``: Measured, Estimate, Forecast (property ForecastHorizon, seconds), Residual,
  AnomalyScore.

Instances (string NodeIds ``<gateway>/<browse path>``, so they depend only on their own path):
``Devices/<device>`` (DeviceType) with its tags (a multi-unit device: an object per unit,
``Devices/<device>/<unit>``, holding that unit's tags), ``Assets/<asset>`` (AssetType) with
``<signal>`` (TwinSignalType) objects, ``Diagnostics/<device>/<counter>`` and
``Diagnostics/Gateway/<leaf>``. A device's diagnostics are shown twice, at
``Diagnostics/<device>/<leaf>`` (the registry's path) and as members of the device object at
``Devices/<device>/<leaf>``; both nodes are fed from the same registry key.

Variables with a range from the config are ``AnalogItemType`` (EURange, EngineeringUnits);
the others are ``BaseDataVariableType`` (with EngineeringUnits when the unit is known).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncua import Server, ua

from edge.core import names
from edge.core.health import DEVICE_FIELDS
from edge.core.names import node_id_text
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua import asyncua_patches
from edge.opcua.deletion import delete_subtrees
from edge.opcua.lean_nodes import GcPause, VariableFactory, VariableKind
from edge.opcua.values import NUMERIC, VARIANT_TYPES, ZERO, access_level, eu_information, to_datavalue

GROUP_FOLDERS = frozenset(names.FOLDERS)
TWIN_OUTPUTS = tuple(names.SIGNAL_OUTPUTS.values())

# (member, data type, units, description)
DEVICE_MEMBERS = tuple((leaf, dtype, unit, desc) for leaf, dtype, unit, desc in DEVICE_FIELDS)
_ASSET, _SIGNAL = names.ASSET_OUTPUTS, names.SIGNAL_OUTPUTS
ASSET_MEMBERS = (
    (_ASSET["anomaly_score"], "float64", "1", "largest anomaly score of the asset's signals (about 1 when normal)"),
    (_ASSET["alarm"], "bool", None, "anomaly score above the asset's alarm threshold"),
)
SIGNAL_MEMBERS = (
    (_SIGNAL["measured"], "float64", None, "the measured device value the twin follows"),
    (_SIGNAL["estimate"], "float64", None, "Kalman estimate of the signal"),
    (_SIGNAL["forecast"], "float64", None, "forecast ForecastHorizon seconds ahead"),
    (_SIGNAL["residual"], "float64", None, "measured minus one-step prediction"),
    (_SIGNAL["anomaly_score"], "float64", "1", "EWMA of the normalized innovation squared (about 1 when normal)"),
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the registry does not say about the model: descriptions and forecast horizons."""

    device_descriptions: Mapping[str, str] = field(default_factory=dict)
    asset_descriptions: Mapping[str, str] = field(default_factory=dict)
    forecast_horizons_s: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (asset, signal)
    unit_ids: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (device, unit folder) of a multi-unit device

    @classmethod
    def from_config(cls, cfg: Any) -> ModelInfo:
        from edge.config.units import units_of

        return cls(
            device_descriptions={d.name: d.description for d in cfg.devices if d.description},
            asset_descriptions={a.name: a.description for a in cfg.assets if a.description},
            forecast_horizons_s={(a.name, s.name): s.forecast_horizon_s for a in cfg.assets for s in a.signals},
            unit_ids={(d.name, folder): uid for d in cfg.devices for folder, uid, _ in units_of(d)},
        )


def type_id_text(type_name: str, member: str | None = None) -> str:
    return f"types:{type_name}" if member is None else f"types:{type_name}/{member}"


def container_type(prefix: tuple[str, ...], leaf_depths: set[int]) -> str:
    """The type of the object at *prefix*; *leaf_depths* are the path lengths of variables below it."""
    if len(prefix) == 1 and prefix[0] in GROUP_FOLDERS:
        return "FolderType"
    if len(prefix) == 2 and prefix[0] == names.DEVICES:
        return "DeviceType"
    if len(prefix) == 2 and prefix[0] == names.ASSETS:
        return "AssetType"
    if len(prefix) == 3 and prefix[0] == names.ASSETS and 4 in leaf_depths:
        return "TwinSignalType"
    if len(prefix) == 2 and prefix[0] == names.DIAGNOSTICS:
        return "FolderType"
    return "BaseObjectType"


_FOLDER = ua.NodeId(ua.ObjectIds.FolderType)
_BASE_OBJECT = ua.NodeId(ua.ObjectIds.BaseObjectType)
_HAS_COMPONENT = ua.NodeId(ua.ObjectIds.HasComponent)
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
_ORGANIZES = ua.NodeId(ua.ObjectIds.Organizes)
YIELD_EVERY = 500  # variables added between two yields to the event loop (about 10 ms of work)


class ModelBuilder:
    """Creates the types and the instance tree in an asyncua server (before it starts)."""

    def __init__(self, server: Server, ns: int, gateway: str, registry: TagRegistry, info: ModelInfo) -> None:
        self.server = server
        self.ns = ns
        self.gateway = gateway
        self.registry = registry
        self.info = info
        self.session = server.iserver.isession
        self.factory = VariableFactory(server.iserver)
        self.types: dict[str, ua.NodeId] = {"FolderType": _FOLDER, "BaseObjectType": _BASE_OBJECT}
        self.nodes: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}  # registry key -> its variable
        self.targets: dict[str, list[tuple[ua.NodeId, ua.VariantType]]] = {}  # registry key -> every node showing it
        self.writable: dict[ua.NodeId, TagInfo] = {}
        self.value_texts: dict[str, list[tuple[ua.NodeId, dict[int, str]]]] = {}  # registry key -> ValueAsText of its state variables
        self._variable_paths: set[tuple[str, ...]] = set()
        self.containers: dict[tuple[str, ...], tuple[ua.NodeId, str]] = {}  # path -> (object, its type name)
        self._mirrors: set[tuple[str, ...]] = set()
        self._paths: dict[ua.NodeId, tuple[str, ...]] = {}  # variable -> its path (for deletion)
        self.variables: dict[ua.NodeId, str] = {}  # every variable (mirrors too) -> its registry key (the write gate's map)

    def nid(self, path: Sequence[str]) -> ua.NodeId:
        return ua.NodeId(node_id_text(self.gateway, path), self.ns)

    def qn(self, name: str) -> ua.QualifiedName:
        return ua.QualifiedName(name, self.ns)

    # -- low-level node creation (explicit attributes; asyncua's helpers guess too much) ----------
    async def _add(self, item: ua.AddNodesItem) -> ua.NodeId:
        # constant time per node, however many siblings (asyncua's AddNodes scans them: O(N²))
        return asyncua_patches.add_node(self.server.iserver, item)

    async def add_object(self, parent: ua.NodeId, nid: ua.NodeId, name: str, type_id: ua.NodeId, *, description: str, ref: ua.NodeId) -> ua.NodeId:
        attrs = ua.ObjectAttributes(
            DisplayName=ua.LocalizedText(name), Description=ua.LocalizedText(description), EventNotifier=0, WriteMask=0, UserWriteMask=0
        )
        item = ua.AddNodesItem(
            ParentNodeId=parent, ReferenceTypeId=ref, RequestedNewNodeId=nid, BrowseName=self.qn(name),
            NodeClass=ua.NodeClass.Object, NodeAttributes=attrs, TypeDefinition=type_id,
        )  # fmt: skip
        return await self._add(item)

    def variable(
        self, parent: ua.NodeId, nid: ua.NodeId, name: str, *, data_type: str, description: str, writable: bool = False,
        type_id: int = ua.ObjectIds.BaseDataVariableType, value: ua.Variant | None = None, property_: bool = False,
        qname: ua.QualifiedName | None = None, array: bool = False, min_sampling_ms: float = 0.0, initial: ua.DataValue | None = None,
    ) -> ua.NodeId:  # fmt: skip
        """Add a variable (no await: built lean, ``edge.opcua.lean_nodes``), showing *initial* if given."""
        vtype = VARIANT_TYPES[data_type]
        if value is None:
            value = ua.Variant([], vtype, is_array=True) if array else zero_variant(data_type)
        kind = variable_kind(vtype, writable, array, float(min_sampling_ms), ua.ObjectIds.PropertyType if property_ else type_id, property_)
        self.factory.add(parent, nid, qname or self.qn(name), ua.LocalizedText(name), ua.LocalizedText(description), kind, value, initial)
        return nid

    async def add_variable(self, parent: ua.NodeId, nid: ua.NodeId, name: str, **kw: Any) -> ua.NodeId:
        return self.variable(parent, nid, name, **kw)

    def add_property(self, parent: ua.NodeId, nid: ua.NodeId, name: str, value: ua.Variant, data_type: int, *, array: bool = False) -> None:
        """A read-only property (namespace 0 browse name, as the standard's properties are)."""
        qname, text = ua.QualifiedName(name, 0), ua.LocalizedText(name)
        self.factory.add(parent, nid, qname, text, text, property_kind(data_type, array), value)

    def add_struct_property(self, parent: ua.NodeId, nid: ua.NodeId, name: str, value: Any, data_type: int) -> None:
        self.add_property(parent, nid, name, ua.Variant(value, ua.VariantType.ExtensionObject), data_type)

    async def _rule(self, nid: ua.NodeId, rule: int) -> None:
        await self.server.get_node(nid).add_reference(ua.NodeId(rule), ua.NodeId(ua.ObjectIds.HasModellingRule), True, False)

    # -- types -------------------------------------------------------------------------------
    async def build_types(self) -> None:
        base = ua.NodeId(ua.ObjectIds.BaseObjectType)
        specs = {
            "DeviceType": ("a southbound device: its tags, link state and counters", DEVICE_MEMBERS),
            "TwinSignalType": ("one signal of a digital twin: measured, estimated and forecast values", SIGNAL_MEMBERS),
            "AssetType": ("a plant asset with a digital twin: its signals, anomaly score and alarm", ASSET_MEMBERS),
        }
        for name, (description, members) in specs.items():
            tid = ua.NodeId(type_id_text(name), self.ns)
            attrs = ua.ObjectTypeAttributes(DisplayName=ua.LocalizedText(name), Description=ua.LocalizedText(description), IsAbstract=False)
            item = ua.AddNodesItem(
                ParentNodeId=base, ReferenceTypeId=ua.NodeId(ua.ObjectIds.HasSubtype), RequestedNewNodeId=tid, BrowseName=self.qn(name),
                NodeClass=ua.NodeClass.ObjectType, NodeAttributes=attrs,
            )  # fmt: skip
            self.types[name] = await self._add(item)
            for member, dtype, unit, desc in members:
                mid = ua.NodeId(type_id_text(name, member), self.ns)
                await self.add_variable(tid, mid, member, data_type=dtype, description=desc)
                await self._rule(mid, ua.ObjectIds.ModellingRule_Mandatory)
                if unit is not None:
                    eu = ua.NodeId(type_id_text(name, f"{member}/EngineeringUnits"), self.ns)
                    self.add_struct_property(mid, eu, "EngineeringUnits", eu_information(unit), ua.ObjectIds.EUInformation)
                    await self._rule(eu, ua.ObjectIds.ModellingRule_Mandatory)
                if name == "TwinSignalType" and member == "Forecast":
                    hid = ua.NodeId(type_id_text(name, "Forecast/ForecastHorizon"), self.ns)
                    await self.add_variable(mid, hid, "ForecastHorizon", data_type="float64", description="forecast horizon in seconds", property_=True)
                    await self._rule(hid, ua.ObjectIds.ModellingRule_Mandatory)
        # placeholders: "any number of these"
        tag = ua.NodeId(type_id_text("DeviceType", "<Tag>"), self.ns)
        await self.add_variable(self.types["DeviceType"], tag, "<Tag>", data_type="float64", description="a tag read from the device")
        await self._rule(tag, ua.ObjectIds.ModellingRule_OptionalPlaceholder)
        sig = ua.NodeId(type_id_text("AssetType", "<Signal>"), self.ns)
        await self.add_object(self.types["AssetType"], sig, "<Signal>", self.types["TwinSignalType"], description="a signal of the twin", ref=_HAS_COMPONENT)
        await self._rule(sig, ua.ObjectIds.ModellingRule_OptionalPlaceholder)

    # -- instances ---------------------------------------------------------------------------
    async def build_instances(self) -> None:
        objects = ua.NodeId(ua.ObjectIds.ObjectsFolder)
        root = await self.add_object(objects, self.nid(()), self.gateway, _BASE_OBJECT, description=f"edgetwin gateway {self.gateway}", ref=_ORGANIZES)
        self.containers[()] = (root, "BaseObjectType")
        await self.add_infos(self.registry.infos())

    async def add_infos(self, infos: Sequence[TagInfo]) -> None:
        """Create the variables of *infos* (already in the registry) and the objects above them
        that do not exist yet; then the device-diagnostics mirrors whose device object now exists.
        NodeIds follow the browse paths, so a variable removed and added again gets its old NodeId."""
        depths: dict[tuple[str, ...], set[int]] = {}
        for info in self.registry.infos():
            for d in range(1, len(info.path)):
                depths.setdefault(info.path[:d], set()).add(len(info.path))
        containers = self.containers
        with GcPause() as pause:
            for i, info in enumerate(infos):
                if i % YIELD_EVERY == YIELD_EVERY - 1:  # adding nodes never waits: let a running server's clients and devices in between
                    await pause.yield_now()
                above = containers.get(info.path[:-1])
                self._variable(above[0] if above is not None else await self._objects_above(info.path, depths), info)
            # a device's diagnostics are members of its DeviceType object too: mirrored variables at
            # Devices/<device>/<leaf> (NodeIds still follow the browse path), fed by the same registry key
            for info in self.registry.infos():
                mirror = names.mirror_of(info.path)
                if mirror is not None and mirror[:-1] in containers and mirror not in self._mirrors:
                    self._mirrors.add(mirror)
                    self._variable(containers[mirror[:-1]][0], info, path=mirror)
            for info in infos:
                if len(info.path) == 4 and info.path[0] == names.ASSETS and info.path[3] == names.SIGNAL_OUTPUTS["forecast"]:
                    self._add_horizon(info.path[:3])

    async def _objects_above(self, path: tuple[str, ...], depths: Mapping[tuple[str, ...], set[int]]) -> ua.NodeId:
        """The object holding the variable at *path*, created with those above it that do not exist yet."""
        parent, parent_type = self.containers[()]
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in self.containers:
                kind = container_type(prefix, depths[prefix])
                ref = _ORGANIZES if parent_type == "FolderType" else _HAS_COMPONENT
                nid = await self.add_object(parent, self.nid(prefix), prefix[-1], self.types[kind], description=self._describe(prefix, kind), ref=ref)
                self.containers[prefix] = (nid, kind)
            parent, parent_type = self.containers[prefix]
        return parent

    async def remove_keys(self, keys: Sequence[str]) -> None:
        """Delete every node showing *keys* (the variable, its mirror, their properties)."""
        paths = []
        for key in keys:
            self.value_texts.pop(key, None)
            for nid, _ in self.targets.pop(key, ()):
                path = self._paths.pop(nid, None)
                self.variables.pop(nid, None)
                if path is not None:
                    paths.append(path)
                    self._mirrors.discard(path)
                    self._variable_paths.discard(path)
                self.writable.pop(nid, None)
            self.nodes.pop(key, None)
        await delete_subtrees(self.server, [self.nid(p) for p in paths])

    async def prune(self) -> list[tuple[str, ...]]:
        """Delete the objects below the gateway that no longer hold a registry variable (a removed
        device, asset, signal, model or detector); return their paths."""
        kept = {info.path[:d] for info in self.registry.infos() for d in range(len(info.path))}
        empty = sorted((p for p in self.containers if p not in kept), key=len)
        for prefix in empty:
            for targets in list(self.targets.values()):  # mirrors inside it
                for nid, vtype in [t for t in targets if self._paths.get(t[0], ())[: len(prefix)] == prefix]:
                    self._mirrors.discard(self._paths.pop(nid))
                    self.variables.pop(nid, None)
                    targets.remove((nid, vtype))
            del self.containers[prefix]
        tops = [p for p in empty if not any(p[:d] in empty for d in range(len(p)))]  # the rest is below these
        await delete_subtrees(self.server, [self.nid(p) for p in tops])
        return empty

    def _add_horizon(self, prefix: tuple[str, ...]) -> None:
        horizon = self.info.forecast_horizons_s.get((prefix[1], prefix[2]))
        forecast = names.signal_output_path(prefix[1], prefix[2], "forecast")
        if horizon is None or forecast not in self._variable_paths:
            return
        self.variable(
            self.nid(forecast), self.nid((*forecast, "ForecastHorizon")), "ForecastHorizon", data_type="float64",
            description="forecast horizon in seconds", property_=True, value=ua.Variant(float(horizon), ua.VariantType.Double),
        )  # fmt: skip

    def _describe(self, prefix: tuple[str, ...], kind: str) -> str:
        if kind == "DeviceType":
            return self.info.device_descriptions.get(prefix[1]) or f"device {prefix[1]}"
        if kind == "AssetType":
            return self.info.asset_descriptions.get(prefix[1]) or f"asset {prefix[1]}"
        if kind == "TwinSignalType":
            return f"twin signal {prefix[2]} of asset {prefix[1]}"
        if len(prefix) == 3 and prefix[0] == names.DEVICES and (prefix[1], prefix[2]) in self.info.unit_ids:
            return f"unit {self.info.unit_ids[(prefix[1], prefix[2])]} of device {prefix[1]}"
        if prefix == names.GATEWAY_DIAGNOSTICS_PATH:
            return "gateway diagnostics: version, kernel, tick time, OPC UA sessions and subscriptions, history"
        if prefix == names.ASSET_DIAGNOSTICS_PATH:
            return "twin diagnostics per asset: tick time"
        if prefix[:-1] == names.ASSET_DIAGNOSTICS_PATH:
            return f"twin diagnostics of asset {prefix[-1]}"
        return {names.DEVICES: "southbound devices", names.ASSETS: "assets with digital twins", names.DIAGNOSTICS: "link state and counters"}.get(
            prefix[-1], "/".join(prefix)
        )

    def _variable(self, parent: ua.NodeId, info: TagInfo, path: tuple[str, ...] | None = None) -> None:
        """Create the variable of *info* (or a mirror of it at *path*) showing its latest sample."""
        mirror = path is not None
        path = path or info.path
        nid = self.nid(path)
        analog = info.data_type in NUMERIC and not info.array and info.low is not None and info.high is not None and not info.states
        type_id = ua.ObjectIds.MultiStateValueDiscreteType if info.states else ua.ObjectIds.AnalogItemType if analog else ua.ObjectIds.BaseDataVariableType
        vtype = VARIANT_TYPES[info.data_type]
        self.variable(
            parent, nid, path[-1], data_type=info.data_type, description=info.description or f"{path[-1]} of {'/'.join(path[:-1])}",
            writable=info.writable, type_id=type_id, array=info.array, initial=to_datavalue(self.registry.latest(info.key), vtype),
            min_sampling_ms=1000.0 * info.sampling_interval_s if info.sampling_interval_s is not None else 0.0,
        )  # fmt: skip
        if info.units is not None:
            self.add_struct_property(nid, self.nid((*path, "EngineeringUnits")), "EngineeringUnits", eu_information(info.units), ua.ObjectIds.EUInformation)
        if analog:
            rng = ua.Range(Low=float(info.low), High=float(info.high))
            self.add_struct_property(nid, self.nid((*path, "EURange")), "EURange", rng, ua.ObjectIds.Range)
        if info.states:  # MultiStateValueDiscrete: EnumValues and ValueAsText (kept current by the server's publish loop)
            enum_values = [ua.EnumValueType(Value=code, DisplayName=ua.LocalizedText(name), Description=ua.LocalizedText(name)) for code, name in info.states]
            values = ua.Variant(enum_values, ua.VariantType.ExtensionObject, is_array=True)
            self.add_property(nid, self.nid((*path, "EnumValues")), "EnumValues", values, ua.ObjectIds.EnumValueType, array=True)
            text_nid = self.nid((*path, "ValueAsText"))
            self.add_property(nid, text_nid, "ValueAsText", ua.Variant(ua.LocalizedText(""), ua.VariantType.LocalizedText), ua.ObjectIds.LocalizedText)
            self.value_texts.setdefault(info.key, []).append((text_nid, dict(info.states)))
        self.targets.setdefault(info.key, []).append((nid, vtype))
        self._paths[nid] = path
        self.variables[nid] = info.key
        if mirror:
            return
        self.nodes[info.key] = (nid, vtype)
        self._variable_paths.add(info.path)
        if info.writable:
            self.writable[nid] = info


@functools.cache
def zero_variant(data_type: str) -> ua.Variant:
    """The initial value of a scalar variable, one object per type (asyncua replaces a variable's
    variant on each write and never changes one in place)."""
    return ua.Variant(ZERO[data_type], VARIANT_TYPES[data_type])


@functools.cache
def variable_kind(vtype: int, writable: bool, array: bool, min_sampling_ms: float, type_id: int, property_: bool) -> VariableKind:
    """What the variables of one data type, access, poll class and type have in common."""
    level = access_level(writable)
    return VariableKind(
        ref_type=_HAS_PROPERTY if property_ else _HAS_COMPONENT, type_definition=ua.NodeId(type_id), data_type=ua.NodeId(int(vtype)),
        value_rank=ua.ValueRank.OneDimension if array else ua.ValueRank.Scalar, array_dimensions=(0,) if array else None,
        access_level=level, user_access_level=level, minimum_sampling_interval=min_sampling_ms, historizing=False,
    )  # fmt: skip


@functools.cache
def property_kind(data_type: int, array: bool) -> VariableKind:
    """A read-only property's (VariableAttributes' defaults for the rest, as asyncua's helpers leave them)."""
    read = ua.AccessLevel.CurrentRead.mask
    rank = ua.ValueRank.OneDimension if array else ua.ValueRank.Scalar
    return VariableKind(_HAS_PROPERTY, ua.NodeId(ua.ObjectIds.PropertyType), ua.NodeId(data_type), rank, (0,) if array else None, read, read)
