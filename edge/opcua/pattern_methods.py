"""Methods on assets with a fault-pattern library (``[assets.diagnosis]``; docs/diagnosis.md):

* ``Assets/<asset>/RecordFaultPattern(name String, start DateTime, end DateTime, description String,
  action String) -> result String`` learns a pattern from that window of history
  (``edge.twin.diagnosis.record``) and adds it to the asset type's library, or adds the episode to
  the pattern of that name. The result says how many episodes the pattern has and which other
  patterns the episode also matches. Needs the operator role.
* ``Assets/<asset>/RemoveFaultPattern(name String)`` removes a pattern. Needs the admin role.

The library file is written atomically and the asset's diagnoser uses it from its next diagnosis
on. A window history cannot describe, an unknown pattern or a bad name is BadInvalidArgument with
the reason in the log (``method_rejected``); a wrong argument type is BadInvalidArgument with
BadTypeMismatch for that argument. Nothing is recorded without the history the asset keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from asyncua import ua

from edge.core import names
from edge.opcua.deletion import delete_subtrees
from edge.opcua.methods import _argument, _check_role, _refusal, _Refused, _user
from edge.opcua.users import Role
from edge.twin.diagnosis.library import LibraryError
from edge.twin.diagnosis.live import AssetDiagnoser
from edge.twin.diagnosis.record import History, record

log = structlog.get_logger("edge.opcua.pattern_methods")

RECORD_ROLE = Role.OPERATOR
REMOVE_ROLE = Role.ADMIN
S, DT = ua.VariantType.String, ua.VariantType.DateTime
RECORD_INPUTS = [
    _argument("name", S, "pattern name (letters, digits, _ and -)"),
    _argument("start", DT, "start of the episode (UTC)"),
    _argument("end", DT, "end of the episode (UTC)"),
    _argument("description", S, "what the fault is"),
    _argument("action", S, "what to do about it"),
]
RECORD_OUTPUTS = [_argument("result", S, "what was recorded, and the patterns it overlaps")]
REMOVE_INPUTS = [_argument("name", S, "pattern to remove")]


class PatternMethods:
    """An ``OpcUaServer`` extension: RecordFaultPattern and RemoveFaultPattern on the assets that
    *diagnoser* (asset name -> its live ``AssetDiagnoser`` or None) knows, recording from *history*."""

    def __init__(self, assets: Sequence[Any], diagnoser: Callable[[str], AssetDiagnoser | None], history: History | None) -> None:
        self.assets = {a.name: a for a in assets if a.diagnosis is not None}
        self.diagnoser = diagnoser
        self.history = history
        self.objects: dict[str, ua.NodeId] = {}
        self._gateway: Any = None

    async def attach(self, server: Any) -> None:
        self._gateway = server
        await self._add(sorted(self.assets))

    async def detach(self) -> None:
        return None

    async def update(self, assets: Sequence[Any]) -> None:
        """After a reload: the methods follow the assets that have a diagnosis section now."""
        new = {a.name: a for a in assets if a.diagnosis is not None}
        gone, added = sorted(set(self.assets) - set(new)), sorted(set(new) - set(self.assets))
        await delete_subtrees(self._gateway.ua_server, [self._gateway.path_node_id(names.method_path(a, m)) for a in gone for m in names.PATTERN_METHODS])
        self.assets = new
        await self._add(added)

    async def _add(self, assets: list[str]) -> None:
        server = self._gateway
        ns = server.namespace_index
        for asset in assets:
            self.objects[asset] = server.path_node_id(names.asset_path(asset))
            parent = server.ua_server.get_node(self.objects[asset])
            rec = await parent.add_method(
                server.path_node_id(names.method_path(asset, names.RECORD_FAULT_PATTERN)), ua.QualifiedName(names.RECORD_FAULT_PATTERN, ns),
                self._record_for(asset), RECORD_INPUTS, RECORD_OUTPUTS,
            )  # fmt: skip
            rem = await parent.add_method(
                server.path_node_id(names.method_path(asset, names.REMOVE_FAULT_PATTERN)), ua.QualifiedName(names.REMOVE_FAULT_PATTERN, ns),
                self._remove_for(asset), REMOVE_INPUTS, [],
            )  # fmt: skip
            for node, text in ((rec, "learn a fault pattern from a window of history"), (rem, "remove a fault pattern from the library")):
                await node.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(text), ua.VariantType.LocalizedText)))
            server.require_role(rec.nodeid, RECORD_ROLE)
            server.require_role(rem.nodeid, REMOVE_ROLE)

    def _target(self, method: str, asset: str, parent: ua.NodeId, role: Role) -> AssetDiagnoser:
        if parent != self.objects.get(asset):
            raise _Refused(ua.StatusCodes.BadMethodInvalid, f"{method} belongs to asset {asset!r}, not to {parent.to_string()}")
        _check_role(method, asset, role)
        diag = self.diagnoser(asset)
        if diag is None:
            raise _Refused(ua.StatusCodes.BadInvalidState, f"asset {asset!r} has no running diagnosis")
        return diag

    def _record_for(self, asset: str):
        async def record_pattern(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
            try:
                diag = self._target(names.RECORD_FAULT_PATTERN, asset, parent, RECORD_ROLE)
                name, start, end, description, action = _typed(args, (S, DT, DT, S, S), names.RECORD_FAULT_PATTERN)
                if self.history is None:
                    raise _Refused(ua.StatusCodes.BadInvalidState, "the gateway keeps no history, so there is nothing to learn from")
                files = diag.patterns
                try:
                    rec = await asyncio.to_thread(
                        record, files.current(), self.history, self.assets[asset], name, start, end, description, action, _user() or ""
                    )
                    await asyncio.to_thread(files.update, rec.library)
                except LibraryError as exc:
                    raise _Refused(ua.StatusCodes.BadInvalidArgument, str(exc)) from None
            except _Refused as refused:
                return _refusal(names.RECORD_FAULT_PATTERN, asset, refused, len(args))
            log.info("fault_pattern_recorded", asset=asset, pattern=name, user=_user(), episodes=len(rec.pattern.signatures), overlaps=rec.overlaps)
            return [ua.Variant(rec.message(), S)]

        return record_pattern

    def _remove_for(self, asset: str):
        async def remove_pattern(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
            try:
                diag = self._target(names.REMOVE_FAULT_PATTERN, asset, parent, REMOVE_ROLE)
                (name,) = _typed(args, (S,), names.REMOVE_FAULT_PATTERN)
                files = diag.patterns
                try:
                    await asyncio.to_thread(files.update, files.current().without(name))
                except LibraryError as exc:
                    raise _Refused(ua.StatusCodes.BadInvalidArgument, str(exc)) from None
            except _Refused as refused:
                return _refusal(names.REMOVE_FAULT_PATTERN, asset, refused, len(args))
            log.warning("fault_pattern_removed", asset=asset, pattern=name, user=_user())
            return []

        return remove_pattern


def _typed(args: Sequence[ua.Variant], types: tuple[ua.VariantType, ...], method: str) -> list[Any]:
    if len(args) < len(types):
        raise _Refused(ua.StatusCodes.BadArgumentsMissing, f"{method} takes {len(types)} arguments, got {len(args)}")
    if len(args) > len(types):
        raise _Refused(ua.StatusCodes.BadTooManyArguments, f"{method} takes {len(types)} arguments, got {len(args)}")
    results = [ua.StatusCodes.Good] * len(types)
    problems = []
    for i, (arg, vtype) in enumerate(zip(args, types, strict=True)):
        if arg.VariantType != vtype or isinstance(arg.Value, list) or arg.Value is None:
            results[i] = ua.StatusCodes.BadTypeMismatch
            problems.append(f"argument {i + 1} must be {vtype.name}, got {arg.VariantType.name}")
    if problems:
        raise _Refused(ua.StatusCodes.BadInvalidArgument, "; ".join(problems), results)
    return [a.Value for a in args]
