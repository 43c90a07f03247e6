"""The transport-independent part of the Modbus drivers: one bus, its lock, its units and its requests.

One driver is one physical bus: a TCP connection (a device, or a gateway serving several unit
ids) or a serial port (an RS-485 line with several units). One ``asyncio.Lock`` guards the bus, so
reads and writes never interleave on the wire. Points arrive already validated (``make_point``);
this module plans, sends, decodes and maps failures to statuses:

* a Modbus exception response makes the points of that block Bad (``drivers.modbus.status``),
  logged once per point per distinct status; other blocks stay Good. ILLEGAL_ADDRESS or
  ILLEGAL_VALUE to a block of several points splits the block into one request per point, so only
  the point the device rejects is Bad; the split is remembered and the rejected point is not asked
  again until the next connect;
* a value that does not decode makes that point ``BadDecodingError``;
* a unit that does not answer within ``timeout_s`` (after ``retries`` re-sends) gets ``BadTimeout``
  for its points and is skipped for the rest of the cycle; after ``demote_after`` consecutive
  misses it is demoted (``BadNoCommunication``, not polled) for ``demote_for_s`` seconds, so it
  cannot stall the other units on the bus. Outage and recovery are logged once per unit;
* a lost connection, a garbled response, or a bus on which no unit answers any more closes the
  transport and raises ``DriverUnavailable`` from ``read``; the supervisor marks the tags stale and
  reconnects with backoff (pymodbus's own reconnection and retries are switched off).

``write`` never raises for I/O problems: it returns the status that explains the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from structlog.typing import FilteringBoundLogger

from drivers.base import DriverUnavailable, LinkState, ReadResult
from drivers.modbus.address import Area, RegisterPoint
from drivers.modbus.calls import cancel_requests, fill, raise_if_cancel_was_swallowed, read_call, write_call
from drivers.modbus.codec import encode
from drivers.modbus.limits import MAX_READ_BITS, MAX_READ_REGISTERS, MAX_WRITE_REGISTERS
from drivers.modbus.outcome import Outcome, Reason, check_write, decode_request
from drivers.modbus.plan import ReadRequest, split
from drivers.modbus.plan_cache import PlanCache
from drivers.modbus.status import (
    ISOLATE_CODES,
    NO_ANSWER_CODES,
    NOT_FETCHED,
    TransportFailure,
    exception_name,
    exception_status,
    transport_status,
)
from drivers.modbus.units import UnitTracker
from drivers.sample import Status, TagSample, TagValue, utcnow

if TYPE_CHECKING:
    from drivers.modbus.settings import ModbusSettings

_Span = tuple[int, Area, int, int]  # unit id, area, address, count


class _TransportError(Exception):
    def __init__(self, failure: TransportFailure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure


class ModbusDriver:
    """Everything common to Modbus TCP and RTU; subclasses (``drivers.modbus.driver``) build the client.

    The constructor takes its settings as they are: ``from_settings`` builds a driver from a
    validated settings model (``drivers.modbus.settings``), which is where the limits are checked.
    """

    kind: ClassVar[str] = "modbus"
    # settings of both transports, passed from the settings model to the constructor by from_settings
    BUS_SETTINGS: ClassVar[tuple[str, ...]] = ("timeout_s", "retries", "max_registers", "max_bits", "max_gap", "demote_after", "demote_for_s", "write_multiple")

    def __init__(
        self,
        *,
        name: str,
        timeout_s: float = 1.0,
        retries: int = 0,
        max_registers: int = MAX_READ_REGISTERS,
        max_bits: int = MAX_READ_BITS,
        max_gap: int = 10,
        demote_after: int = 3,
        demote_for_s: float = 10.0,
        frame_pause_s: float = 0.0,
        write_multiple: bool = False,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self.name = name
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.max_registers = max_registers
        self.max_bits = max_bits
        self.max_gap = max_gap
        self.frame_pause_s = float(frame_pause_s)
        self.write_multiple = bool(write_multiple)  # FC15/FC16 even for one coil or register
        self.units = UnitTracker(demote_after=demote_after, demote_for_s=demote_for_s)
        self._log = (log if log is not None else structlog.get_logger("drivers.modbus")).bind(device=name, driver=self.kind)
        self._client: Any = None
        self._state = LinkState.DISCONNECTED
        self._lock = asyncio.Lock()  # one per physical bus: reads and writes share it
        self._quiet_until = 0.0  # monotonic time before which the next frame must not start
        self._plans = PlanCache(max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)
        self._rejected: dict[_Span, tuple[Status, str]] = {}  # spans the device refused, until reconnect
        self._reported: dict[str, Status] = {}  # point name -> Bad status already logged
        self.requests_sent = 0

    @classmethod
    def _bus_settings(cls, settings: ModbusSettings) -> dict[str, Any]:
        """Constructor arguments common to both transports, from validated settings."""
        return {key: getattr(settings, key) for key in cls.BUS_SETTINGS}

    # -- transport specifics -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    def _new_client(self) -> Any:
        raise NotImplementedError

    # -- the Driver contract -------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        if self._state is LinkState.CONNECTED and not self._is_connected():
            return LinkState.DISCONNECTED
        return self._state

    def _is_connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open the transport; raise DriverUnavailable if it cannot be opened within timeout_s."""
        if self.state is LinkState.CONNECTED:
            return
        self._drop_client()
        self._state = LinkState.CONNECTING
        client = self._new_client()
        pending = cancel_requests()
        try:
            async with asyncio.timeout(self.timeout_s):
                connected = await client.connect()
            raise_if_cancel_was_swallowed(pending)
        except asyncio.CancelledError:
            client.close()
            self._state = LinkState.DISCONNECTED
            raise
        except (OSError, ModbusException, TimeoutError) as exc:
            client.close()
            self._state = LinkState.DISCONNECTED
            raise DriverUnavailable(f"cannot connect to {self.endpoint}: {exc or type(exc).__name__}") from exc
        if not connected:
            client.close()
            self._state = LinkState.DISCONNECTED
            raise DriverUnavailable(f"cannot connect to {self.endpoint} within {self.timeout_s:g} s")
        self._client = client
        self._state = LinkState.CONNECTED
        self.units.reset()
        if self._rejected:  # ask the device again once per connection: it may have been reconfigured
            self._rejected.clear()
            self._plans.forget()

    async def read(self, points: Sequence[RegisterPoint]) -> ReadResult:
        """Fetch *points*: a sample keyed by ``point.name`` for each point that was answered (Good,
        or Bad for an exception response or a value that does not decode), and in ``not_fetched``
        the points of units that did not answer or are demoted.

        ``source_time`` and ``server_time`` are when the block's response arrived. Requests are
        planned once per distinct points tuple and cached.
        """
        key = points if isinstance(points, tuple) else tuple(points)
        results: dict[int, Outcome] = {}  # id(planned point) -> outcome: cheaper than hashing points
        async with self._lock:
            client = self._connected_client()
            missed: dict[int, Outcome] = {}  # units that did not answer in this cycle
            requests, planned = self._plans.plan(key)
            for req in requests:
                self.units.seen(req.unit_id)
                if req.unit_id in missed:  # not asked again in this cycle
                    fill(results, req.points, missed[req.unit_id])
                    continue
                if self.units.is_demoted(req.unit_id):
                    status = transport_status(TransportFailure.UNIT_DEMOTED)
                    fill(results, req.points, Outcome(None, status, utcnow(), Reason.NO_ANSWER, "unit demoted"))
                    continue
                rejected = self._rejected.get((req.unit_id, req.area, req.start, req.count))
                if rejected is not None:  # refused before on this connection: not asked again
                    fill(results, req.points, Outcome(None, rejected[0], utcnow(), Reason.EXCEPTION, rejected[1]))
                    continue
                miss = await self._read_block(client, req, results)
                if miss is not None:
                    missed[req.unit_id] = miss
            if missed and self.units.all_failing():
                units = ", ".join(str(u) for u in sorted(missed))
                self._lose(TransportFailure.TIMEOUT)
                raise DriverUnavailable(f"{self.endpoint}: timeout: no unit answers (unit {units})")
        samples = []
        not_fetched: dict[int, list[str]] = {}
        good = Status.Good
        for p in planned:
            out = results[id(p)]
            if out.status in NOT_FETCHED:
                not_fetched.setdefault(out.status, []).append(p.name)
            else:
                samples.append(TagSample(p.name, out.value, out.status, out.arrived, out.arrived))
            if out.status is not good or self._reported:
                self._report(p, out)
        return ReadResult(samples, not_fetched)

    async def write(self, point: RegisterPoint, value: TagValue) -> Status:
        """Write one value with FC5 (coil), FC6 (one register) or FC16 (several registers).

        With ``write_multiple`` (for devices that only implement the "multiple" functions) a coil
        is written with FC15 and a one-register value with FC16.

        Refusals are decided before anything is sent: a point that is not writable gives
        BadNotWritable, a value of the wrong kind BadTypeMismatch, a value outside [low, high] or
        outside the raw type BadOutOfRange. Without a connection the result is BadNotConnected; a
        demoted unit gives BadNoCommunication; an exception response its mapped status.
        """
        refusal = check_write(point, value)
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
            if self.units.is_demoted(point.unit_id):
                return self._refuse(point, value, Status.BadNoCommunication)
            try:
                response = await self._send(write_call(self._client, point, registers, multiple=self.write_multiple), retries=0)
            except _TransportError as exc:
                if exc.failure is TransportFailure.TIMEOUT:
                    self._missed(point.unit_id, str(exc))
                else:
                    self._lose(exc.failure)
                status = transport_status(exc.failure)
                self._log.warning("modbus_write_failed", tag=point.name, status=status.name, error=str(exc))
                return status
            code = getattr(response, "exception_code", -1) if response.isError() else None
            if code in NO_ANSWER_CODES:
                self._missed(point.unit_id, exception_name(code))
            else:
                self._answered(point.unit_id)
        if code is not None:
            status = exception_status(code)
            self._log.warning("modbus_write_failed", tag=point.name, status=status.name, exception=exception_name(code))
            return status
        return Status.Good

    async def close(self) -> None:
        """Release the transport. Idempotent; never raises."""
        self._drop_client()
        self._state = LinkState.CLOSED
        await asyncio.sleep(0)  # let the transport deliver connection_lost before returning

    # -- reading -----------------------------------------------------------------------------------------

    async def _read_block(self, client: Any, req: ReadRequest, results: dict[int, Outcome]) -> Outcome | None:
        """Read one block into *results*; return the outcome of a unit that did not answer, or None."""
        try:
            response = await self._send(read_call(client, req), retries=self.retries)
        except _TransportError as exc:
            if exc.failure is not TransportFailure.TIMEOUT:
                self._lose(exc.failure)
                raise DriverUnavailable(f"{self.endpoint}: {exc}") from None
            self._missed(req.unit_id, str(exc))
            miss = Outcome(None, transport_status(exc.failure), utcnow(), Reason.NO_ANSWER, str(exc))
            fill(results, req.points, miss)
            return miss
        arrived = utcnow()
        if not response.isError():
            self._answered(req.unit_id)
            values = response.bits if req.area.is_bit else response.registers
            for p, out in zip(req.points, decode_request(values, req, arrived)):
                results[id(p)] = out
            return None
        code = getattr(response, "exception_code", -1)
        status, detail = exception_status(code), exception_name(code)
        if code in NO_ANSWER_CODES:
            self._missed(req.unit_id, detail)
            miss = Outcome(None, status, arrived, Reason.NO_ANSWER, detail)
            fill(results, req.points, miss)
            return miss
        self._answered(req.unit_id)
        if code in ISOLATE_CODES:
            parts = split(req)
            if len(parts) > 1:
                return await self._isolate(client, req, parts, results)
            self._rejected[(req.unit_id, req.area, req.start, req.count)] = (status, detail)
        fill(results, req.points, Outcome(None, status, arrived, Reason.EXCEPTION, detail))
        return None

    async def _isolate(self, client: Any, req: ReadRequest, parts: list[ReadRequest], results: dict[int, Outcome]) -> Outcome | None:
        self._log.info("modbus_block_split", unit_id=req.unit_id, area=req.area.value, start=req.start, count=req.count, parts=len(parts))
        self._plans.read_alone(req.points)
        for part in parts:
            miss = await self._read_block(client, part, results)
            if miss is not None:
                fill(results, req.points, miss, only_missing=True)
                return miss
        return None

    # -- sending -----------------------------------------------------------------------------------------

    async def _send(self, call: Callable[[], Awaitable[ModbusPDU]], *, retries: int) -> ModbusPDU:
        """Send one request (re-sent up to *retries* times on timeout), keeping the inter-frame pause."""
        attempt = 0
        while True:
            pause = self._quiet_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                self.requests_sent += 1
                return await self._call(call)
            except _TransportError as exc:
                if exc.failure is not TransportFailure.TIMEOUT or attempt >= retries:
                    raise
                attempt += 1
            finally:
                self._quiet_until = time.monotonic() + self.frame_pause_s

    async def _call(self, request: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        pending = cancel_requests()
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await request()
        except TimeoutError:
            raise_if_cancel_was_swallowed(pending)
            raise _TransportError(TransportFailure.TIMEOUT, f"no response within {self.timeout_s:g} s") from None
        except ConnectionException as exc:
            raise _TransportError(TransportFailure.CONNECTION_LOST, str(exc)) from None
        except ModbusIOException as exc:  # a response that does not decode or does not match
            raise _TransportError(TransportFailure.PROTOCOL_ERROR, str(exc)) from None
        except ModbusException as exc:
            raise _TransportError(TransportFailure.PROTOCOL_ERROR, str(exc)) from None
        except OSError as exc:
            raise _TransportError(TransportFailure.CONNECTION_LOST, str(exc)) from None
        raise_if_cancel_was_swallowed(pending)
        return response

    # -- bookkeeping -------------------------------------------------------------------------------------

    def _answered(self, unit_id: int) -> None:
        if self.units.on_answer(unit_id):
            self._log.info("modbus_unit_recovered", unit_id=unit_id)

    def _missed(self, unit_id: int, error: str) -> None:
        if self.units.on_timeout(unit_id):
            self._log.warning("modbus_unit_unreachable", unit_id=unit_id, error=error, demoted_for_s=self.units.demote_for_s)

    def _connected_client(self) -> Any:
        if not self._is_connected():
            was_connected = self._state is LinkState.CONNECTED
            self._drop_client()
            self._state = LinkState.DISCONNECTED
            raise DriverUnavailable(f"{self.endpoint}: {'connection lost' if was_connected else 'not connected'}")
        return self._client

    def _lose(self, failure: TransportFailure) -> None:
        self._drop_client()
        self._state = LinkState.DISCONNECTED
        self._log.debug("modbus_transport_closed", reason=failure.value)

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

    def _report(self, point: RegisterPoint, out: Outcome) -> None:
        status = out.status
        if status is Status.Good:
            if self._reported.pop(point.name, None) is not None:
                self._log.info("modbus_point_recovered", tag=point.name)
            return
        if out.reason is Reason.NO_ANSWER or self._reported.get(point.name) == status:
            return  # a unit that does not answer is logged once per unit, not per point
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
