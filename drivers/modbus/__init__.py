"""Modbus driver package: pure address/codec/plan/status/units modules plus the TCP and RTU drivers.

``ModbusTcpDriver`` and ``ModbusRtuDriver`` are imported lazily so that loading a configuration (which needs only
``make_point``) does not import pymodbus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.modbus.address import make_point
from drivers.modbus.plan import plan_reads

if TYPE_CHECKING:
    from drivers.modbus.driver import ModbusRtuDriver, ModbusTcpDriver

__all__ = ["ModbusRtuDriver", "ModbusTcpDriver", "make_point", "plan_reads"]


def __getattr__(name: str) -> Any:
    if name in ("ModbusTcpDriver", "ModbusRtuDriver"):
        from drivers.modbus import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
