"""Southbound protocol drivers. No daemon logic lives here; ``edge`` imports this, never the reverse."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Final

from drivers.base import UnknownDriverError

DRIVER_KINDS: Final[Mapping[str, str]] = {
    "modbus_tcp": "drivers.modbus.driver:ModbusTcpDriver",
    "modbus_rtu": "drivers.modbus.driver:ModbusRtuDriver",
}


def load_driver_class(kind: str) -> type:
    """Return the driver class registered under *kind* (imported lazily)."""
    try:
        target = DRIVER_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(DRIVER_KINDS))
        raise UnknownDriverError(f"unknown driver {kind!r}; known drivers: {known}") from None
    module_name, _, class_name = target.partition(":")
    cls: type = getattr(importlib.import_module(module_name), class_name)
    return cls
