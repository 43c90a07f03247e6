"""Registry keys, browse paths, condition and method names: every name the gateway builds.

Pure functions of config names; nothing here touches the registry or the server. Each registry
key and each browse path (below the gateway object; the NodeId is ``<gateway>/<path>``) is made
here, so the config check (``edge.config.nodes``) predicts exactly what the daemon will create.

Registry keys:

* device tag ``<device>.<tag>``, a tag of one unit of a multi-unit device (``units = [1, 2]``)
  ``<device>.<unit>.<tag>`` (its config name is ``<unit>.<tag>``, e.g. ``unit2.temperature``);
  device diagnostics ``_diag.<device>.<leaf>``; gateway
  diagnostics ``_diag.gateway.<leaf>``; asset (twin) diagnostics ``_diag.gateway.assets.<asset>.<leaf>``
* signal outputs ``<asset>.<signal>.<output>`` (``SIGNAL_OUTPUTS``), identified-model outputs
  ``<asset>.<signal>.model_*`` (``MODEL_OUTPUTS``), asset outputs ``<asset>.<output>``
  (``ASSET_OUTPUTS``), detector outputs ``<asset>.detector.<output>`` (``DETECTOR_OUTPUTS``),
  diagnosis outputs ``<asset>.diagnosis.<output>`` (``DIAGNOSIS_OUTPUTS``)

Browse paths:

* ``Devices/<device>/<tag>``, with the device's diagnostics mirrored at ``Devices/<device>/<leaf>``;
  ``Devices/<device>/<unit>/<tag>`` for a tag of one unit (``unit_folder``: ``unit<id>``, or the
  name given in ``units = {pump_a = 1}``)
* ``Diagnostics/<device>/<leaf>``, ``Diagnostics/Gateway/<leaf>``,
  ``Diagnostics/Gateway/Assets/<asset>/<leaf>``
* ``Assets/<asset>/<Output>``, ``Assets/<asset>/<signal>/<Output>``,
  ``Assets/<asset>/<signal>/Model/<Leaf>``, ``Assets/<asset>/Detector/<Leaf>``,
  ``Assets/<asset>/Diagnosis/<Leaf>``
* methods ``Assets/<asset>/Simulate``, ``Assets/<asset>/ResetModel``,
  ``Assets/<asset>/RecordFaultPattern`` and ``Assets/<asset>/RemoveFaultPattern``
* alarm conditions ``Assets/<asset>/AnomalyAlarm``, ``Devices/<device>/<tag>HighLimit`` and
  ``Devices/<device>/<tag>LowLimit`` (``Devices/<device>/<unit>/<tag>HighLimit`` for a unit's tag)

Output arguments are the registry key suffixes (``"measured"``, ``"model_gain"``, ``"score"``);
an unknown one raises KeyError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Path = tuple[str, ...]

# top-level folders below the gateway object
DEVICES = "Devices"
ASSETS = "Assets"
DIAGNOSTICS = "Diagnostics"
FOLDERS = (DEVICES, ASSETS, DIAGNOSTICS)

GATEWAY = "Gateway"  # Diagnostics/Gateway: the gateway's own diagnostics
MODEL = "Model"  # Assets/<asset>/<signal>/Model: an identified input->output model
DETECTOR = "Detector"  # Assets/<asset>/Detector: the asset's multivariate detector
DIAGNOSIS = "Diagnosis"  # Assets/<asset>/Diagnosis: the fault-pattern diagnosis

# leaves of Diagnostics/<device> (edge.core.health.DEVICE_FIELDS, in that order)
DEVICE_DIAGNOSTICS = ("LinkState", "LastError", "ReadsOk", "ReadsFailed", "Reconnects", "PollCycleTime", "Requests")
# leaves of Diagnostics/Gateway always present (edge.app, edge.opcua.server: OPCUA_DIAGNOSTICS)
OPCUA_DIAGNOSTICS = ("Sessions", "Subscriptions", "MonitoredItems", "NotificationsSent")
GATEWAY_DIAGNOSTICS = ("Version", "KernelImplementation", "KernelTickTime", *OPCUA_DIAGNOSTICS)
# leaves of Diagnostics/Gateway/Assets/<asset> (edge.twin.runner.ASSET_DIAGNOSTIC_FIELDS)
ASSET_DIAGNOSTICS = ("TickTime",)
# leaves of Diagnostics/Gateway while history runs (edge.history.store.DIAGNOSTICS, in that order)
HISTORY_DIAGNOSTICS = ("HistorySamplesWritten", "HistorySamplesDropped", "HistoryPendingSamples", "HistoryDatabaseSize")
# leaves of Diagnostics/Gateway while the MQTT sink runs (edge.mqtt.stats.FIELDS, in that order)
MQTT_DIAGNOSTICS = (
    "MqttLinkState",
    "MqttBroker",
    "MqttLastError",
    "MqttMessagesPublished",
    "MqttMetricsPublished",
    "MqttMetricsBuffered",
    "MqttMetricsDropped",
    "MqttReconnects",
)

# registry key suffix -> browse leaf
SIGNAL_OUTPUTS = {"measured": "Measured", "estimate": "Estimate", "forecast": "Forecast", "residual": "Residual", "anomaly_score": "AnomalyScore"}
ASSET_OUTPUTS = {"anomaly_score": "AnomalyScore", "alarm": "Alarm"}
MODEL_OUTPUTS = {  # in the order edge.twin.identified computes them
    "model_gain": "Gain",
    "model_gain_std": "GainStd",
    "model_time_constant": "TimeConstant",
    "model_dead_time": "DeadTime",
    "model_residual_std": "ResidualStd",
    "model_forecast": "Forecast",
    "model_forecast_low": "ForecastLow",
    "model_forecast_high": "ForecastHigh",
}
FIRST_ORDER_ONLY = frozenset({"model_time_constant", "model_dead_time"})  # fopdt models only
DETECTOR_OUTPUTS = {"score": "Score", "t2": "T2", "q": "Q", "alarm": "Alarm"}
DIAGNOSIS_OUTPUTS = {
    "fault": "Fault",
    "confidence": "Confidence",
    "contributors": "Contributors",
    "action": "Action",
    "runner_up": "RunnerUp",
    "runner_up_confidence": "RunnerUpConfidence",
}

# methods of assets with an identified model
SIMULATE = "Simulate"
RESET_MODEL = "ResetModel"
ASSET_METHODS = (SIMULATE, RESET_MODEL)
# methods of assets with a fault-pattern library ([assets.diagnosis])
RECORD_FAULT_PATTERN = "RecordFaultPattern"
REMOVE_FAULT_PATTERN = "RemoveFaultPattern"
PATTERN_METHODS = (RECORD_FAULT_PATTERN, REMOVE_FAULT_PATTERN)

# alarm conditions
ANOMALY_ALARM = "AnomalyAlarm"  # on Assets/<asset>
LIMIT_SUFFIXES = {"high": "HighLimit", "low": "LowLimit"}  # <tag>HighLimit, <tag>LowLimit on Devices/<device>

_DIAG_PREFIX = "_diag"
_GATEWAY_KEY = "gateway"
_DETECTOR_KEY = "detector"
_DIAGNOSIS_KEY = "diagnosis"


def _known(table: dict[str, str], output: str) -> str:
    """*output* if *table* has it; KeyError otherwise (keys are checked like paths)."""
    if output not in table:
        raise KeyError(output)
    return output


def node_id_text(gateway: str, path: Sequence[str]) -> str:
    """The string NodeId of the node at *path* below the gateway object *gateway*."""
    return "/".join((gateway, *path))


# -- devices ------------------------------------------------------------------------------------
def device_path(device: str) -> Path:
    """``Devices/<device>``: the device object."""
    return (DEVICES, device)


UNIT_SEPARATOR = "."  # between a unit's folder and a tag name: "unit2.temperature" (config names never hold one)
UNIT_PREFIX = "unit"  # units = [1, 2] -> folders unit1, unit2


def unit_folder(unit_id: int) -> str:
    """``unit<id>``: the folder of one unit of a device declared with ``units = [...]``."""
    return f"{UNIT_PREFIX}{unit_id}"


def unit_tag(folder: str, tag: str) -> str:
    """``<unit>.<tag>``: the name of the copy of template tag *tag* on the unit *folder*."""
    return f"{folder}{UNIT_SEPARATOR}{tag}"


def split_tag(tag: str) -> tuple[str | None, str]:
    """``(unit folder or None, tag leaf)`` of a tag name (``"unit2.temperature"`` -> ``("unit2", "temperature")``)."""
    folder, sep, leaf = tag.partition(UNIT_SEPARATOR)
    return (folder, leaf) if sep else (None, tag)


def tag_key(device: str, tag: str) -> str:
    """``<device>.<tag>``: the registry key of a device tag (also how signals name their tag);
    ``<device>.<unit>.<tag>`` for a tag of one unit."""
    return f"{device}.{tag}"


def unit_path(device: str, folder: str) -> Path:
    """``Devices/<device>/<unit>``: the object holding one unit's tags."""
    return (DEVICES, device, folder)


