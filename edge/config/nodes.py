"""Every node a gateway config will create in the OPC UA address space, and what creates it.

``planned_nodes(cfg)`` predicts, from the config alone, the objects, variables, methods and alarm
conditions the running daemon builds below its gateway object (edge/opcua/model.py,
edge/opcua/alarms.py, edge/opcua/methods.py, the twin's registry entries), each with the config
key path of the thing that creates it. Properties (EngineeringUnits, EURange, ForecastHorizon)
and the members of condition and method nodes are not listed: they hang below a listed node and
are named by the OPC UA types, not by the config.

Every listed node except the gateway object has its parent listed as an object, so a variable
that would also be the parent of another creator's nodes meets that creator's object at the same
path: one path with two creators is every kind of collision (``edge.config.collisions``).

All paths come from ``edge.core.names``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edge.config.units import units_of
from edge.core import names

Kind = Literal["object", "variable", "method", "condition"]


@dataclass(frozen=True, slots=True)
class PlannedNode:
    """One node the config creates.

    *source* is the config key path of what creates it (``devices[0].tags[1].name``,
    ``assets[0].detector``; empty for the gateway's own nodes). *what* names the node in messages.
    *name* is the config name the node is named after when its browse name is exactly that name
    (a device, tag, asset or signal), else None.
    """

    path: tuple[str, ...]
    kind: Kind
    source: str
    what: str
    name: str | None = None


def planned_nodes(cfg: Any) -> list[PlannedNode]:
    """The nodes a validated ``GatewayConfig`` creates, gateway first, then devices, then assets."""
    out = plan_nodes(
        [(f"devices[{i}]", d) for i, d in enumerate(cfg.devices)],
        [(f"assets[{i}]", a) for i, a in enumerate(cfg.assets)],
    )
    if getattr(cfg, "mqtt", None) is not None:  # the MQTT sink's diagnostics (edge.mqtt.stats)
        out += [PlannedNode(names.gateway_diag_path(leaf), "variable", "mqtt", "the gateway's diagnostics") for leaf in names.MQTT_DIAGNOSTICS]
    return out


def plan_nodes(devices: Sequence[tuple[str, Any]], assets: Sequence[tuple[str, Any]]) -> list[PlannedNode]:
    """The nodes of *devices* and *assets*, each given with its config key path (``devices[3]``)."""
    out = list(_gateway(devices, assets))
    for prefix, dev in devices:
        out += _device(prefix, dev)
    for prefix, asset in assets:
        out += _asset(prefix, asset)
    return out


def history_enabled(devices: Iterable[Any], assets: Iterable[Any]) -> bool:
    """Whether any tag, asset or signal is historized (then history and its diagnostics run)."""
    return any(t.historize for d in devices for t in d.tags) or any(a.historize or any(s.historize for s in a.signals) for a in assets)


def _gateway(devices: Sequence[tuple[str, Any]], assets: Sequence[tuple[str, Any]]) -> Iterable[PlannedNode]:
    yield PlannedNode((), "object", "", "the gateway object")
    if any(d.tags for _, d in devices):  # a device object exists only to hold tags
        yield PlannedNode((names.DEVICES,), "object", "", "the Devices folder")
    if assets:
        yield PlannedNode((names.ASSETS,), "object", "", "the Assets folder")
    yield PlannedNode((names.DIAGNOSTICS,), "object", "", "the Diagnostics folder")
    what = "the gateway's diagnostics"
    yield PlannedNode(names.GATEWAY_DIAGNOSTICS_PATH, "object", "", what)
    leaves = names.GATEWAY_DIAGNOSTICS
    if history_enabled([d for _, d in devices], [a for _, a in assets]):
        leaves += names.HISTORY_DIAGNOSTICS
    for leaf in leaves:
        yield PlannedNode(names.gateway_diag_path(leaf), "variable", "", what)
    if assets:
        yield PlannedNode(names.ASSET_DIAGNOSTICS_PATH, "object", "", "the twin diagnostics folder")


def _device(prefix: str, dev: Any) -> list[PlannedNode]:
    d = dev.name
    out = []
    if dev.tags:
        out.append(PlannedNode(names.device_path(d), "object", f"{prefix}.name", f"device {d!r}", d))
    for folder, _, named in units_of(dev):  # Devices/<device>/<unit>: the objects of a multi-unit device's units
        what = f"the folder of unit {folder!r}"
        out.append(PlannedNode(names.unit_path(d, folder), "object", f"{prefix}.units", what, folder if named else None))
    for j, tag in enumerate(dev.tags):
        t, at = tag.name, f"{prefix}.tags[{j}]"
        leaf = names.split_tag(t)[1]  # a unit's tag is named after its template in messages: every unit has the same problem
        out.append(PlannedNode(names.tag_path(d, t), "variable", f"{at}.name", f"tag {leaf!r}", leaf))
        for kind, limit in (("high", tag.alarm_high), ("low", tag.alarm_low)):
            if limit is not None:
                path = names.limit_condition_path(d, t, kind)
                out.append(PlannedNode(path, "condition", f"{at}.alarm_{kind}", f"the {names.LIMIT_SUFFIXES[kind]} condition of {leaf!r}"))
    out.append(PlannedNode(names.device_diagnostics_path(d), "object", f"{prefix}.name", f"the diagnostics folder of device {d!r}", d))
    for leaf in names.DEVICE_DIAGNOSTICS:
        what = f"the device's diagnostics variable {leaf}"
        out.append(PlannedNode(names.device_diag_path(d, leaf), "variable", prefix, what))
        if dev.tags:  # shown again as a member of the device object
            out.append(PlannedNode(names.device_diag_mirror_path(d, leaf), "variable", prefix, what))
    return out


def _asset(prefix: str, asset: Any) -> list[PlannedNode]:
    a = asset.name
    out = [PlannedNode(names.asset_path(a), "object", f"{prefix}.name", f"asset {a!r}", a)]
    out.append(PlannedNode(names.asset_diagnostics_path(a), "object", f"{prefix}.name", f"the twin diagnostics folder of asset {a!r}", a))
    for leaf in names.ASSET_DIAGNOSTICS:
        out.append(PlannedNode(names.asset_diag_path(a, leaf), "variable", prefix, f"the asset's twin diagnostics variable {leaf}"))
    for output, leaf in names.ASSET_OUTPUTS.items():
        out.append(PlannedNode(names.asset_output_path(a, output), "variable", prefix, f"the asset's {leaf} variable"))
    out.append(PlannedNode(names.anomaly_condition_path(a), "condition", prefix, f"the asset's {names.ANOMALY_ALARM} condition"))
    identified = []
    for j, sig in enumerate(asset.signals):
        s, at = sig.name, f"{prefix}.signals[{j}]"
        out.append(PlannedNode(names.signal_path(a, s), "object", f"{at}.name", f"signal {s!r}", s))
        for output, leaf in names.SIGNAL_OUTPUTS.items():
            out.append(PlannedNode(names.signal_output_path(a, s, output), "variable", at, f"the {leaf} variable of signal {s!r}"))
        if sig.input is not None:
            identified.append(at)
            source = f"{at}.input"
            out.append(PlannedNode(names.model_path(a, s), "object", source, f"the {names.MODEL} of signal {s!r}"))
            for output in names.model_outputs(sig.input_model == "fopdt"):
                leaf = names.MODEL_OUTPUTS[output]
                out.append(PlannedNode(names.model_output_path(a, s, output), "variable", source, f"the {names.MODEL}/{leaf} variable of signal {s!r}"))
    if identified:  # Simulate and ResetModel act on the (one) identified model of the asset
        for method in names.ASSET_METHODS:
            out.append(PlannedNode(names.method_path(a, method), "method", f"{identified[0]}.input", f"the asset's {method} method"))
    if asset.validation is not None or any(sig.related or sig.explained_by for sig in asset.signals):  # sensor validation (edge.twin.validation)
        out.append(PlannedNode(names.sensor_fault_path(a), "variable", prefix, f"the asset's {names.SENSOR_FAULT} variable"))
        for j, sig in enumerate(asset.signals):
            out.append(
                PlannedNode(
                    names.sensor_fault_path(a, sig.name), "variable", f"{prefix}.signals[{j}]", f"the {names.SENSOR_FAULT} variable of signal {sig.name!r}"
                )
            )
    if asset.detector is not None:
        source = f"{prefix}.detector"
        out.append(PlannedNode(names.detector_path(a), "object", source, f"the asset's {names.DETECTOR}"))
        for output, leaf in names.DETECTOR_OUTPUTS.items():
            out.append(PlannedNode(names.detector_output_path(a, output), "variable", source, f"the asset's {names.DETECTOR}/{leaf} variable"))
    if asset.diagnosis is not None:
        source = f"{prefix}.diagnosis"
        out.append(PlannedNode(names.diagnosis_path(a), "object", source, f"the asset's {names.DIAGNOSIS}"))
        for output, leaf in names.DIAGNOSIS_OUTPUTS.items():
            out.append(PlannedNode(names.diagnosis_output_path(a, output), "variable", source, f"the asset's {names.DIAGNOSIS}/{leaf} variable"))
        for method in names.PATTERN_METHODS:
            out.append(PlannedNode(names.method_path(a, method), "method", source, f"the asset's {method} method"))
    return out
