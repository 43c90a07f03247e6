"""Logins and per-session rights on top of asyncua.

* ``OpcUaUserManager`` turns an ActivateSession into a ``GatewayUser`` carrying a ``Principal``
  (or refuses it: asyncua then answers BadUserAccessDenied). Anonymous logins only reach it when
  the anonymous token is offered at all; otherwise asyncua answers BadIdentityTokenRejected.
* ``SessionHooks`` wraps every client session asyncua creates so that each request runs with
  ``edge.opcua.users.current_principal`` set, Call requests honour the roles methods require
  (BadUserAccessDenied before the handler runs), UserAccessLevel / UserExecutable reads answer
  for the calling user, the number of activated sessions is reported on every change, and Read,
  Write, Browse and HistoryRead honour the operation limits (``edge.opcua.operation_limits``).
* Passwords are checked off the event loop with a backoff (``edge.opcua.logins``): the processor
  checks them before asyncua's synchronous ``get_user`` asks, and hands the answer over.

``GuardedUaProcessor`` closes a gap in asyncua 2.1: its secure channel falls back to the None
policy even when None is not configured, so a client could create and activate a session and read
over an unsecured channel. Sessions are now only created or activated on a channel whose policy
and mode the server offers (GetEndpoints over None stays possible, as discovery needs it).
ActivateSession is also refused (BadCertificateRevoked) when the channel's client certificate was
removed from ``trusted/`` or revoked since (``set_certificate_check``, ``edge.opcua.revocation``).

Every principal maps to asyncua's plain ``UserRole.User``: asyncua's ``Admin`` role may rewrite
any attribute and add or delete nodes, which no remote client of the gateway may do.

The wrappers are installed through ``edge.opcua.asyncua_patches``, which checks each asyncua
attribute they replace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.uaprocessor import UaProcessor
from asyncua.server.user_managers import UserManager
from asyncua.ua.ua_binary import struct_from_binary

from edge.core.ratelimit import BurstLimiter
from edge.opcua import asyncua_patches
from edge.opcua.logins import LoginSettings, LoginThrottle
from edge.opcua.operation_limits import OperationLimits, is_large_read, serve_large_read
from edge.opcua.server_diagnostics import counters_of
from edge.opcua.users import Principal, Role, UserDirectory, current_principal, role_of

log = structlog.get_logger("edge.opcua.auth")

_ANONYMOUS = User(role=UserRole.Anonymous)  # asyncua's default user of InternalServer.create_session
_activating: ContextVar[Any] = ContextVar("edgetwin_activating_session", default=None)  # the session GuardedUaProcessor is activating
_closing_by_request: ContextVar[bool] = ContextVar("edgetwin_closing_by_request", default=False)  # within a CloseSession request


@dataclass
class GatewayUser(User):
    principal: Principal | None = None


class OpcUaUserManager(UserManager):
    """Logins: password checks run off the loop with a backoff (``edge.opcua.logins``), answered
    before asyncua's synchronous ``get_user`` asks (``GuardedUaProcessor``)."""

    def __init__(self, directory: UserDirectory, logins: LoginSettings | None = None) -> None:
        self.directory = directory
        self.logins = LoginThrottle(directory, logins)
        self._anonymous_logs = BurstLimiter(60.0)

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None) -> User | None:
        if username is None:  # the anonymous token (X509 user tokens are not offered)
            principal = self.directory.anonymous()
            if principal is None:
                suppressed = self._anonymous_logs.allow("anonymous")
                if suppressed is not None:
                    log.warning("login_refused", user="anonymous", reason="anonymous logins are off", suppressed=suppressed)
                return None
        else:
            session = _activating.get()
            answered, principal = self.logins.take(session, username, password or "") if session is not None else (False, None)
            if not answered:  # not through GuardedUaProcessor: checked here, on the loop
                principal = self.directory.authenticate(username, password or "")
                self.logins.record(username, "?", principal is not None)
            if principal is None:
                return None
        log.info("login", user=principal.name, role=principal.role.label)
        return GatewayUser(role=UserRole.User, name=principal.name, principal=principal)

    def identity_tokens(self) -> list[type]:
        tokens: list[type] = []
        if self.directory.allows_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        if self.directory.has_users:
            tokens.append(ua.UserNameIdentityToken)
        return tokens


def principal_of(user: Any) -> Principal | None:
    return getattr(user, "principal", None)


