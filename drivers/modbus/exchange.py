"""One request on the wire: the adaptive timeout, the re-sends, the inter-frame pause, and the
mapping of library errors to transport failures. Stateless but for counters and the pause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.modbus.calls import cancel_requests, raise_if_cancel_was_swallowed
from drivers.modbus.rtt import ResponseTimer
from drivers.modbus.status import TransportFailure


class TransportError(Exception):
    """A request failed below the Modbus application layer (``failure`` says how)."""

    def __init__(self, failure: TransportFailure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure


class Exchange:
    """Sends requests of one bus (the caller holds the bus lock)."""

    def __init__(self, timer: ResponseTimer, *, frame_pause_s: float = 0.0) -> None:
        self.timer = timer
        self.frame_pause_s = frame_pause_s
        self._quiet_until = 0.0  # monotonic time before which the next frame must not start
        self.requests_sent = 0  # every request put on the wire, re-sends included
        self.timeouts = 0  # requests that got no answer within their timeout
        self.garbled = 0  # responses that did not decode (re-sent like a timeout)

    async def send(
        self,
        call: Callable[[], Awaitable[ModbusPDU]],
        *,
        unit_id: int,
        retries: int,
        timeout_s: float | None = None,
        last_timeout_s: float | None = None,
    ) -> ModbusPDU:
        """Send one request (re-sent up to *retries* times on timeout), keeping the inter-frame pause.

        Each attempt waits the unit's adaptive timeout (``drivers.modbus.rtt``) unless *timeout_s*
        is given (*last_timeout_s*: for the last attempt only); answers to a first attempt update
        the unit's response-time estimate. A response
        that does not decode is re-sent like a timeout (Modbus TCP stays framed by its MBAP
        header, RTU by its silent intervals: the next frame is read correctly). Raises
        TransportError.
        """
        attempt = 0
        timer = self.timer
        while True:
            pause = self._quiet_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            timeout = timer.timeout(unit_id) if timeout_s is None else timeout_s
            if last_timeout_s is not None and attempt >= retries:
                timeout = max(timeout, last_timeout_s)
            try:
                self.requests_sent += 1
                sent = time.monotonic()
                response = await _call(call, timeout)
            except TransportError as exc:
                if exc.failure is TransportFailure.TIMEOUT:
                    self.timeouts += 1
                    timer.timed_out(unit_id)
                elif exc.failure is TransportFailure.PROTOCOL_ERROR:
                    self.garbled += 1
                else:
                    raise
                if attempt >= retries:
                    raise
                attempt += 1
            else:
                timer.answered(unit_id, time.monotonic() - sent, first_attempt=attempt == 0)
                return response
            finally:
                self._quiet_until = time.monotonic() + self.frame_pause_s


async def _call(request: Callable[[], Awaitable[ModbusPDU]], timeout_s: float) -> ModbusPDU:
    pending = cancel_requests()
    try:
        async with asyncio.timeout(timeout_s):
            response = await request()
    except TimeoutError:
        raise_if_cancel_was_swallowed(pending)
        raise TransportError(TransportFailure.TIMEOUT, f"no response within {timeout_s:.3g} s") from None
    except ConnectionException as exc:
        raise TransportError(TransportFailure.CONNECTION_LOST, str(exc)) from None
    except ModbusIOException as exc:  # a response that does not decode or does not match
        raise TransportError(TransportFailure.PROTOCOL_ERROR, str(exc)) from None
    except ModbusException as exc:
        raise TransportError(TransportFailure.PROTOCOL_ERROR, str(exc)) from None
    except OSError as exc:
        raise TransportError(TransportFailure.CONNECTION_LOST, str(exc)) from None
    raise_if_cancel_was_swallowed(pending)
    return response
