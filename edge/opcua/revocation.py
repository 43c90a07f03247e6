"""Revocation at once: sessions of a certificate removed from ``trusted/`` (or revoked by a CRL
in ``trusted/crl``) are closed, and new ones refused, without a restart.

* New sessions: ``ClientCertificateValidator`` reloads the trust list whenever ``trusted/``
  changed before it answers CreateSession, and ``auth.GuardedUaProcessor`` asks
  ``ClientCertificateValidator.allowed`` before CreateSession and ActivateSession (also the
  re-activation of a session on a new secure channel), answering BadCertificateRevoked.
* Existing sessions: ``TrustWatcher.run`` (task ``opcua:trust_watch``) looks at ``trusted/`` every
  ``interval_s``; after a change it closes every session, and its connection, whose channel
  certificate is no longer allowed (``client_certificate_revoked``, one line per certificate).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from edge.opcua.security import ClientCertificateValidator
from edge.opcua.transport import guard_of

__all__ = ["TrustWatcher"]

log = structlog.get_logger("edge.opcua.revocation")


class TrustWatcher:
    def __init__(self, validator: ClientCertificateValidator, iserver: Any, *, interval_s: float = 1.0) -> None:
        self.validator = validator
        self.iserver = iserver
        self.interval_s = interval_s
        self.closed = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if await self.validator.reload_if_changed():
                await self.enforce()

    async def enforce(self) -> int:
        """Close the sessions and connections whose client certificate is no longer allowed."""
        guard = guard_of(self.iserver)
        closed = 0
        seen: set[bytes] = set()
        for conn in list(guard.connections) if guard else []:
            der = conn.peer_certificate  # type: ignore[attr-defined]
            if not der or await self.validator.allowed(der):
                continue
            if der not in seen:
                seen.add(der)
                log.warning("client_certificate_revoked", address=conn.address, action="session and connection closed")
            session = conn.processor.session if conn.processor is not None else None  # type: ignore[attr-defined]
            if session is not None:
                await session.close_session(True)
            conn.evict("client certificate revoked")
            closed += 1
        self.closed += closed
        return closed
