"""Modbus TCP driver: the only module of the package that talks to pymodbus clients.

One TCP connection per driver, one ``asyncio.Lock`` around it (reads and writes share the bus).
Points arrive already validated (``make_point``); this module plans, sends, decodes and maps
failures to statuses:

* a Modbus exception response makes the points of that block Bad (status from
  ``drivers.modbus.status``), logged once per point per distinct status; other blocks stay Good;
* a value that does not decode makes that point ``BadDecodingError``;
* a lost connection, a timeout or a garbled response closes the transport and raises
  ``DriverUnavailable`` from ``read``; the supervisor then marks the tags stale and reconnects.

``write`` never raises for I/O problems: it returns the status that explains the outcome (the
transport is closed on loss, so the next ``read`` raises ``DriverUnavailable``).
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import ClassVar, NamedTuple

import structlog
from structlog.typing import BindableLogger
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.base import DriverUnavailable, LinkState
from drivers.modbus.address import Area, DataType, RegisterPoint
from drivers.modbus.codec import decode, encode
from drivers.modbus.plan import ReadRequest, plan_reads
from drivers.modbus.status import (
    TransportFailure,
    exception_name,
    exception_status,
    transport_status,
)
from drivers.sample import Status, TagSample, TagValue, utcnow

MAX_WRITE_REGISTERS = 123  # FC16 limit of the Modbus specification
_PLAN_CACHE_SIZE = 32


class _TransportError(Exception):
    def __init__(self, failure: TransportFailure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure


class _Reason(enum.Enum):
    EXCEPTION = "modbus_exception"
    DECODE = "modbus_decode_error"


class _Outcome(NamedTuple):
    value: TagValue
    status: Status
    arrived: datetime
    reason: _Reason | None = None
    detail: str = ""


class ModbusTcpDriver:
    """A Modbus TCP connection to one device or gateway (several unit ids may share it)."""

    kind: ClassVar[str] = "modbus_tcp"

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int = 502,
        timeout_s: float = 1.0,
        max_registers: int = 125,
        max_bits: int = 2000,
        max_gap: int = 10,
        log: BindableLogger | None = None,
    ) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1..65535")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        plan_reads((), max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)  # checks the limits
        self.name = name
        self.host = host
        self.port = port
        self.timeout_s = float(timeout_s)
        self.max_registers = max_registers
        self.max_bits = max_bits
        self.max_gap = max_gap
        self._log = (log if log is not None else structlog.get_logger("drivers.modbus")).bind(
            device=name, driver=self.kind
        )
        self._client: AsyncModbusTcpClient | None = None
        self._state = LinkState.DISCONNECTED
        self._lock = asyncio.Lock()
        self._plans: dict[tuple[RegisterPoint, ...], list[ReadRequest]] = {}
        self._reported: dict[str, Status] = {}  # point name -> Bad status already logged

    def __repr__(self) -> str:
        return f"ModbusTcpDriver(name={self.name!r}, host={self.host!r}, port={self.port})"

    @property
    def state(self) -> LinkState:
        if self._state is LinkState.CONNECTED and not self._is_connected():
            return LinkState.DISCONNECTED
        return self._state

    def _is_connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the TCP connection; raise DriverUnavailable if the device cannot be reached."""
        if self.state is LinkState.CONNECTED:
            return
        self._drop_client()
        self._state = LinkState.CONNECTING
        # pymodbus would reconnect and retry on its own (reconnect_delay, retries); the supervisor
        # owns reconnection and backoff, so outages are logged and backed off in one place.
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            name=f"modbus:{self.name}",
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        try:
            connected = await client.connect()
        except asyncio.CancelledError:
            client.close()
            self._state = LinkState.DISCONNECTED
            raise
        except (OSError, ModbusException) as exc:
            client.close()
            self._state = LinkState.DISCONNECTED
            raise DriverUnavailable(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        if not connected:
            client.close()
            self._state = LinkState.DISCONNECTED
            raise DriverUnavailable(f"cannot connect to {self.host}:{self.port} within {self.timeout_s:g} s")
        self._client = client
        self._state = LinkState.CONNECTED

    async def read(self, points: Sequence[RegisterPoint]) -> list[TagSample]:
        """Return exactly one sample per point, in order.

        ``source_time`` is when the block's response arrived; ``server_time`` is the same instant
        (the registry restamps it when it accepts the sample). Requests are planned once per
        distinct points tuple and cached. A point wider than this driver's limits raises
        ValueError (``plan_reads`` reports that at config load).
        """
        key = tuple(points)
        requests = self._plan(key)
        results: dict[RegisterPoint, _Outcome] = {}
        async with self._lock:
            client = self._connected_client()
            for req in requests:
                try:
                    response = await self._call(_read_call(client, req))
                except _TransportError as exc:
                    self._lose(exc)
                    raise DriverUnavailable(f"{self.host}:{self.port}: {exc}") from None
                arrived = utcnow()
                if response.isError():
                    code = getattr(response, "exception_code", -1)
                    status = exception_status(code)
                    detail = exception_name(code)
                    for p in req.points:
                        results[p] = _Outcome(None, status, arrived, _Reason.EXCEPTION, detail)
                    continue
                values = response.bits if req.area.is_bit else response.registers
                for p in req.points:
                    results[p] = _decode_point(values, req, p, arrived)
        samples = []
        for p in key:
            out = results[p]
            samples.append(TagSample(p.name, out.value, out.status, out.arrived, out.arrived))
            self._report(p, out)
        return samples

    async def write(self, point: RegisterPoint, value: TagValue) -> Status:
        """Write one value with FC5 (coil), FC6 (one register) or FC16 (several registers).

        Refusals are decided before anything is sent: a point that is not writable gives
        BadNotWritable, a value of the wrong kind BadTypeMismatch, a value outside [low, high] or
        outside the raw type BadOutOfRange. Without a connection the result is BadNotConnected.
        """
        refusal = _check_write(point, value)
        if refusal is not None:
            return self._refuse(point, value, refusal)
        try:
            registers = encode(value, point)
        except TypeError:
            return self._refuse(point, value, Status.BadTypeMismatch)
        except ValueError:
            return self._refuse(point, value, Status.BadOutOfRange)
        if len(registers) > MAX_WRITE_REGISTERS:
            return self._refuse(point, value, Status.BadOutOfRange)
        async with self._lock:
            if not self._is_connected():
                return Status.BadNotConnected
            assert self._client is not None
            try:
                response = await self._call(_write_call(self._client, point, registers))
            except _TransportError as exc:
                self._lose(exc)
                status = transport_status(exc.failure)
                self._log.warning("modbus_write_failed", tag=point.name, status=status.name, error=str(exc))
                return status
        if response.isError():
            code = getattr(response, "exception_code", -1)
            status = exception_status(code)
            self._log.warning(
                "modbus_write_failed", tag=point.name, status=status.name, exception=exception_name(code)
            )
            return status
        return Status.Good

    async def close(self) -> None:
        """Release the connection. Idempotent; never raises."""
        self._drop_client()
        self._state = LinkState.CLOSED
        await asyncio.sleep(0)  # let the transport deliver connection_lost before returning

    # -- internals ---------------------------------------------------------------------------

    def _plan(self, key: tuple[RegisterPoint, ...]) -> list[ReadRequest]:
        requests = self._plans.get(key)
        if requests is None:
            requests = plan_reads(key, max_registers=self.max_registers, max_bits=self.max_bits, max_gap=self.max_gap)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = requests
        return requests

    def _connected_client(self) -> AsyncModbusTcpClient:
        if not self._is_connected():
            was_connected = self._state is LinkState.CONNECTED
            self._drop_client()
            self._state = LinkState.DISCONNECTED
            reason = "connection lost" if was_connected else "not connected"
            raise DriverUnavailable(f"{self.host}:{self.port}: {reason}")
        assert self._client is not None
        return self._client

    async def _call(self, request: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await request()
        except TimeoutError:
            raise _TransportError(TransportFailure.TIMEOUT, f"no response within {self.timeout_s:g} s") from None
        except ConnectionException as exc:
            raise _TransportError(TransportFailure.CONNECTION_LOST, str(exc)) from None
        except ModbusIOException as exc:  # pymodbus's own response timeout, or a mismatched response
            raise _TransportError(TransportFailure.TIMEOUT, str(exc)) from None
        except ModbusException as exc:
            raise _TransportError(TransportFailure.PROTOCOL_ERROR, str(exc)) from None
        except OSError as exc:
            raise _TransportError(TransportFailure.CONNECTION_LOST, str(exc)) from None

    def _lose(self, exc: _TransportError) -> None:
        self._drop_client()
        self._state = LinkState.DISCONNECTED
        self._log.debug("modbus_transport_closed", reason=exc.failure.value)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
        except Exception as exc:  # close() must never raise; the transport is gone either way
            self._log.debug("modbus_close_failed", error=repr(exc))

    def _refuse(self, point: RegisterPoint, value: TagValue, status: Status) -> Status:
        self._log.warning("modbus_write_refused", tag=point.name, status=status.name, value=repr(value))
        return status

    def _report(self, point: RegisterPoint, out: _Outcome) -> None:
        status = out.status
        if status is Status.Good:
            if self._reported.pop(point.name, None) is not None:
                self._log.info("modbus_point_recovered", tag=point.name)
            return
        if self._reported.get(point.name) == status:
            return
        self._reported[point.name] = status
        self._log.warning(
            out.reason.value if out.reason is not None else "modbus_point_bad",
            tag=point.name,
            status=status.name,
            detail=out.detail,
            unit_id=point.unit_id,
            area=point.area.value,
            address=point.address,
        )


def _read_call(client: AsyncModbusTcpClient, req: ReadRequest) -> Callable[[], Awaitable[ModbusPDU]]:
    method = {
        Area.COIL: client.read_coils,
        Area.DISCRETE_INPUT: client.read_discrete_inputs,
        Area.HOLDING: client.read_holding_registers,
        Area.INPUT: client.read_input_registers,
    }[req.area]
    return lambda: method(req.start, count=req.count, device_id=req.unit_id)


def _write_call(
    client: AsyncModbusTcpClient, point: RegisterPoint, registers: list[int]
) -> Callable[[], Awaitable[ModbusPDU]]:
    if point.area is Area.COIL:
        return lambda: client.write_coil(point.address, bool(registers[0]), device_id=point.unit_id)
    if len(registers) == 1:
        return lambda: client.write_register(point.address, registers[0], device_id=point.unit_id)
    return lambda: client.write_registers(point.address, registers, device_id=point.unit_id)


def _decode_point(
    values: Sequence[int] | Sequence[bool], req: ReadRequest, point: RegisterPoint, arrived: datetime
) -> _Outcome:
    first = req.offset_of(point)
    chunk = values[first : first + point.count]  # short if the device answered fewer than asked
    try:
        return _Outcome(decode(chunk, point), Status.Good, arrived)
    except ValueError as exc:
        return _Outcome(None, Status.BadDecodingError, arrived, _Reason.DECODE, str(exc))


def _check_write(point: RegisterPoint, value: TagValue) -> Status | None:
    """The status that refuses this write before encoding, or None."""
    if not point.writable:
        return Status.BadNotWritable
    if point.data_type.is_numeric:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return Status.BadTypeMismatch
        limited = point.low is not None or point.high is not None
        if limited and isinstance(value, float) and math.isnan(value):
            return Status.BadOutOfRange
        if point.low is not None and value < point.low:
            return Status.BadOutOfRange
        if point.high is not None and value > point.high:
            return Status.BadOutOfRange
    elif point.data_type is DataType.STRING and not isinstance(value, str):
        return Status.BadTypeMismatch
    return None
