"""Southbound protocol drivers. No daemon logic lives here; ``edge`` imports this, never the reverse.

``DRIVER_KINDS`` is the one table of driver kinds: the value of a device's ``driver`` key maps to
its settings model (``drivers.settings.DeviceSettings``) and its driver class (``drivers.base``:
``Driver``, ``DriverClass``). Both are named as ``"module:attribute"`` and imported when first
asked for, so loading a config imports the settings modules only (no protocol library). Adding a
driver is one package under ``drivers/`` plus one line here (docs/drivers.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from drivers.base import UnknownDriverError

if TYPE_CHECKING:
    from drivers.base import DriverClass
    from drivers.settings import DeviceSettings

# kind -> (settings model, driver class)
DRIVER_KINDS: Final[Mapping[str, tuple[str, str]]] = {
    "modbus_tcp": ("drivers.modbus.settings:ModbusTcpSettings", "drivers.modbus.driver:ModbusTcpDriver"),
    "modbus_rtu": ("drivers.modbus.settings:ModbusRtuSettings", "drivers.modbus.driver:ModbusRtuDriver"),
    "opcua": ("drivers.opcua_client.settings:OpcUaSettings", "drivers.opcua_client.driver:OpcUaDriver"),
    "synthetic": ("drivers.synthetic.settings:SyntheticSettings", "drivers.synthetic.driver:SyntheticDriver"),
}


def settings_model(kind: str) -> type[DeviceSettings]:
    """The settings model of the driver registered under *kind* (imports no protocol library)."""
    model: type[DeviceSettings] = _load(_entry(kind)[0])
    return model


def load_driver(kind: str) -> DriverClass:
    """The driver class registered under *kind* (imported now: this may import its protocol library)."""
    cls: DriverClass = _load(_entry(kind)[1])
    return cls


def _entry(kind: str) -> tuple[str, str]:
    try:
        return DRIVER_KINDS[kind]
    except (KeyError, TypeError):
        known = ", ".join(sorted(DRIVER_KINDS))
        raise UnknownDriverError(f"unknown driver {kind!r}; known drivers: {known}") from None


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