class SessionHooks:
    """Installs per-session wrappers on an asyncua InternalServer (see the module docstring)."""

    def __init__(
        self,
        iserver: Any,
        *,
        on_sessions: Callable[[int], None],
        required_roles: dict[ua.NodeId, Role],
        write_role: Role,
        limits: OperationLimits | None = None,
    ) -> None:
        self.iserver = iserver
        self.limits = limits or OperationLimits()
        self.on_sessions = on_sessions
        self.required_roles = required_roles
        self.write_role = write_role
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._count = -1
        asyncua_patches.wrap_create_session(iserver, self._wrap_create_session)

    def _wrap_create_session(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def create_session(name: str, user: User = _ANONYMOUS, external: bool = False) -> Any:
            session = original(name, user=user, external=external)
            if external:
                self._wrap(session)
                counters = counters_of(self.iserver)
                if counters is not None:
                    counters.cumulated_sessions += 1
            return session

        return create_session

    @property
    def count(self) -> int:
        return sum(1 for s in list(self._sessions) if s.is_activated())

    def _changed(self) -> None:
        count = self.count
        if count != self._count:
            self._count = count
            self.on_sessions(count)

    def _wrap(self, session: Any) -> None:
        self._sessions.add(session)
        hooks = self

        def counting_activate(activate: Callable[..., Any]) -> Callable[..., Any]:
            def activate_session(params: Any, peer_certificate: Any) -> Any:
                result = activate(params, peer_certificate)
                hooks._changed()
                return result

            return activate_session

        def counting_close(close: Callable[..., Any]) -> Callable[..., Any]:
            async def close_session(delete_subs: bool = True) -> None:
                counters = counters_of(hooks.iserver)
                if counters is not None and getattr(getattr(session, "state", None), "name", "") != "Closed" and not _closing_by_request.get():
                    # not a CloseSession request: the session timeout (its own watchdog task) or an abort
                    if asyncio.current_task() is getattr(session, "_timeout_task", None):
                        counters.session_timeouts += 1
                    else:
                        counters.session_aborts += 1
                try:
                    await close(delete_subs)
                finally:
                    hooks._changed()

            return close_session

        def as_caller(fn: Callable[..., Any]) -> Callable[..., Any]:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                token = current_principal.set(principal_of(session.user))
                try:
                    return await fn(*args, **kwargs)
                finally:
                    current_principal.reset(token)

            return wrapper

        def role_checked_call(call: Callable[..., Any]) -> Callable[..., Any]:
            async def call_checked(params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
                role = role_of(session.user)
                allowed, results = [], []
                for req in params:
                    needed = hooks.required_roles.get(req.MethodId)
                    if needed is not None and (role is None or role < needed):
                        log.warning("call_refused", user=getattr(session.user, "name", None), method=req.MethodId.to_string(), needs=needed.label)
                        results.append(ua.CallMethodResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)))
                    else:
                        allowed.append(req)
                        results.append(None)
                done = iter(await call(allowed) if allowed else [])
                return [r if r is not None else next(done) for r in results]

            return as_caller(call_checked)

        def read_for_user(read: Callable[..., Any]) -> Callable[..., Any]:
            async def read_checked(params: ua.ReadParameters) -> list[ua.DataValue]:
                # the address space hands out its stored DataValues: replace, never mutate
                results = list(await read(params))
                role = role_of(session.user)
                for i, rv in enumerate(params.NodesToRead):
                    dv = results[i]
                    if dv.Value is None or dv.Value.Value is None:
                        continue
                    if rv.AttributeId == ua.AttributeIds.UserAccessLevel and (role is None or role < hooks.write_role):
                        level = dv.Value.Value & ~ua.AccessLevel.CurrentWrite.mask
                        results[i] = dataclasses.replace(dv, Value=ua.Variant(level, ua.VariantType.Byte))
                    elif rv.AttributeId == ua.AttributeIds.UserExecutable and dv.Value.Value:
                        needed = hooks.required_roles.get(rv.NodeId)
                        if needed is not None and (role is None or role < needed):
                            results[i] = dataclasses.replace(dv, Value=ua.Variant(False, ua.VariantType.Boolean))
                return results

            return as_caller(read_checked)

        limits = hooks.limits

        def limited(service: str, inner: Callable[..., Any]) -> Callable[..., Any]:
            return lambda original: limits.wrap(service)(inner(original))

        asyncua_patches.wrap_session_methods(
            session,
            activate_session=counting_activate,
            close_session=counting_close,
            call=role_checked_call,
            read=limited("read", read_for_user),
            write=limited("write", as_caller),
            history_read=limited("history_read", as_caller),
            browse=limited("browse", as_caller),
        )


