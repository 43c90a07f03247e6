"""Server/ServerDiagnostics/ServerDiagnosticsSummary, kept by the server (OPC UA Part 5, 6.3.3 and 12.9).

asyncua leaves the summary at zero and EnabledFlag false. The gateway counts what the summary
asks for where it happens:

* sessions (``auth.SessionHooks``): created (Cumulated), activated now (Current), closed by the
  session timeout (SessionTimeout) or without a CloseSession otherwise (SessionAbort: a lost
  connection of a session without subscriptions, the server stopping);
* refused requests (``auth.GuardedUaProcessor.send_response``): every ServiceFault a client gets
  (RejectedRequests), those with a security status (SecurityRejectedRequests, ``SECURITY_CODES``),
  and of those the answers to CreateSession and ActivateSession (RejectedSession,
  SecurityRejectedSession);
* subscriptions (``stats.SubscriptionStats``): client subscriptions created (Cumulated), existing
  (Current), and their distinct publishing intervals (PublishingIntervalCount).

``ServerViewCount`` is 0: the server has no views. ``summary`` is pure; ``SummaryWriter`` writes
the structure and its twelve variables once a second when they changed (task
``opcua:diagnostics_summary``), so clients can subscribe to them.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from asyncua import ua

_S = ua.StatusCodes
SECURITY_CODES = frozenset(
    {
        _S.BadSecurityChecksFailed, _S.BadSecurityPolicyRejected, _S.BadSecurityModeRejected, _S.BadUserAccessDenied,
        _S.BadIdentityTokenInvalid, _S.BadIdentityTokenRejected, _S.BadUserSignatureInvalid, _S.BadApplicationSignatureInvalid,
        _S.BadCertificateInvalid, _S.BadCertificateUntrusted, _S.BadCertificateRevoked, _S.BadCertificateTimeInvalid,
        _S.BadCertificateUriInvalid, _S.BadCertificateHostNameInvalid, _S.BadCertificateUseNotAllowed, _S.BadNoValidCertificates,
    }
)  # fmt: skip


@dataclass
class ServerCounters:
    """Counts since the server started (the current figures are read from their owners)."""

    cumulated_sessions: int = 0
    rejected_sessions: int = 0
    security_rejected_sessions: int = 0
    session_timeouts: int = 0
    session_aborts: int = 0
    rejected_requests: int = 0
    security_rejected_requests: int = 0

    def fault(self, status: int, session_request: bool) -> None:
        """A ServiceFault with *status* went to a client (*session_request*: the answer to a
        CreateSession or ActivateSession)."""
        security = status in SECURITY_CODES
        self.rejected_requests += 1
        self.security_rejected_requests += security
        if session_request:
            self.rejected_sessions += 1
            self.security_rejected_sessions += security


_COUNTERS: weakref.WeakKeyDictionary[Any, ServerCounters] = weakref.WeakKeyDictionary()


def counters_of(iserver: Any) -> ServerCounters | None:
    """The counters kept for asyncua's InternalServer *iserver*, if it has them."""
    return _COUNTERS.get(iserver)


def keep_counters(iserver: Any) -> ServerCounters:
    """Start counting for *iserver* (idempotent)."""
    counters = _COUNTERS.get(iserver)
    if counters is None:
        counters = _COUNTERS[iserver] = ServerCounters()
    return counters


def summary(
    c: ServerCounters, *, sessions: int, subscriptions: int, cumulated_subscriptions: int, publishing_intervals: int
) -> ua.ServerDiagnosticsSummaryDataType:
    return ua.ServerDiagnosticsSummaryDataType(
        ServerViewCount=0,
        CurrentSessionCount=sessions,
        CumulatedSessionCount=c.cumulated_sessions,
        SecurityRejectedSessionCount=c.security_rejected_sessions,
        RejectedSessionCount=c.rejected_sessions,
        SessionTimeoutCount=c.session_timeouts,
        SessionAbortCount=c.session_aborts,
        CurrentSubscriptionCount=subscriptions,
        CumulatedSubscriptionCount=cumulated_subscriptions,
        PublishingIntervalCount=publishing_intervals,
        SecurityRejectedRequestsCount=c.security_rejected_requests,
        RejectedRequestsCount=c.rejected_requests,
    )


_ids = ua.ObjectIds
_STRUCT = ua.NodeId(_ids.Server_ServerDiagnostics_ServerDiagnosticsSummary)
_FIELDS = {
    name: ua.NodeId(getattr(_ids, f"Server_ServerDiagnostics_ServerDiagnosticsSummary_{name}"))
    for name in ua.ServerDiagnosticsSummaryDataType.__dataclass_fields__
    if name != "data_type"
}


class SummaryWriter:
    """Writes the summary of one server into its standard nodes."""

    def __init__(self, ua_server: Any, counters: ServerCounters, sessions: Any, subscriptions: Any) -> None:
        self.ua_server = ua_server
        self.counters = counters
        self.sessions = sessions  # auth.SessionHooks (count)
        self.subscriptions = subscriptions  # stats.SubscriptionStats (subscriptions, cumulated, publishing_intervals)
        self._last: ua.ServerDiagnosticsSummaryDataType | None = None

    def current(self) -> ua.ServerDiagnosticsSummaryDataType:
        return summary(
            self.counters,
            sessions=self.sessions.count,
            subscriptions=self.subscriptions.subscriptions,
            cumulated_subscriptions=self.subscriptions.cumulated,
            publishing_intervals=self.subscriptions.publishing_intervals,
        )

    async def write(self) -> None:
        """Write the summary and its variables if they changed since the last write."""
        now = self.current()
        if now == self._last:
            return
        self._last = now
        write = self.ua_server.write_attribute_value
        await write(_STRUCT, ua.DataValue(ua.Variant(now, ua.VariantType.ExtensionObject)))
        for name, nid in _FIELDS.items():
            await write(nid, ua.DataValue(ua.Variant(getattr(now, name), ua.VariantType.UInt32)))

    async def run(self, period_s: float = 1.0) -> None:
        while True:
            await self.write()
            await asyncio.sleep(period_s)
