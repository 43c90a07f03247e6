"""Connections of the OPC UA server that careless or hostile peers cannot lock up or fill.

asyncua 2.1 accepts up to 1,000 connections and keeps each for 30 s before a session must be
active; it buffers a whole announced message body before looking at its size, so one header
announcing 2 GB makes it hold everything the peer sends. The gateway's connection protocol
(``GuardedProtocol``, installed by ``edge.opcua.asyncua_patches.install_protocol_guard``) adds:

* **admission** (``ConnectionGuard``, pure): at most ``max_connections`` in all and
  ``max_connections_per_address`` per peer address. When a cap is reached the oldest connection
  without an activated session is closed to make room; only when every connection has an
  activated session is the new one refused. A client that logs in therefore always gets a slot.
* **a handshake deadline**: a connection must complete HEL, OPN, CreateSession and
  ActivateSession within ``handshake_timeout_s`` (asyncua's activation watchdog, shortened).
* **sizes checked on the header, before buffering**: a chunk larger than the negotiated receive
  buffer (at most ``max_chunk_bytes``) is answered with an ERR message (BadTcpMessageTooLarge)
  and the connection is closed; a message may span at most ``max_message_bytes``. Before a
  session is active, a connection may send neither multi-chunk messages nor more than
  ``max_pending_unauthenticated`` queued messages, and HEL only as its first message, so its
  memory stays below a few chunks and is released on close.

Refusals and evictions are logged once per burst per address (``connection_refused``,
``connection_evicted``, ``connection_rejected``) and counted (``ConnectionGuard.counters``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from asyncua import ua
from asyncua.common.connection import TransportLimits
from asyncua.server.binary_server_asyncio import OPCUAProtocol
from asyncua.ua.ua_binary import uatcp_to_binary

from edge.core.ratelimit import BurstLimiter
from edge.opcua.peer_logs import current_peer

__all__ = ["ConnectionGuard", "GuardedProtocol", "TransportSettings", "guard_of", "set_guard"]

log = structlog.get_logger("edge.opcua.transport")

_CLIENT_TYPES = frozenset({b"HEL", b"OPN", b"MSG", b"CLO"})


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Connection and message limits of the OPC UA server (``[opcua.limits]``)."""

    max_connections: int = 100
    max_connections_per_address: int = 20
    handshake_timeout_s: float = 10.0
    max_chunk_bytes: int = 65535
    max_message_bytes: int = 16 * 2**20
    max_pending_unauthenticated: int = 4
    max_session_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_connections_per_address < 1:
            raise ValueError("connection limits must be >= 1")
        if self.max_chunk_bytes < 8192:
            raise ValueError("max_chunk_bytes must be >= 8192 (OPC UA's minimum buffer size)")
        if self.max_message_bytes < self.max_chunk_bytes:
            raise ValueError("max_message_bytes must be >= max_chunk_bytes")

    def asyncua_limits(self) -> TransportLimits:
        return TransportLimits(
            max_recv_buffer=self.max_chunk_bytes,
            max_send_buffer=self.max_chunk_bytes,
            max_chunk_count=math.ceil(self.max_message_bytes / self.max_chunk_bytes),
            max_message_size=self.max_message_bytes,
        )


class Connection(Protocol):
    """What the guard needs of a connection (``GuardedProtocol``; fakes in tests)."""

    address: str
    opened: float

    @property
    def authenticated(self) -> bool: ...

    def evict(self, reason: str) -> None: ...


