"""Client writes: role check, validation, write-through to the device, and the audit log.

A write to a writable tag is checked in this order, and the first failure is the answer:

0. a NodeId that is not in the address space -> BadNodeIdUnknown
1. attribute other than Value, or a role below ``operator`` -> BadUserAccessDenied
2. a read-only variable of the gateway -> BadNotWritable
3. wrong variant type, scalar for array or array for scalar (or null) -> BadTypeMismatch
4. NaN/inf, or outside the tag's configured low..high (each element of an array) -> BadOutOfRange
   (never clamped)
5. no device behind the tag -> BadNotWritable
6. the device's own answer (the driver's write status)

The node is not changed by the write itself: after a Good device write the device runner publishes
the written value (write then read, ``edge.core.supervisor``), and the next poll confirms it.
Every write by a client (allowed or not) is logged once, as ``write_done`` or ``write_rejected``,
with user, role, node, tag, old value, new value and result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from asyncua import ua

from drivers.sample import Status, TagValue
from edge.core.registry import TagInfo, TagRegistry
from edge.core.writes import audit, check_limits
from edge.opcua import asyncua_patches
from edge.opcua.model import VARIANT_TYPES
from edge.opcua.users import Role, role_of

log = structlog.get_logger("edge.opcua.writes")

WriteHandler = Callable[[str, TagValue], Awaitable[int]]


def status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return ua.StatusCode(code).name


def check_value(info: TagInfo, variant: ua.Variant | None) -> tuple[int, str]:
    """(Status.Good, "") when *variant* may be sent to the device for *info*, else (status, reason). Pure."""
    expected = VARIANT_TYPES[info.data_type]
    if variant is None or variant.Value is None or variant.VariantType != expected or bool(variant.is_array) != info.array:
        got = variant.VariantType.name if variant is not None and variant.Value is not None else "null"
        if variant is not None and variant.Value is not None and bool(variant.is_array) != info.array:
            got = f"an array of {got}" if variant.is_array else f"a scalar {got}"
        return Status.BadTypeMismatch, f"expected {'an array of ' if info.array else ''}{expected.name}, got {got}"
    return check_limits(info, variant.Value if info.array else [variant.Value])


_UNSET: Any = object()


class WriteGate:
    """Replaces asyncua's attribute-service write (see the module docstring)."""

    def __init__(
        self,
        registry: TagRegistry,
        handler: WriteHandler | None,
        *,
        writable: Mapping[ua.NodeId, TagInfo],
        variables: Mapping[ua.NodeId, str],
        write_role: Role = Role.OPERATOR,
    ) -> None:
        self.registry = registry
        self.handler = handler
        self.writable = writable
        self.variables = variables  # every gateway variable: NodeId -> registry key
        self.write_role = write_role
        self._exists: Callable[[ua.NodeId], bool] = lambda nodeid: True

    def install(self, service: Any) -> None:
        """Take over *service*'s (asyncua's AttributeService) write; see ``asyncua_patches.wrap_attribute_write``."""
        asyncua_patches.wrap_attribute_write(service, self._wrap_write)
        self._exists = lambda nodeid: asyncua_patches.address_space_has(service, nodeid)

    def _wrap_write(self, original: Callable[..., Awaitable[list[ua.StatusCode]]]) -> Callable[..., Awaitable[list[ua.StatusCode]]]:
        async def write(params: ua.WriteParameters, user: Any = None) -> list[ua.StatusCode]:
            principal = getattr(user, "principal", None)
            if principal is None:  # the server's own internal session: asyncua's rules apply
                return await original(params, **({} if user is None else {"user": user}))
            results: list[ua.StatusCode | None] = []
            passthrough: list[ua.WriteValue] = []
            for wv in params.NodesToWrite:
                code = await self._one(wv, user)
                if code is None:
                    passthrough.append(wv)
                results.append(None if code is None else ua.StatusCode(code))
            if passthrough:
                rest = iter(await original(ua.WriteParameters(NodesToWrite=passthrough), user=user))
                out = []
                for wv, r in zip(params.NodesToWrite, results, strict=True):
                    if r is None:
                        r = next(rest)
                        self._audit(user, wv, None, r.value, "asyncua access rules")
                    out.append(r)
                return out
            return results  # type: ignore[return-value]

        return write

    async def _one(self, wv: ua.WriteValue, user: Any) -> int | None:
        """The status for one write, or None to leave it to asyncua (nodes outside the gateway's tree)."""
        key = self.variables.get(wv.NodeId)
        role = role_of(user)
        if key is None and not self._exists(wv.NodeId):
            return self._audit(user, wv, None, Status.BadNodeIdUnknown, "no such node")
        if wv.AttributeId != ua.AttributeIds.Value:
            return self._audit(user, wv, key, Status.BadUserAccessDenied, f"attribute {ua.AttributeIds(wv.AttributeId).name} is not writable")
        if role is None or role < self.write_role:
            return self._audit(user, wv, key, Status.BadUserAccessDenied, f"role {role.label if role else 'none'} may not write")
        if key is None:
            return None
        info = self.writable.get(wv.NodeId)
        if info is None:
            return self._audit(user, wv, key, Status.BadNotWritable, "read-only variable")
        status, reason = check_value(info, wv.Value.Value if wv.Value is not None else None)
        if status != Status.Good:
            return self._audit(user, wv, key, status, reason)
        if self.handler is None:
            return self._audit(user, wv, key, Status.BadNotWritable, "no device behind this tag")
        old = self.registry.latest(key).value  # before the write publishes the new value
        try:
            status = int(await self.handler(key, wv.Value.Value.Value))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a driver bug must not take the server down
            log.exception("write_failed", tag=key, error=str(exc))
            status = Status.BadInternalError
        return self._audit(user, wv, key, status, "device answer", old=old)

    def _audit(self, user: Any, wv: ua.WriteValue, key: str | None, status: int, reason: str, *, old: Any = _UNSET) -> int:
        new = wv.Value.Value.Value if wv.Value is not None and wv.Value.Value is not None else None
        if old is _UNSET:
            old = self.registry.latest(key).value if key is not None else None
        role = role_of(user)
        return audit(
            log,
            user=getattr(user, "name", None),
            role=role.label if role else None,
            node=wv.NodeId.to_string(),
            tag=key,
            old=old,
            new=new,
            status=status,
            reason=reason,
            name_of=status_name,
        )