def tag_parent_path(device: str, tag: str) -> Path:
    """The object a tag belongs to: ``Devices/<device>``, or ``Devices/<device>/<unit>`` for a unit's tag."""
    folder, _ = split_tag(tag)
    return device_path(device) if folder is None else unit_path(device, folder)


def tag_path(device: str, tag: str) -> Path:
    """``Devices/<device>/<tag>``, or ``Devices/<device>/<unit>/<tag>`` for a unit's tag."""
    return (*tag_parent_path(device, tag), split_tag(tag)[1])


def device_diagnostics_path(device: str) -> Path:
    """``Diagnostics/<device>``: the folder of the device's diagnostics."""
    return (DIAGNOSTICS, device)


def device_diag_key(device: str, leaf: str) -> str:
    """``_diag.<device>.<leaf>``."""
    return f"{_DIAG_PREFIX}.{device}.{leaf}"


def device_diag_path(device: str, leaf: str) -> Path:
    """``Diagnostics/<device>/<leaf>``: where the registry puts a device diagnostic."""
    return (DIAGNOSTICS, device, leaf)


def device_diag_mirror_path(device: str, leaf: str) -> Path:
    """``Devices/<device>/<leaf>``: the same diagnostic shown as a member of the device object."""
    return (DEVICES, device, leaf)