class ConnectionGuard:
    """Admission of new connections under the two caps; see the module docstring."""

    def __init__(self, settings: TransportSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.connections: list[Connection] = []  # oldest first
        self.counters = {"accepted": 0, "refused": 0, "evicted": 0, "rejected": 0}
        self._logs = BurstLimiter(60.0, clock=clock)

    def admit(self, conn: Connection) -> bool:
        """Add *conn*, closing the oldest unauthenticated connections a cap needs; False when
        every connection that would have to go has an activated session (the caller closes *conn*)."""
        s = self.settings
        victims: list[Connection] = []
        same = [c for c in self.connections if c.address == conn.address]
        if len(same) >= s.max_connections_per_address:
            victim = _oldest_idle(same)
            if victim is None:
                return self._refuse(conn, f"{s.max_connections_per_address} connections from this address have sessions")
            victims.append(victim)
        if len(self.connections) - len(victims) >= s.max_connections:
            victim = _oldest_idle(c for c in self.connections if c not in victims)
            if victim is None:
                return self._refuse(conn, f"all {s.max_connections} connections have sessions")
            victims.append(victim)
        for v in victims:
            self.release(v)
            self.counters["evicted"] += 1
            self.log_once("connection_evicted", v.address, reason="connection limit reached; the oldest connection without a session is closed")
            v.evict("connection limit reached")
        self.connections.append(conn)
        self.counters["accepted"] += 1
        return True

    def release(self, conn: Connection) -> None:
        with contextlib.suppress(ValueError):
            self.connections.remove(conn)

    def _refuse(self, conn: Connection, reason: str) -> bool:
        self.counters["refused"] += 1
        self.log_once("connection_refused", conn.address, reason=reason)
        return False

    def log_once(self, event: str, address: str, **kw: Any) -> None:
        """Log *event* for *address* once per minute; the repeats are counted in ``suppressed``."""
        n = self._logs.allow((event, address))
        if n is not None:
            log.warning(event, address=address, suppressed=n, **kw)


def _oldest_idle(conns: Any) -> Connection | None:
    return next((c for c in conns if not c.authenticated), None)


_GUARDS: weakref.WeakKeyDictionary[Any, ConnectionGuard] = weakref.WeakKeyDictionary()


def set_guard(iserver: Any, guard: ConnectionGuard) -> None:
    """Put the connections of the asyncua ``InternalServer`` *iserver* under *guard* and apply its
    handshake deadline (asyncua's activation watchdog) and session timeout cap."""
    _GUARDS[iserver] = guard
    s = guard.settings
    iserver.max_pending_activation_seconds = s.handshake_timeout_s
    iserver.max_connections = 2 * s.max_connections + 1  # asyncua's own cap stays out of the way
    iserver.max_session_timeout_ms = s.max_session_timeout_s * 1000
    iserver.max_pending_messages_per_connection = max(iserver.max_pending_messages_per_connection, s.max_pending_unauthenticated)


def guard_of(iserver: Any) -> ConnectionGuard | None:
    return _GUARDS.get(iserver)


class GuardedProtocol(OPCUAProtocol):
    """asyncua's per-connection protocol under a ``ConnectionGuard`` (servers without one behave
    exactly as asyncua's)."""

    address = "?"
    opened = 0.0
    _guard: ConnectionGuard | None = None
    _label: str | None = None
    _received = 0
    _closed_by_us = False

    @property
    def authenticated(self) -> bool:
        p = self.processor
        return p is not None and p.session is not None and p.session.is_activated()

    @property
    def peer_certificate(self) -> bytes | None:
        p = self.processor
        return None if p is None else p._connection.security_policy.peer_certificate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = guard_of(self.iserver)
        if guard is None:
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self._label = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.opened = time.monotonic()
        if not guard.admit(self):
            self._closed_by_us = True  # refused: whatever arrives before the abort is ignored
            transport.abort()
            return
        self._guard = guard
        token = current_peer.set(self._label)  # copied into the tasks asyncua starts for this connection
        try:
            super().connection_made(transport)
        finally:
            current_peer.reset(token)

    def connection_lost(self, ex: BaseException | None) -> None:
        if self._guard is not None:
            self._guard.release(self)
        token = current_peer.set(self._label)
        try:
            super().connection_lost(ex)
        finally:
            current_peer.reset(token)
        self._buffer = b""

    def evict(self, reason: str) -> None:
        self._close(reason)

    def _close(self, reason: str, status: int | None = None) -> None:
        self._closed_by_us = True
        self._buffer = b""
        if self.transport is None:
            return
        if status is not None:
            self.transport.write(uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(status), reason)))
            self.transport.close()
        else:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closed_by_us:
            return
        guard = self._guard
        if guard is None:
            super().data_received(data)
            return
        if self.transport is None or self.transport.is_closing():
            return
        token = current_peer.set(self._label)
        try:
            start = self._received - len(self._buffer)  # stream offset of the buffered frame
            self._received += len(data)
            problem = self._check_frames(self._buffer + data if self._buffer else data, start)
            if problem is not None:
                status, reason = problem
                guard.counters["rejected"] += 1
                guard.log_once("connection_rejected", self.address, reason=reason, status=ua.StatusCode(status).name)
                self._close(reason, status)
                return
            super().data_received(data)
            if not self.authenticated and self.messages.qsize() > guard.settings.max_pending_unauthenticated:
                guard.counters["rejected"] += 1
                guard.log_once("connection_rejected", self.address, reason="too many queued messages before a session is active")
                self._close("too many queued messages before a session is active", ua.StatusCodes.BadTcpMessageTooLarge)
        finally:
            current_peer.reset(token)

    def _chunk_limit(self) -> int:
        assert self._guard is not None
        cap = self._guard.settings.max_chunk_bytes
        negotiated = self.processor._limits.max_recv_buffer if self.processor is not None else 0
        return min(cap, negotiated) if negotiated > 0 else cap

    def _check_frames(self, buf: bytes, stream_offset: int) -> tuple[int, str] | None:
        """The first problem of the frame headers in *buf* (which starts at a frame boundary), if any."""
        limit = self._chunk_limit()
        authenticated = self.authenticated
        pos = 0
        while len(buf) - pos >= 8:
            mtype, ctype, size = struct.unpack_from("<3scI", buf, pos)
            if mtype not in _CLIENT_TYPES:
                return ua.StatusCodes.BadTcpMessageTypeInvalid, f"message type {mtype!r} is not sent by clients"
            if mtype == b"HEL" and stream_offset + pos != 0:
                return ua.StatusCodes.BadTcpMessageTypeInvalid, "HEL is only allowed as the first message"
            if mtype != b"HEL" and stream_offset + pos == 0:
                return ua.StatusCodes.BadTcpMessageTypeInvalid, "the first message must be HEL"
            if size < (8 if mtype == b"HEL" else 12):
                return ua.StatusCodes.BadTcpMessageTypeInvalid, f"malformed header (size {size})"
            if size > limit:
                return ua.StatusCodes.BadTcpMessageTooLarge, f"chunk of {size} bytes exceeds the receive buffer of {limit}"
            if ctype == b"C" and not authenticated:
                return ua.StatusCodes.BadTcpMessageTooLarge, "multi-chunk messages are refused before a session is active"
            pos += size
        return None
