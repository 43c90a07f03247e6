"""Modbus driver package: pure address/codec/plan/status modules plus the TCP driver.

``ModbusTcpDriver`` is imported lazily so that loading a configuration (which needs only
``make_point``) does not import pymodbus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.modbus.address import Area, DataType, Order, RegisterPoint, make_point, parse_address
from drivers.modbus.codec import decode, decode_bits, encode
from drivers.modbus.plan import ReadRequest, plan_reads, split
from drivers.modbus.status import ExceptionCode, TransportFailure, exception_status, transport_status

if TYPE_CHECKING:
    from drivers.modbus.driver import ModbusTcpDriver

__all__ = [
    "Area",
    "DataType",
    "ExceptionCode",
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
    if name == "ModbusTcpDriver":
        from drivers.modbus.driver import ModbusTcpDriver

        return ModbusTcpDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