def mirror_of(path: Sequence[str]) -> Path | None:
    """Where the model mirrors the diagnostics variable at *path* (``Diagnostics/<x>/<leaf>`` ->
    ``Devices/<x>/<leaf>``, shown when the object ``Devices/<x>`` exists); None for other paths."""
    if len(path) == 3 and path[0] == DIAGNOSTICS:
        return device_diag_mirror_path(path[1], path[2])
    return None


# -- gateway ------------------------------------------------------------------------------------
GATEWAY_DIAGNOSTICS_PATH: Path = (DIAGNOSTICS, GATEWAY)


def gateway_diag_key(leaf: str) -> str:
    """``_diag.gateway.<leaf>``."""
    return f"{_DIAG_PREFIX}.{_GATEWAY_KEY}.{leaf}"


def gateway_diag_path(leaf: str) -> Path:
    """``Diagnostics/Gateway/<leaf>``."""
    return (*GATEWAY_DIAGNOSTICS_PATH, leaf)


ASSET_DIAGNOSTICS_PATH: Path = (*GATEWAY_DIAGNOSTICS_PATH, ASSETS)  # Diagnostics/Gateway/Assets


def asset_diagnostics_path(asset: str) -> Path:
    """``Diagnostics/Gateway/Assets/<asset>``: the folder of an asset's twin diagnostics."""
    return (*ASSET_DIAGNOSTICS_PATH, asset)


