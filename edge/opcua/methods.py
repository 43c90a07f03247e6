"""Methods on asset objects: ``Simulate`` (what-if) and ``ResetModel``.

For every asset with an identified input->output model (a signal with ``input`` set):

* ``Assets/<asset>/Simulate(inputs: Double[], horizon: UInt32) -> outputs: Double[]`` runs the
  identified model forward from now: ``inputs[j]`` is the input held during model step j (the last
  one is held when there are fewer inputs than steps), ``horizon`` is the number of model steps
  (``model_period_s`` each); the result holds the predicted output of each step. It is
  ``TwinRunner.simulate`` called over OPC UA. Needs the operator role.
* ``Assets/<asset>/ResetModel()`` forgets the identified model and restarts identification
  (``TwinRunner.reset_model``). Needs the admin role.

Argument checking: a wrong number of arguments is BadArgumentsMissing / BadTooManyArguments; a
wrong type is BadInvalidArgument with BadTypeMismatch for that argument in InputArgumentResults;
a value the twin refuses (empty or too many inputs, non-finite or out-of-limits input, horizon
out of range, model not identified yet) is BadInvalidArgument. Every refusal is logged with its
reason (``method_rejected``); nothing is clamped. Roles are enforced by the server's session hooks
(``require_role``) and checked again here with ``edge.opcua.users.current_role()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from asyncua import ua

from edge.core import names
from edge.opcua.deletion import delete_subtrees
from edge.opcua.users import Role, current_principal, current_role

log = structlog.get_logger("edge.opcua.methods")

SIMULATE_ROLE = Role.OPERATOR
RESET_ROLE = Role.ADMIN


def _argument(name: str, vtype: ua.VariantType, description: str, *, array: bool = False) -> ua.Argument:
    return ua.Argument(
        Name=name,
        DataType=ua.NodeId(vtype.value),
        ValueRank=ua.ValueRank.OneDimension if array else ua.ValueRank.Scalar,
        ArrayDimensions=[0] if array else [],
        Description=ua.LocalizedText(description),
    )


SIMULATE_INPUTS = [
    _argument("inputs", ua.VariantType.Double, "input held during each model step (the last one is held to the horizon)", array=True),
    _argument("horizon", ua.VariantType.UInt32, "number of model steps to predict"),
]
SIMULATE_OUTPUTS = [_argument("outputs", ua.VariantType.Double, "predicted output of each model step", array=True)]


class _Refused(Exception):
    def __init__(self, status: int, reason: str, arg_results: list[int] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.arg_results = arg_results


def identified_assets(cfg: Any) -> list[str]:
    """Assets whose config identifies an input->output model (these get the methods)."""
    return [a.name for a in cfg.assets if any(getattr(s, "input", None) for s in a.signals)]


class AssetMethods:
    """An ``OpcUaServer`` extension adding Simulate and ResetModel to asset objects.

    *twins* maps an asset name to the object that runs its twin (``TwinRunner``), which provides
    ``simulate(asset, inputs, horizon_steps) -> list[float]`` and ``reset_model(asset)``.
    """

    def __init__(self, twins: dict[str, Any]) -> None:
        self.twins = dict(twins)
        self.objects: dict[str, ua.NodeId] = {}  # asset -> the object its methods belong to
        self._gateway: Any = None  # the OpcUaServer attached to

    async def attach(self, server: Any) -> None:
        self._gateway = server
        await self._add(sorted(self.twins))
        log.info("asset_methods_ready", assets=sorted(self.twins))

    async def detach(self) -> None:
        return None

    async def update(self, twins: dict[str, Any]) -> None:
        """After a config reload: *twins* maps every asset that has the methods now to its runner.
        Methods of assets no longer in it are deleted, new ones are added, and the others call the
        new runner from now on (their NodeIds stay)."""
        ua_server = self._gateway.ua_server
        gone = sorted(set(self.twins) - set(twins))
        await delete_subtrees(ua_server, [self._gateway.path_node_id(names.method_path(a, m)) for a in gone for m in names.ASSET_METHODS])
        added = sorted(set(twins) - set(self.twins))
        self.twins = dict(twins)
        await self._add(added)
        if gone or added:
            log.info("asset_methods_changed", added=added, removed=gone)

    async def _add(self, assets: list[str]) -> None:
        server = self._gateway
        ua_server = server.ua_server
        ns = server.namespace_index
        for asset in assets:
            self.objects[asset] = server.path_node_id(names.asset_path(asset))
            parent = ua_server.get_node(self.objects[asset])
            sim = await parent.add_method(
                server.path_node_id(names.method_path(asset, names.SIMULATE)), ua.QualifiedName(names.SIMULATE, ns), self._simulate_for(asset),
                SIMULATE_INPUTS, SIMULATE_OUTPUTS,
            )  # fmt: skip
            reset = await parent.add_method(
                server.path_node_id(names.method_path(asset, names.RESET_MODEL)), ua.QualifiedName(names.RESET_MODEL, ns), self._reset_for(asset), [], []
            )
            for node, text in (
                (sim, "what-if: predicted output under a candidate input trajectory"),
                (reset, "forget the identified model and identify it again"),
            ):
                await node.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(text), ua.VariantType.LocalizedText)))
            server.require_role(sim.nodeid, SIMULATE_ROLE)
            server.require_role(reset.nodeid, RESET_ROLE)

    # -- handlers ----------------------------------------------------------------------------
    def _check_object(self, method: str, asset: str, called_on: ua.NodeId) -> None:
        """A method is called on the object it belongs to (asyncua runs it on any ObjectId): else BadMethodInvalid."""
        if called_on != self.objects.get(asset):
            raise _Refused(ua.StatusCodes.BadMethodInvalid, f"{method} belongs to asset {asset!r}, not to {called_on.to_string()}")

    def _simulate_for(self, asset: str):
        async def simulate(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
            try:
                self._check_object("Simulate", asset, parent)
                _check_role("Simulate", asset, SIMULATE_ROLE)
                inputs, horizon = _simulate_args(args)
                try:
                    outputs = self.twins[asset].simulate(asset, inputs, horizon)
                except ValueError as exc:
                    raise _Refused(ua.StatusCodes.BadInvalidArgument, str(exc)) from None
            except _Refused as refused:
                return _refusal("Simulate", asset, refused, len(args))
            log.info("simulate_done", asset=asset, user=_user(), inputs=len(inputs), horizon=horizon)
            return [ua.Variant([float(v) for v in outputs], ua.VariantType.Double, is_array=True)]

        return simulate

    def _reset_for(self, asset: str):
        async def reset_model(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult | list[ua.Variant]:
            try:
                self._check_object("ResetModel", asset, parent)
                _check_role("ResetModel", asset, RESET_ROLE)
                if args:
                    raise _Refused(ua.StatusCodes.BadTooManyArguments, f"ResetModel takes no arguments, got {len(args)}")
                try:
                    self.twins[asset].reset_model(asset)
                except ValueError as exc:
                    raise _Refused(ua.StatusCodes.BadInvalidArgument, str(exc)) from None
            except _Refused as refused:
                return _refusal("ResetModel", asset, refused, len(args))
            log.warning("model_reset_requested", asset=asset, user=_user())
            return []

        return reset_model


def _user() -> str | None:
    principal = current_principal.get()
    return principal.name if principal is not None else None


def _check_role(method: str, asset: str, needed: Role) -> None:
    role = current_role()
    # None: no client session context (the server's session hooks set it for every client call)
    if role is not None and role < needed:
        raise _Refused(ua.StatusCodes.BadUserAccessDenied, f"needs the {needed.label} role, caller has {role.label}")


def _simulate_args(args: Sequence[ua.Variant]) -> tuple[list[float], int]:
    if len(args) < 2:
        raise _Refused(ua.StatusCodes.BadArgumentsMissing, f"Simulate takes (inputs: Double[], horizon: UInt32), got {len(args)} argument(s)")
    if len(args) > 2:
        raise _Refused(ua.StatusCodes.BadTooManyArguments, f"Simulate takes 2 arguments, got {len(args)}")
    inputs, horizon = args
    results = [ua.StatusCodes.Good, ua.StatusCodes.Good]
    problems = []
    if inputs.VariantType != ua.VariantType.Double or not isinstance(inputs.Value, list):
        results[0] = ua.StatusCodes.BadTypeMismatch
        problems.append(f"inputs must be Double[], got {inputs.VariantType.name}{'[]' if isinstance(inputs.Value, list) else ''}")
    if horizon.VariantType != ua.VariantType.UInt32 or isinstance(horizon.Value, list):
        results[1] = ua.StatusCodes.BadTypeMismatch
        problems.append(f"horizon must be UInt32, got {horizon.VariantType.name}{'[]' if isinstance(horizon.Value, list) else ''}")
    if problems:
        raise _Refused(ua.StatusCodes.BadInvalidArgument, "; ".join(problems), results)
    return list(inputs.Value), int(horizon.Value)


def _refusal(method: str, asset: str, refused: _Refused, n_args: int) -> ua.CallMethodResult:
    log.warning("method_rejected", method=method, asset=asset, user=_user(), status=ua.StatusCode(refused.status).name, reason=str(refused))
    result = ua.CallMethodResult(StatusCode=ua.StatusCode(refused.status))
    if refused.arg_results is not None:
        result.InputArgumentResults = [ua.StatusCode(s) for s in refused.arg_results]
    else:
        result.InputArgumentResults = [ua.StatusCode() for _ in range(n_args)]
    return result