_SESSION_REQUESTS = frozenset(
    ua.NodeId(i) for i in (ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary, ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)
)


_ACTIVATE = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)
_CLOSE = ua.NodeId(ua.ObjectIds.CloseSessionRequest_Encoding_DefaultBinary)
_policy_logs = BurstLimiter(60.0)


class GuardedUaProcessor(UaProcessor):
    """asyncua's per-connection processor: refuses sessions on a channel policy the server does
    not offer or with a client certificate that is no longer trusted (``certificate_allowed``),
    checks passwords off the loop before ActivateSession (``OpcUaUserManager.logins``) and decodes
    large Reads in a worker thread (``operation_limits.serve_large_read``)."""

    _session_request = False  # processing a CreateSession or ActivateSession (server_diagnostics)

    def send_response(self, requesthandle: Any, seqhdr: Any, response: Any, msgtype: ua.MessageType = ua.MessageType.SecureMessage) -> None:
        if isinstance(response, ua.ServiceFault):
            counters = counters_of(self.iserver)
            if counters is not None:
                counters.fault(response.ResponseHeader.ServiceResult.value, self._session_request)
        super().send_response(requesthandle, seqhdr, response, msgtype)

    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        self._session_request = typeid in _SESSION_REQUESTS
        token = _closing_by_request.set(typeid == _CLOSE)
        try:
            return await self._process_guarded(typeid, requesthdr, seqhdr, body)
        finally:
            _closing_by_request.reset(token)

    async def _process_guarded(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        if typeid in _SESSION_REQUESTS:
            policy = self._connection.security_policy
            offered = self._connection._policies  # the server's configured SecurityPolicyFactory list
            if not any(f.matches(policy.URI, policy.Mode) for f in offered):
                suppressed = _policy_logs.allow(self.name[0] if self.name else None)
                if suppressed is not None:
                    log.warning("session_refused", reason="security policy not offered", policy=policy.URI, mode=policy.Mode.name, suppressed=suppressed)
                raise ServiceError(ua.StatusCodes.BadSecurityPolicyRejected)
        if is_large_read(self, typeid, body):
            return await serve_large_read(self, typeid, requesthdr, seqhdr, body)
        if typeid == _ACTIVATE:
            # CreateSession runs the certificate validator; an activation (also of an existing
            # session on a new channel) is checked against the current trust list here
            if not await certificate_allowed(self.iserver, self._connection.security_policy.peer_certificate):
                raise ServiceError(ua.StatusCodes.BadCertificateRevoked)
            return await self._activate(typeid, requesthdr, seqhdr, body)
        return await super()._process_message(typeid, requesthdr, seqhdr, body)

    async def _activate(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        manager = self.iserver.user_manager
        session = self.session or self.iserver.lookup_external_session(requesthdr.AuthenticationToken)
        if not isinstance(manager, OpcUaUserManager) or session is None:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        try:
            params = struct_from_binary(ua.ActivateSessionParameters, body.copy())
            token = params.UserIdentityToken
            credentials = self.iserver.decrypt_user_token(session, token) if isinstance(token, ua.UserNameIdentityToken) else None
        except Exception:  # asyncua answers a malformed request itself, below
            credentials = None
        if credentials is not None and credentials[0] is not None:
            user, password = credentials
            await manager.logins.check(session, user, password or "", self.name[0] if self.name else "?")
        ctx = _activating.set(session)
        try:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        finally:
            _activating.reset(ctx)
            manager.logins.forget(session)


_CERT_CHECKS: weakref.WeakKeyDictionary[Any, Callable[[bytes], Awaitable[bool]]] = weakref.WeakKeyDictionary()


def set_certificate_check(iserver: Any, check: Callable[[bytes], Awaitable[bool]]) -> None:
    """Make CreateSession and ActivateSession on *iserver* require ``await check(peer certificate
    DER)`` (a certificate removed from ``trusted/`` or revoked by a CRL: BadCertificateRevoked)."""
    _CERT_CHECKS[iserver] = check


async def certificate_allowed(iserver: Any, der: bytes | None) -> bool:
    check = _CERT_CHECKS.get(iserver)
    if check is None or not der:
        return True
    if await check(der):
        return True
    suppressed = _policy_logs.allow(("revoked", der[-32:]))
    if suppressed is not None:
        log.warning("session_refused", reason="client certificate no longer trusted or revoked", suppressed=suppressed)
    return False


def install_channel_guard() -> None:
    """Make asyncua's binary server use GuardedUaProcessor (a correct rule for every server: idempotent)."""
    asyncua_patches.install_channel_guard(GuardedUaProcessor)
