"""Users and roles of the northbound OPC UA server: salted password hashes, the role ladder, who is calling.

Passwords are never stored: the config holds ``scrypt$N$r$p$salt$hash`` (salt and hash in base64),
made by ``edgetwin hash-password``. Roles form a ladder, each one including the one below:

* ``viewer``: browse, read, subscribe, read history
* ``operator``: + write writable setpoints, call Simulate
* ``admin``: + ResetModel

``role_of(x)`` answers for a principal, an asyncua user or session, or ``None``; method handlers
use ``current_role()``, which the server sets for the duration of each client request it serves
(async handlers only: asyncua runs sync handlers in a thread pool without the request context).

This module has no asyncua import, so the config can use it without loading the OPC UA stack.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


class Role(enum.IntEnum):
    """The role ladder; a higher value includes every right of the lower ones."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        return cls[text.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES = tuple(r.label for r in Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a session belongs to: a configured user or the anonymous login."""

    name: str
    role: Role
    anonymous: bool = False


# -- password hashes -------------------------------------------------------------------------
SCRYPT_N = 2**14  # ~16 MiB and a few tens of ms per check: logins are rare, guesses are expensive
SCRYPT_R = 8
SCRYPT_P = 1
_HASH_RE = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$")


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def __str__(self) -> str:
        b64 = base64.b64encode
        return f"scrypt${self.n}${self.r}${self.p}${b64(self.salt).decode()}${b64(self.digest).decode()}"


def parse_password_hash(text: str) -> PasswordHash:
    """Parse ``scrypt$N$r$p$salt$hash``; raise ValueError (with a hint) for anything else."""
    m = _HASH_RE.match(text)
    if m is None:
        raise ValueError("not a password hash (expected scrypt$N$r$p$salt$hash as printed by `edgetwin hash-password`); plain-text passwords are not accepted")
    n, r, p = (int(m.group(i)) for i in (1, 2, 3))
    if n < 2**10 or n & (n - 1):
        raise ValueError(f"scrypt N must be a power of two >= 1024, got {n}")
    if not (1 <= r <= 64 and 1 <= p <= 16) or n * r * 128 > 256 * 2**20:
        raise ValueError(f"scrypt parameters out of range (N={n}, r={r}, p={p}; memory limit 256 MiB)")
    try:
        salt, digest = base64.b64decode(m.group(4), validate=True), base64.b64decode(m.group(5), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64 in password hash: {exc}") from None
    if len(salt) < 16 or len(digest) < 32:
        raise ValueError("password hash salt must be >= 16 bytes and hash >= 32 bytes")
    return PasswordHash(n, r, p, salt, digest)


def _scrypt(password: str, n: int, r: int, p: int, salt: bytes, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=300 * 2**20)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new salted hash of *password* in the config's format."""
    if not password:
        raise ValueError("empty password")
    salt = secrets.token_bytes(16)
    return str(PasswordHash(n, r, p, salt, _scrypt(password, n, r, p, salt, 32)))


def verify_password(password: str, stored: PasswordHash) -> bool:
    candidate = _scrypt(password, stored.n, stored.r, stored.p, stored.salt, len(stored.digest))
    return hmac.compare_digest(candidate, stored.digest)


# -- the user directory ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserEntry:
    name: str
    password: PasswordHash
    role: Role


class UserDirectory:
    """Authenticates logins against the configured users; anonymous only when allowed."""

    def __init__(self, users: list[UserEntry] | tuple[UserEntry, ...] = (), *, anonymous_role: Role | None = None) -> None:
        self._users = {u.name: u for u in users}
        self.anonymous_role = anonymous_role
        # checked for unknown names too, so a wrong name costs the same time as a wrong password
        self._dummy = parse_password_hash(hash_password(secrets.token_hex(8)))

    @property
    def allows_anonymous(self) -> bool:
        return self.anonymous_role is not None

    @property
    def has_users(self) -> bool:
        return bool(self._users)

    def anonymous(self) -> Principal | None:
        if self.anonymous_role is None:
            return None
        return Principal("anonymous", self.anonymous_role, anonymous=True)

    def authenticate(self, name: str, password: str) -> Principal | None:
        entry = self._users.get(name)
        ok = verify_password(password, entry.password if entry else self._dummy)
        if entry is None or not ok:
            return None
        return Principal(entry.name, entry.role)

    @classmethod
    def from_config(cls, users: Any, *, allow_anonymous: bool, anonymous_role: str) -> UserDirectory:
        entries = [UserEntry(u.name, parse_password_hash(u.password_hash), Role.parse(u.role)) for u in users]
        return cls(entries, anonymous_role=Role.parse(anonymous_role) if allow_anonymous else None)


# -- who is calling --------------------------------------------------------------------------
current_principal: ContextVar[Principal | None] = ContextVar("edgetwin_current_principal", default=None)


def role_of(who: Any) -> Role | None:
    """The role of a Principal, an asyncua user carrying one, or a session; None if unknown."""
    if who is None:
        return None
    if isinstance(who, Principal):
        return who.role
    principal = getattr(who, "principal", None)
    if isinstance(principal, Principal):
        return principal.role
    user = getattr(who, "user", None)  # an asyncua InternalSession
    if user is not None and user is not who:
        return role_of(user)
    return None


def current_role() -> Role | None:
    """The role of the client whose request is being served (None outside a client request)."""
    return role_of(current_principal.get())