def asset_diag_key(asset: str, leaf: str) -> str:
    """``_diag.gateway.assets.<asset>.<leaf>`` for a leaf of ``ASSET_DIAGNOSTICS``."""
    return f"{_DIAG_PREFIX}.{_GATEWAY_KEY}.assets.{asset}.{_asset_leaf(leaf)}"


def asset_diag_path(asset: str, leaf: str) -> Path:
    """``Diagnostics/Gateway/Assets/<asset>/<leaf>`` for a leaf of ``ASSET_DIAGNOSTICS``."""
    return (*asset_diagnostics_path(asset), _asset_leaf(leaf))


def _asset_leaf(leaf: str) -> str:
    if leaf not in ASSET_DIAGNOSTICS:
        raise KeyError(leaf)
    return leaf


# -- assets and their twin ----------------------------------------------------------------------
def asset_path(asset: str) -> Path:
    """``Assets/<asset>``: the asset object."""
    return (ASSETS, asset)


def asset_output_key(asset: str, output: str) -> str:
    """``<asset>.<output>`` for an output of ``ASSET_OUTPUTS``."""
    return f"{asset}.{_known(ASSET_OUTPUTS, output)}"


def asset_output_path(asset: str, output: str) -> Path:
    """``Assets/<asset>/<Leaf>`` for an output of ``ASSET_OUTPUTS``."""
    return (ASSETS, asset, ASSET_OUTPUTS[output])


def asset_key_prefix(asset: str) -> str:
    """The prefix shared by every registry key of the asset's twin (``<asset>.``)."""
    return f"{asset}."


def signal_path(asset: str, signal: str) -> Path:
    """``Assets/<asset>/<signal>``: the signal object."""
    return (ASSETS, asset, signal)


def signal_key_prefix(asset: str, signal: str) -> str:
    """The prefix shared by every registry key of one signal's twin (``<asset>.<signal>.``)."""
    return f"{asset}.{signal}."


def signal_output_key(asset: str, signal: str, output: str) -> str:
    """``<asset>.<signal>.<output>`` for an output of ``SIGNAL_OUTPUTS``."""
    return f"{signal_key_prefix(asset, signal)}{_known(SIGNAL_OUTPUTS, output)}"


def signal_output_path(asset: str, signal: str, output: str) -> Path:
    """``Assets/<asset>/<signal>/<Leaf>`` for an output of ``SIGNAL_OUTPUTS``."""
    return (ASSETS, asset, signal, SIGNAL_OUTPUTS[output])


def model_path(asset: str, signal: str) -> Path:
    """``Assets/<asset>/<signal>/Model``: the identified model of a signal."""
    return (ASSETS, asset, signal, MODEL)


def model_outputs(first_order: bool) -> tuple[str, ...]:
    """The ``MODEL_OUTPUTS`` a model publishes, in order (TimeConstant and DeadTime only for first-order models)."""
    return tuple(k for k in MODEL_OUTPUTS if first_order or k not in FIRST_ORDER_ONLY)


def model_output_key(asset: str, signal: str, output: str) -> str:
    """``<asset>.<signal>.<output>`` for an output of ``MODEL_OUTPUTS``."""
    return f"{signal_key_prefix(asset, signal)}{_known(MODEL_OUTPUTS, output)}"


def model_output_path(asset: str, signal: str, output: str) -> Path:
    """``Assets/<asset>/<signal>/Model/<Leaf>`` for an output of ``MODEL_OUTPUTS``."""
    return (*model_path(asset, signal), MODEL_OUTPUTS[output])


