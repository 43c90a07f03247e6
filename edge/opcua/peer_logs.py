"""asyncua's protocol warnings, rate-limited per peer.

asyncua logs a warning (or an error with a traceback) for each bad message it receives: a peer
that floods HEL messages, requests without a session or untrusted certificates writes one line
per message into the gateway's log. ``PeerLogFilter`` lets the first record of each
(peer address, logger, message template) through, drops the repeats for ``window_s`` seconds and
then lets the next one through with ``[N similar suppressed]`` appended; ``suppressed`` counts
every dropped record.

The peer is known through ``current_peer``, a context variable the gateway's connection protocol
(``edge.opcua.transport``) sets while it handles a connection's data and for the tasks it starts
per connection. The filter is attached to asyncua's loggers by
``edge.opcua.asyncua_patches.rate_limit_asyncua_logs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar

from edge.core.ratelimit import BurstLimiter

__all__ = ["ASYNCUA_LOG_FILTER", "PeerLogFilter", "current_peer"]

current_peer: ContextVar[str | None] = ContextVar("edgetwin_opcua_peer", default=None)


class PeerLogFilter(logging.Filter):
    """Rate-limits WARNING and above per (peer, logger, message template); lower levels pass."""

    def __init__(self, window_s: float = 60.0, *, max_keys: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._limiter = BurstLimiter(window_s, max_keys=max_keys, clock=clock)

    @property
    def suppressed(self) -> int:
        return self._limiter.suppressed_total

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if getattr(record, "_edgetwin_rate_checked", False):  # the same record seen by a parent logger's filter
            return True
        record._edgetwin_rate_checked = True  # type: ignore[attr-defined]
        peer = current_peer.get()
        n = self._limiter.allow((peer, record.name, str(record.msg)))
        if n is None:
            return False
        if n or peer:
            text = record.getMessage()
            if peer:
                text = f"{text} (peer {peer})"
            if n:
                text = f"{text} [{n} similar suppressed]"
            record.msg, record.args = text, None
        return True


ASYNCUA_LOG_FILTER = PeerLogFilter()  # the one installed on asyncua's loggers (process-wide, like them)
