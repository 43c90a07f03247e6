"""Password checks off the event loop, with a backoff per user and per address after failures.

A scrypt check costs ~30 ms of CPU; asyncua asks the user manager synchronously, on the event
loop, and allowed ~14 guesses a second without limit. Now:

* ``LoginThrottle.check`` runs the scrypt check in a worker thread (``asyncio.to_thread``; at most
  ``concurrency`` at once), before asyncua's synchronous ``activate_session`` asks for the user;
  the answer is handed over through ``take`` (``auth.OpcUaUserManager``).
* After a failed login, the next attempt for the same user name and from the same address waits:
  ``initial_s`` after the first failure, doubling per failure up to ``max_user_s`` (per user: a
  guesser cannot lock the real user out for longer) and ``max_address_s`` (per address). Attempts
  are served one after the other per key; one that would wait longer than ``max_wait_s`` is
  refused at once (BadUserAccessDenied) without a check. A success clears both keys; failures are
  forgotten ``forget_after_s`` after the last one.
* ``login_failed`` is logged once per burst per (user, address): the first failure, then at most
  once a minute with the number of failures suppressed in between; ``failures`` counts them all.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from edge.core.ratelimit import BurstLimiter
from edge.opcua.users import Principal, UserDirectory

__all__ = ["LoginSettings", "LoginThrottle"]

log = structlog.get_logger("edge.opcua.logins")

_MAX_KEYS = 4096


@dataclass(frozen=True, slots=True)
class LoginSettings:
    initial_s: float = 0.25
    max_user_s: float = 5.0
    max_address_s: float = 30.0
    max_wait_s: float = 30.0
    forget_after_s: float = 600.0
    concurrency: int = 2


@dataclass(slots=True)
class _Key:
    failures: int = 0
    next_at: float = 0.0  # the earliest time the next attempt is checked
    last_failure: float = 0.0


class LoginThrottle:
    def __init__(self, directory: UserDirectory, settings: LoginSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.settings = settings or LoginSettings()
        self._clock = clock
        self._keys: OrderedDict[tuple[str, str], _Key] = OrderedDict()
        self._done: dict[tuple[int, str, str], Principal | None] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._logs = BurstLimiter(60.0, clock=clock)
        self.failures = 0
        self.refused = 0

    # -- the pure part: delays ----------------------------------------------------------------
    def delay(self, failures: int, cap: float) -> float:
        if failures <= 0:
            return 0.0
        return min(self.settings.initial_s * 2 ** min(failures - 1, 30), cap)

    def _key(self, kind: str, name: str) -> _Key:
        k = (kind, name)
        entry = self._keys.get(k)
        now = self._clock()
        if entry is not None and entry.failures and now - entry.last_failure > self.settings.forget_after_s:
            entry = None
        if entry is None:
            entry = self._keys[k] = _Key()
            while len(self._keys) > _MAX_KEYS:
                self._keys.popitem(last=False)
        self._keys.move_to_end(k)
        return entry

    def reserve(self, user: str, address: str) -> float | None:
        """The seconds this attempt waits before its check (reserving its turn), or None when it
        is refused without a check."""
        s = self.settings
        now = self._clock()
        u, a = self._key("user", user), self._key("address", address)
        start = max(now, u.next_at, a.next_at)
        if start - now > s.max_wait_s:
            return None
        u.next_at = start + self.delay(u.failures, s.max_user_s)
        a.next_at = start + self.delay(a.failures, s.max_address_s)
        return start - now

    def record(self, user: str, address: str, ok: bool) -> None:
        s = self.settings
        now = self._clock()
        u, a = self._key("user", user), self._key("address", address)
        if ok:
            for k in (u, a):
                k.failures, k.next_at = 0, 0.0
            return
        self.failures += 1
        for k, cap in ((u, s.max_user_s), (a, s.max_address_s)):
            k.failures += 1
            k.last_failure = now
            k.next_at = max(k.next_at, now + self.delay(k.failures, cap))
        suppressed = self._logs.allow((user, address))
        if suppressed is not None:
            log.warning("login_failed", user=user, address=address, suppressed=suppressed, next_delay_s=round(self.delay(u.failures, s.max_user_s), 3))

    # -- the check ------------------------------------------------------------------------------
    async def check(self, session: object, user: str, password: str, address: str) -> None:
        """Check *password* of *user* off the loop, after the backoff; the answer waits for
        ``take``. A refused attempt leaves a "no" for ``take``."""
        key = (id(session), user, password)
        wait = self.reserve(user, address)
        if wait is None:
            self.refused += 1
            suppressed = self._logs.allow(("refused", address))
            if suppressed is not None:
                log.warning("login_throttled", user=user, address=address, suppressed=suppressed, hint="too many failed logins; wait")
            self._done[key] = None
            return
        if wait > 0:
            await asyncio.sleep(wait)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        async with self._semaphore:
            principal = await asyncio.to_thread(self.directory.authenticate, user, password)
        self.record(user, address, principal is not None)
        self._done[key] = principal

    def take(self, session: object, user: str, password: str) -> tuple[bool, Principal | None]:
        """(whether ``check`` answered for this attempt, its answer); each answer is taken once."""
        key = (id(session), user, password)
        if key in self._done:
            return True, self._done.pop(key)
        return False, None

    def forget(self, session: object) -> None:
        """Drop answers ``activate_session`` never took (its request failed before asking)."""
        sid = id(session)
        for key in [k for k in self._done if k[0] == sid]:
            del self._done[key]
