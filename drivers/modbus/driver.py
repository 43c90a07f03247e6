"""Modbus TCP and RTU drivers: the only module of the package that builds pymodbus clients.

Everything else (the bus lock, planning, unit demotion, block isolation, status mapping) is in
``drivers.modbus.bus.ModbusDriver``, shared by both transports. Each class is built from its
validated settings model (``drivers.modbus.settings``) by ``from_settings``; the constructors take
their arguments as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, ClassVar, TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType
from structlog.typing import BindableLogger

from drivers.base import DriverContext
from drivers.modbus.bus import ModbusDriver
from drivers.modbus.settings import ModbusRtuSettings, ModbusTcpSettings

__all__ = ["ModbusDriver", "ModbusRtuDriver", "ModbusTcpDriver", "rtu_silent_interval_s"]

PROBE_TIMEOUT_S = 1.0  # a probe gives up after this long (or timeout_s if shorter)


class ModbusTcpDriver(ModbusDriver):
    """A Modbus TCP connection to one device or gateway (several unit ids may share it)."""

    kind: ClassVar[str] = "modbus_tcp"
    Settings: ClassVar[type[ModbusTcpSettings]] = ModbusTcpSettings
    # from_settings takes a DriverContext like every driver; Modbus keeps no state and reads no files

    def __init__(self, *, name: str, host: str, port: int = 502, **settings: Any) -> None:
        super().__init__(name=name, **settings)
        self.host = host
        self.port = port

    @classmethod
    def from_settings(cls, settings: ModbusTcpSettings, *, log: BindableLogger | None = None, context: DriverContext | None = None) -> ModbusTcpDriver:
        return cls(name=settings.name, host=settings.host, port=settings.port, log=log, **cls._bus_settings(settings))

    def __repr__(self) -> str:
        return f"ModbusTcpDriver(name={self.name!r}, host={self.host!r}, port={self.port})"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    async def probe(self) -> bool:
        """True if the device accepts a TCP connection now; the connection is closed at once and
        nothing is sent (the supervisor probes a lost device to reconnect as soon as it is back)."""
        try:
            async with asyncio.timeout(min(self.timeout_s, PROBE_TIMEOUT_S)):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def _new_client(self) -> AsyncModbusTcpClient:
        # pymodbus would reconnect and retry on its own and close the link after a few unanswered
        # requests; the supervisor owns reconnection and this driver owns timeouts (its own timer
        # fires first), so a unit that does not answer cannot take a shared gateway link down.
        return fail_undecodable_responses(
            AsyncModbusTcpClient(
                self.host,
                port=self.port,
                name=f"modbus:{self.name}",
                timeout=self.timeout_s * 2 + 1.0,
                retries=0,
                reconnect_delay=0,
            )
        )


class ModbusRtuDriver(ModbusDriver):
    """Modbus RTU on one serial port (an RS-485 bus with one or more units)."""

    kind: ClassVar[str] = "modbus_rtu"
    Settings: ClassVar[type[ModbusRtuSettings]] = ModbusRtuSettings

    def __init__(
        self,
        *,
        name: str,
        port: str,
        baud_rate: int,
        parity: str = "N",
        data_bits: int = 8,
        stop_bits: int = 1,
        frame_pause_s: float | None = None,
        **settings: Any,
    ) -> None:
        if frame_pause_s is None:
            frame_pause_s = rtu_silent_interval_s(baud_rate)
        super().__init__(name=name, frame_pause_s=frame_pause_s, **settings)
        self.port = port
        self.baud_rate = baud_rate
        self.parity = parity
        self.data_bits = data_bits
        self.stop_bits = stop_bits

    @classmethod
    def from_settings(cls, settings: ModbusRtuSettings, *, log: BindableLogger | None = None, context: DriverContext | None = None) -> ModbusRtuDriver:
        s = settings
        return cls(
            name=s.name,
            port=s.port,
            baud_rate=s.baud_rate,
            parity=s.parity,
            data_bits=s.data_bits,
            stop_bits=s.stop_bits,
            frame_pause_s=s.frame_pause_s,
            log=log,
            **cls._bus_settings(s),
        )

    def __repr__(self) -> str:
        return f"ModbusRtuDriver(name={self.name!r}, port={self.port!r}, baud_rate={self.baud_rate})"

    @property
    def endpoint(self) -> str:
        return self.port

    def _new_client(self) -> AsyncModbusSerialClient:
        return fail_undecodable_responses(
            AsyncModbusSerialClient(
                self.port,
                framer=FramerType.RTU,
                baudrate=self.baud_rate,
                bytesize=self.data_bits,
                parity=self.parity,
                stopbits=self.stop_bits,
                name=f"modbus:{self.name}",
                timeout=self.timeout_s * 2 + 1.0,
                retries=0,
                reconnect_delay=0,
            )
        )


_Client = TypeVar("_Client", AsyncModbusTcpClient, AsyncModbusSerialClient)


def fail_undecodable_responses(client: _Client) -> _Client:
    """Make a response that does not decode fail its request instead of the connection.

    pymodbus 3.16 raises ModbusIOException("Unable to decode request") from inside the
    transport's ``data_received`` when a frame arrives whole but its PDU does not decode (a
    truncated or corrupted response); asyncio then logs a "Fatal error" traceback and closes the
    connection. The frame boundary is intact (MBAP length, RTU silent interval), so the link is
    fine: the received bytes are dropped and the waiting request fails with that exception, which
    the driver re-sends like a timeout. Pinned by tests/drivers/modbus/test_lossy.py (truncated and
    corrupted responses through the fault proxy).
    """
    manager = client.ctx
    handle_frame = manager.framer.handleFrame

    def handle(data: bytes, exp_devid: int, exp_tid: int) -> tuple[int, Any]:
        try:
            return handle_frame(data, exp_devid, exp_tid)
        except ModbusIOException as exc:
            future = getattr(manager, "response_future", None)
            if future is not None and not future.done():
                future.set_exception(exc)
            return len(data), None

    manager.framer.handleFrame = handle  # type: ignore[method-assign]
    quiet_frame_errors()
    return client


# pymodbus 3.16 logs one ERROR line per late, duplicated or undecodable response (a late reply
# "ask for transaction_id=X but got id=Y, Skipping", "received pdu without a corresponding
# request", "Unable to decode frame ..."). On a lossy or slow link that is a line per lost frame;
# the driver handles each of them (the late reply is ignored, the request re-sent) and counts
# them (ModbusDriver.timeouts, Exchange.garbled), so these lines are dropped.
_FRAME_NOISE = ("ERROR: request ask for ", "ERROR: received pdu without", "Unable to decode frame", "Repeating....")


class _FrameNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_FRAME_NOISE)


def quiet_frame_errors() -> None:
    """Drop pymodbus's per-frame error lines (see above); idempotent."""
    logger = logging.getLogger("pymodbus.logging")
    if not any(isinstance(f, _FrameNoise) for f in logger.filters):
        logger.addFilter(_FrameNoise())


def rtu_silent_interval_s(baud_rate: int) -> float:
    """The Modbus RTU silent interval between frames: 3.5 characters of 11 bits, at least 1.75 ms.

    (Modbus over serial line v1.02, 2.5.1.1: above 19200 baud a fixed 1.75 ms is recommended.)
    """
    return max(3.5 * 11 / baud_rate, 0.00175)
