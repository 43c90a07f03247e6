"""The transport-independent part of the Modbus drivers: one bus, its lock, its units and its requests.

One driver is one physical bus: a TCP connection (a device, or a gateway serving several unit
ids) or a serial port (an RS-485 line with several units). One ``asyncio.Lock`` guards the bus, so
reads and writes never interleave on the wire. Points arrive already validated (``make_point``).
This module owns the link and the writes; its poll cycles (``drivers.modbus.poll.BusPoller``)
plan, send, decode and map failures to statuses:

* a Modbus exception response makes the points of that block Bad (``drivers.modbus.status``),
  logged once per point per distinct status; other blocks stay Good. ILLEGAL_ADDRESS or
  ILLEGAL_VALUE to a block of several points splits the block into one request per point, so only
  the point the device rejects is Bad; the split is remembered and the rejected point is not asked
  again until the next connect;
* a value that does not decode makes that point ``BadDecodingError``;
* each unit waits for its answers an adaptive timeout learnt from its response times, between
  ``timeout_min_s`` and ``timeout_s`` (``drivers.modbus.rtt``); a request without an answer, or
  with one that does not decode, is sent again up to ``retries`` times (``drivers.modbus.exchange``),
  so a lost frame costs a short wait, not a miss;
* a unit that still does not answer gets ``BadTimeout`` for that block; its other blocks are still
  read (one lost exchange does not starve them). After two misses in a row it is *suspect*: one
  block per cycle, the last re-send waiting ``timeout_s``, the skipped blocks first in the next
  cycle. After ``demote_after`` consecutive misses it is demoted (``BadNoCommunication``, not
  polled) for ``demote_for_s`` seconds, so it cannot stall the other units on the bus. Outage
  and recovery are logged once per unit;
* a lost connection, or a bus on which no unit answered for ``reopen_after`` poll cycles in a row
  (a dead or half-open transport), closes the transport and raises ``DriverUnavailable`` from
  ``read``; the supervisor marks the tags stale and reconnects with backoff (pymodbus's own
  reconnection and retries are switched off).

``read_streaming`` hands each block's samples to a sink as soon as they are decoded, so the
gateway publishes (and dates) every value when it arrives rather than at the end of the cycle.
``write`` never raises for I/O problems: it returns the status that explains the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from pymodbus.exceptions import ModbusException
from structlog.typing import FilteringBoundLogger

from drivers.base import DriverUnavailable, LinkState, ReadResult
from drivers.modbus.address import RegisterPoint
from drivers.modbus.calls import cancel_requests, raise_if_cancel_was_swallowed, write_call
from drivers.modbus.codec import decode, encode
from drivers.modbus.exchange import Exchange, TransportError
from drivers.modbus.limits import MAX_READ_BITS, MAX_READ_REGISTERS, MAX_WRITE_REGISTERS
from drivers.modbus.outcome import Outcome, check_write
from drivers.modbus.plan_cache import PlanCache, Points
from drivers.modbus.poll import MISS_FAILURES, BusPoller, Emit, LinkLost
from drivers.modbus.reporting import PointReporter
from drivers.modbus.rtt import ResponseTimer
from drivers.modbus.status import NO_ANSWER_CODES, TransportFailure, exception_name, exception_status, transport_status
from drivers.modbus.units import UnitTracker
from drivers.sample import Status, TagValue

if TYPE_CHECKING:
    from drivers.modbus.settings import ModbusSettings

Sink = Callable[[ReadResult], None]


class ModbusDriver:
    """Everything common to Modbus TCP and RTU; subclasses (``drivers.modbus.driver``) build the client.

    The constructor takes its settings as they are: ``from_settings`` builds a driver from a
    validated settings model (``drivers.modbus.settings``), which is where the limits are checked.
    """

    kind: ClassVar[str] = "modbus"
    # settings of both transports, passed from the settings model to the constructor by from_settings
    BUS_SETTINGS: ClassVar[tuple[str, ...]] = (
        "timeout_s",
        "timeout_min_s",
        "adaptive_timeout",
        "retries",
        "reopen_after",
        "max_registers",
        "max_bits",
        "max_gap",
        "demote_after",
        "demote_for_s",
        "write_multiple",
    )

    def __init__(
        self,
        *,
        name: str,
        timeout_s: float = 1.0,
        timeout_min_s: float = 0.05,
        adaptive_timeout: bool = True,
        retries: int = 3,
        reopen_after: int = 3,
        max_registers: int = MAX_READ_REGISTERS,
        max_bits: int = MAX_READ_BITS,
        max_gap: int = 10,
        demote_after: int = 5,
        demote_for_s: float = 10.0,
        frame_pause_s: float = 0.0,
        write_multiple: bool = False,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self.name = name
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.reopen_after = reopen_after
        self.max_registers = max_registers
        self.max_bits = max_bits
        self.max_gap = max_gap
        self.frame_pause_s = float(frame_pause_s)
        self.timer = ResponseTimer(timeout_s=timeout_s, timeout_min_s=min(timeout_min_s, timeout_s), adaptive=adaptive_timeout)
        self._wire = Exchange(self.timer, frame_pause_s=self.frame_pause_s)
        self.write_multiple = bool(write_multiple)  # FC15/FC16 even for one coil or register
        self.units = UnitTracker(demote_after=demote_after, demote_for_s=demote_for_s)
        self._log = (log if log is not None else structlog.get_logger("drivers.modbus")).bind(device=name, driver=self.kind)
        self._client: Any = None
        self._state = LinkState.DISCONNECTED
        self._lock = asyncio.Lock()  # one per physical bus: reads and writes share it
        self._plans = PlanCache(max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)
        self._reporter = PointReporter(self._log)
        self._poller = BusPoller(
            wire=self._wire,
            timer=self.timer,
            units=self.units,
            plans=self._plans,
            log=self._log,
            timeout_s=self.timeout_s,
            retries=retries,
            reopen_after=reopen_after,
        )

    @property
    def requests_sent(self) -> int:
        """Requests put on the wire since the driver was made, re-sends included."""
        return self._wire.requests_sent

    @property
    def timeouts(self) -> int:
        """Requests that got no answer within their timeout."""
        return self._wire.timeouts

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
        self._poller.reset()

    async def read(self, points: Sequence[RegisterPoint]) -> ReadResult:
        """Fetch *points*: a sample keyed by ``point.name`` for each point that was answered (Good,
        or Bad for an exception response or a value that does not decode), and in ``not_fetched``
        the points of units that did not answer or are demoted.

        ``source_time`` and ``server_time`` are when the block's response arrived. Requests are
        planned once per distinct points tuple and cached.
        """
        results: dict[int, Outcome] = {}  # id(planned point) -> outcome: cheaper than hashing points
        planned = await self._cycle(points if isinstance(points, tuple) else tuple(points), results, None)
        return self._reporter.result(planned, results)

    async def read_streaming(self, points: Sequence[RegisterPoint], sink: Sink) -> None:
        """Like ``read``, but hand each block's result to *sink* as soon as it is decoded.

        *sink* gets one ReadResult per request of the plan (points of a block that was not asked
        in this cycle, because its unit is demoted or gave up, come in ``not_fetched``). It is
        called under the bus lock, so no write can slip in between a block's response and its
        publication. Raises DriverUnavailable like ``read``.
        """
        results: dict[int, Outcome] = {}
        await self._cycle(points if isinstance(points, tuple) else tuple(points), results, lambda block: sink(self._reporter.result(block, results)))

    async def _cycle(self, key: Points, results: dict[int, Outcome], emit: Emit | None) -> Points:
        """One poll cycle over the plan of *key* (``drivers.modbus.poll``); a lost link is closed here."""
        async with self._lock:
            client = self._connected_client()
            try:
                return await self._poller.cycle(client, key, results, emit)
            except LinkLost as exc:
                self._lose(exc.failure)
                raise DriverUnavailable(f"{self.endpoint}: {exc}") from None

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
                # a write is sent once and waits the full timeout_s: a device may take its time to
                # store a value, and a command register must not see the command twice
                call = write_call(self._client, point, registers, multiple=self.write_multiple)
                response = await self._wire.send(call, unit_id=point.unit_id, retries=0, timeout_s=self.timeout_s)
            except TransportError as exc:
                if exc.failure in MISS_FAILURES:
                    self._poller.missed(point.unit_id, str(exc))
                else:
                    self._lose(exc.failure)
                status = transport_status(exc.failure)
                self._log.warning("modbus_write_failed", tag=point.name, status=status.name, error=str(exc))
                return status
            code = getattr(response, "exception_code", -1) if response.isError() else None
            if code in NO_ANSWER_CODES:
                self._poller.missed(point.unit_id, exception_name(code))
            else:
                self._poller.answered(point.unit_id)
        if code is not None:
            status = exception_status(code)
            self._log.warning("modbus_write_failed", tag=point.name, status=status.name, exception=exception_name(code))
            return status
        return Status.Good

    def written_value(self, point: RegisterPoint, value: TagValue) -> TagValue:
        """The value *point* reads back after a Good write of *value*: the registers sent, decoded
        as the tag is read (a scaled value rounded to the raw integer the device stores)."""
        try:
            return decode(encode(value, point), point)
        except (TypeError, ValueError):
            return value

    async def close(self) -> None:
        """Release the transport. Idempotent; never raises."""
        self._drop_client()
        self._state = LinkState.CLOSED
        await asyncio.sleep(0)  # let the transport deliver connection_lost before returning

    # -- bookkeeping -------------------------------------------------------------------------------------

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