def detector_path(asset: str) -> Path:
    """``Assets/<asset>/Detector``: the asset's multivariate detector."""
    return (ASSETS, asset, DETECTOR)


def detector_key(asset: str, output: str) -> str:
    """``<asset>.detector.<output>`` for an output of ``DETECTOR_OUTPUTS``."""
    return f"{asset}.{_DETECTOR_KEY}.{_known(DETECTOR_OUTPUTS, output)}"


def detector_output_path(asset: str, output: str) -> Path:
    """``Assets/<asset>/Detector/<Leaf>`` for an output of ``DETECTOR_OUTPUTS``."""
    return (*detector_path(asset), DETECTOR_OUTPUTS[output])


def diagnosis_path(asset: str) -> Path:
    """``Assets/<asset>/Diagnosis``: the asset's fault-pattern diagnosis."""
    return (ASSETS, asset, DIAGNOSIS)


def diagnosis_key(asset: str, output: str) -> str:
    """``<asset>.diagnosis.<output>`` for an output of ``DIAGNOSIS_OUTPUTS``."""
    return f"{asset}.{_DIAGNOSIS_KEY}.{_known(DIAGNOSIS_OUTPUTS, output)}"


def diagnosis_output_path(asset: str, output: str) -> Path:
    """``Assets/<asset>/Diagnosis/<Leaf>`` for an output of ``DIAGNOSIS_OUTPUTS``."""
    return (*diagnosis_path(asset), DIAGNOSIS_OUTPUTS[output])


# -- methods and alarm conditions ---------------------------------------------------------------
def method_path(asset: str, method: str) -> Path:
    """``Assets/<asset>/<method>`` for a method of ``ASSET_METHODS`` or ``PATTERN_METHODS``."""
    if method not in ASSET_METHODS and method not in PATTERN_METHODS:
        raise KeyError(method)
    return (ASSETS, asset, method)


def limit_condition_name(tag: str, kind: Literal["high", "low"]) -> str:
    """``<tag>HighLimit`` or ``<tag>LowLimit``: the limit alarm condition of a tag (of its leaf
    name for a unit's tag: the condition sits on the unit's object)."""
    return f"{split_tag(tag)[1]}{LIMIT_SUFFIXES[kind]}"


def condition_path(source: Sequence[str], name: str) -> Path:
    """``<source>/<name>``: the condition node *name* of the object at *source*."""
    return (*source, name)


def anomaly_condition_path(asset: str) -> Path:
    """``Assets/<asset>/AnomalyAlarm``."""
    return condition_path(asset_path(asset), ANOMALY_ALARM)


def limit_condition_path(device: str, tag: str, kind: Literal["high", "low"]) -> Path:
    """``Devices/<device>/<tag>HighLimit`` or ``.../<tag>LowLimit`` (below the unit's object for a unit's tag)."""
    return condition_path(tag_parent_path(device, tag), limit_condition_name(tag, kind))


# -- sensor validation (edge.twin.validation) ---------------------------------------------------
SENSOR_FAULT = "SensorFault"  # Assets/<asset>/<signal>/SensorFault and Assets/<asset>/SensorFault (String)
_SENSOR_FAULT_KEY = "sensor_fault"


def sensor_fault_key(asset: str, signal: str | None = None) -> str:
    """``<asset>.<signal>.sensor_fault`` (the signal's flag), or ``<asset>.sensor_fault`` (all the asset's flags)."""
    return f"{asset}.{_SENSOR_FAULT_KEY}" if signal is None else f"{signal_key_prefix(asset, signal)}{_SENSOR_FAULT_KEY}"


def sensor_fault_path(asset: str, signal: str | None = None) -> Path:
    """``Assets/<asset>/<signal>/SensorFault``, or ``Assets/<asset>/SensorFault``."""
    return (*asset_path(asset), SENSOR_FAULT) if signal is None else (*signal_path(asset, signal), SENSOR_FAULT)
