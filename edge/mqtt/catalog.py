"""Which registry tags become which Sparkplug metrics, and when a change is reported (pure).

* device tags (``Devices/<device>/<tag>``) are metrics ``<tag>`` of the Sparkplug device ``<device>``;
* twin outputs (``Assets/<asset>/...``) are metrics of the Sparkplug device ``<asset>``, named by
  their browse path below the asset (``temperature/Estimate``, ``AnomalyScore``);
* diagnostics (``Diagnostics/...``) and anything else are metrics of the edge node itself, named
  by their full browse path (``Diagnostics/Gateway/MqttMessagesPublished``).

Every metric gets an alias (1, 2, ...) in registry order, unique across the edge node. A device
whose link state goes down is announced dead (DDEATH) and born again when it is back: the link
state of gateway device ``<d>`` is the registry tag ``_diag.<d>.LinkState``.

Report by exception (``ReportFilter``): a sample is sent when its status changed, when a
non-numeric value changed, or when a numeric value moved by more than the tag's ``deadband``
(any change when the deadband is 0) from the value last sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.sample import TagSample
from edge.core import names
from edge.core.registry import TagInfo
from edge.mqtt.sparkplug import DataType, datatype_of

LINK_LEAF = "LinkState"
CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class MetricDef:
    key: str  # registry key
    device: str | None  # Sparkplug device id; None for a metric of the edge node
    name: str
    alias: int
    datatype: DataType
    info: TagInfo


class Catalog:
    """The metrics of one edge node: by registry key, by device, by (device, name) and by alias."""

    def __init__(self, infos: Iterable[TagInfo]) -> None:
        self.by_key: dict[str, MetricDef] = {}
        self.devices: dict[str, list[MetricDef]] = {}  # Sparkplug device -> metrics, in alias order
        self.node_metrics: list[MetricDef] = []
        self.by_name: dict[tuple[str | None, str], MetricDef] = {}
        self.by_alias: dict[int, MetricDef] = {}
        self.link_keys: dict[str, str] = {}  # registry key of a LinkState diagnostic -> Sparkplug device
        self.gateway_devices: set[str] = set()  # Sparkplug devices whose link state is tracked
        infos = list(infos)
        for info in infos:
            device, name = metric_name(info.path)
            if (device, name) in self.by_name:
                other = self.by_name[(device, name)].key
                raise ValueError(f"tags {other!r} and {info.key!r} both become metric {name!r} of Sparkplug device {device!r}; rename a device or asset")
            d = MetricDef(info.key, device, name, len(self.by_key) + 1, datatype_of(info.data_type, info.array), info)
            self.by_key[info.key] = d
            self.by_name[(device, name)] = d
            self.by_alias[d.alias] = d
            if device is None:
                self.node_metrics.append(d)
            else:
                self.devices.setdefault(device, []).append(d)
        for info in infos:
            if info.path[:1] == (names.DEVICES,) and info.device is not None and info.device in self.devices:
                self.gateway_devices.add(info.device)
                self.link_keys[names.device_diag_key(info.device, LINK_LEAF)] = info.device


def metric_name(path: tuple[str, ...]) -> tuple[str | None, str]:
    """(Sparkplug device or None for the node, metric name) of the registry tag at browse *path*."""
    if len(path) >= 3 and path[0] in (names.DEVICES, names.ASSETS):
        return path[1], "/".join(path[2:])
    return None, "/".join(path)


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ReportFilter:
    """Report by exception with per-tag deadbands (see the module docstring)."""

    def __init__(self, deadbands: Mapping[str, float] | None = None) -> None:
        self.deadbands = dict(deadbands or {})
        self._last: dict[str, tuple[object, int]] = {}  # key -> (value, status) last reported

    def reset(self, samples: Iterable[TagSample]) -> None:
        """Take *samples* as the ones last reported (a birth carries them)."""
        for s in samples:
            self._last[s.tag] = (s.value, s.status)

    def report(self, s: TagSample) -> tuple[bool, bool]:
        """(whether *s* is reported, whether its status differs from the last reported one);
        a reported sample becomes the last reported one."""
        last = self._last.get(s.tag)
        if last is not None:
            value, status = last
            if status == s.status:
                if value == s.value:
                    return False, False
                band = self.deadbands.get(s.tag, 0.0)
                if band > 0 and _numeric(value) and _numeric(s.value) and abs(s.value - value) <= band:  # type: ignore[operator]
                    return False, False
        self._last[s.tag] = (s.value, s.status)
        return True, last is None or last[1] != s.status
