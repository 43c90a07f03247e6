"""Modbus driver package: pure address/codec/plan/status/units modules plus the TCP and RTU drivers.

``ModbusTcpDriver`` and ``ModbusRtuDriver`` are imported lazily so that loading a configuration (which needs only
``make_point``) does not import pymodbus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.modbus.address import Area, DataType, Order, RegisterPoint, make_point, parse_address
from drivers.modbus.codec import decode, decode_bits, encode
from drivers.modbus.plan import ReadRequest, plan_reads, split
from drivers.modbus.status import ExceptionCode, TransportFailure, exception_status, transport_status

if TYPE_CHECKING:
    from drivers.modbus.driver import ModbusRtuDriver, ModbusTcpDriver

__all__ = [
    "Area",
    "DataType",
    "ExceptionCode",
    "ModbusRtuDriver",
    "ModbusTcpDriver",
    "Order",
    "ReadRequest",
    "RegisterPoint",
    "TransportFailure",
    "decode",
    "decode_bits",
    "encode",
    "exception_status",
    "make_point",
    "parse_address",
    "plan_reads",
    "split",
    "transport_status",
]


def __getattr__(name: str) -> Any:
    if name in ("ModbusTcpDriver", "ModbusRtuDriver"):
        from drivers.modbus import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
