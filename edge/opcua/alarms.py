"""Alarms: OPC UA AlarmConditionType events for twin anomalies and tag limits, with Acknowledge.

asyncua has no Alarms & Conditions server, so this builds the part the gateway needs on its event
machinery. Each configured alarm is one condition:

* ``AnomalyAlarm`` on ``Assets/<asset>``: follows the twin's ``<asset>.alarm`` flag (which already
  has hysteresis: see edge/twin/runner.py), severity ``alarm_severity`` of the asset.
* ``<tag>HighLimit`` / ``<tag>LowLimit`` on ``Devices/<device>`` (on ``Devices/<device>/<unit>``
  for a tag of one unit of a multi-unit device): active above ``alarm_high`` (below
  ``alarm_low``), inactive again ``alarm_deadband`` inside the limit.

The condition is an AlarmConditionType object with NodeId ``<source path>/<ConditionName>`` (the
events' ConditionId), referenced from its source with HasCondition, not HasComponent: browsing the
source shows only its variables. Each state change emits one event carrying the condition's
whole state: ActiveState/Id, AckedState/Id, Retain, Severity, Message, SourceNode, SourceName,
ConditionName, EventId, Time, Quality; the condition node's own variables (ActiveState/Id,
AckedState/Id, Retain, Message, ...) show the same state. Events are emitted on the source object (an EventNotifier,
referenced from Server with HasNotifier) and on the Server object.

State machine (no confirm, no shelving): normal -> active+unacked (Retain) -> acked and/or inactive;
the condition stops being retained once it is both inactive and acknowledged. Acknowledge is the
standard method (``AcknowledgeableConditionType.Acknowledge`` i=9111, or the condition's own
``Acknowledge`` component) with the EventId of the condition's latest event and a comment; it needs
the operator role. A Bad sample does not change the active state (the value is unknown); its status
is reported as the condition's Quality in the next event.

The transition logic (``ConditionState``) is pure; ``OpcUaAlarms`` wires it to the server.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import structlog
from asyncua import ua

from drivers.columns import sample_keys
from drivers.sample import Status, TagSample, is_bad, utcnow
from edge.core import names
from edge.core.tasks import cancel_and_wait
from edge.opcua import asyncua_patches
from edge.opcua.alarm_details import details_text, diagnosis_details
from edge.opcua.condition_fields import state_nodes, two_state
from edge.opcua.deletion import delete_subtrees
from edge.opcua.users import Role, current_principal, current_role

log = structlog.get_logger("edge.opcua.alarms")

ACKNOWLEDGE_METHOD = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
ACK_ROLE = Role.OPERATOR


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One configured alarm condition."""

    name: str  # ConditionName and browse name of the condition node
    key: str  # the registry key it watches
    source: tuple[str, ...]  # browse path of the source object below the gateway
    severity: int
    kind: Literal["flag", "high", "low"]
    limit: float = 0.0
    deadband: float = 0.0
    text: str = ""  # what the alarm is about, for the message
    # (label, registry key) shown after the message while active, e.g. the diagnosed fault; a new
    # value of the first key while active emits the condition again with the new message
    details: tuple[tuple[str, str], ...] = ()
    detail_key: str = ""  # registry key of a String shown in the message while active (the asset's flagged sensors)


def alarm_specs(cfg: Any) -> list[AlarmSpec]:
    """The alarms a gateway config declares (asset anomaly alarms, then tag limit alarms)."""
    out = [
        AlarmSpec(
            names.ANOMALY_ALARM,
            names.asset_output_key(a.name, "alarm"),
            names.asset_path(a.name),
            a.alarm_severity,
            "flag",
            a.alarm_threshold,
            text=f"{a.name} anomaly score",
            details=diagnosis_details(a),
            detail_key=names.sensor_fault_key(a.name),
        )
        for a in cfg.assets
    ]
    for dev in cfg.devices:
        for tag in dev.tags:
            key, src = names.tag_key(dev.name, tag.name), names.tag_parent_path(dev.name, tag.name)
            unit = f" {tag.units}" if tag.units else ""
            if tag.alarm_high is not None:
                name = names.limit_condition_name(tag.name, "high")
                out.append(AlarmSpec(name, key, src, tag.alarm_severity, "high", tag.alarm_high, tag.alarm_deadband, f"{key}{unit}"))
            if tag.alarm_low is not None:
                name = names.limit_condition_name(tag.name, "low")
                out.append(AlarmSpec(name, key, src, tag.alarm_severity, "low", tag.alarm_low, tag.alarm_deadband, f"{key}{unit}"))
    return out


@dataclass(frozen=True, slots=True)
class ConditionState:
    """The state of one condition. Pure: every transition returns a new state (or None)."""

    active: bool = False
    acked: bool = True
    quality: int = Status.Good
    value: float | None = None
    event_id: bytes = b""
    active_since: datetime | None = None
    acked_at: datetime | None = None
    comment: str = ""
    user: str = ""
    detail: str = ""  # the latest value of the spec's detail_key ("temperature: drift")

    @property
    def retain(self) -> bool:
        return self.active or not self.acked

    def on_sample(self, spec: AlarmSpec, sample: TagSample) -> ConditionState | None:
        """The new state if *sample* changes the condition (activity or quality), else None."""
        if is_bad(sample.status) or sample.value is None:
            return replace(self, quality=int(sample.status)) if self.quality != sample.status and self.retain else None
        value = float(sample.value)  # type: ignore[arg-type]
        if spec.kind == "flag":
            active = bool(sample.value)
        elif spec.kind == "high":
            active = value > spec.limit if not self.active else value > spec.limit - spec.deadband
        else:
            active = value < spec.limit if not self.active else value < spec.limit + spec.deadband
        if active == self.active:
            return replace(self, quality=int(sample.status)) if self.quality != sample.status and self.retain else None
        if active:
            return replace(self, active=True, acked=False, quality=int(sample.status), value=value, active_since=sample.source_time, comment="", user="")
        return replace(self, active=False, quality=int(sample.status), value=value)

    def acknowledge(self, event_id: bytes, comment: str, user: str, at: datetime) -> ConditionState | int:
        """The acknowledged state, or the status code that refuses the acknowledgement."""
        if event_id != self.event_id:
            return ua.StatusCodes.BadEventIdUnknown
        if self.acked:
            return ua.StatusCodes.BadConditionBranchAlreadyAcked
        return replace(self, acked=True, acked_at=at, comment=comment, user=user)

    def on_detail(self, sample: TagSample) -> ConditionState | None:
        """The new state when the detail text changes (a new event only while the alarm is active)."""
        text = sample.value if isinstance(sample.value, str) else ""
        return None if text == self.detail else replace(self, detail=text)

    def message(self, spec: AlarmSpec) -> str:
        if spec.kind == "flag":
            if self.active and self.detail:  # sensor validation flags (edge.twin.validation)
                return f"{spec.source[-1]} sensor fault: {self.detail} (or {spec.text} above threshold {spec.limit:g})"
            what = "above" if self.active else "back below the release level of"
            return f"{spec.text} {what} threshold {spec.limit:g}"
        shown = "?" if self.value is None else f"{self.value:g}"
        if spec.kind == "high":
            return f"{spec.text} = {shown}, " + (f"above high limit {spec.limit:g}" if self.active else f"back below high limit {spec.limit:g}")
        return f"{spec.text} = {shown}, " + (f"below low limit {spec.limit:g}" if self.active else f"back above low limit {spec.limit:g}")


@dataclass(slots=True)
class _Condition:
    spec: AlarmSpec
    node_id: ua.NodeId
    source_id: ua.NodeId
    input_id: ua.NodeId | None
    event: Any  # the asyncua event object of this condition (fields set before each emission)
    mirror: dict[str, ua.NodeId]  # event field -> variable of the condition node showing it
    state: ConditionState = field(default_factory=ConditionState)


class OpcUaAlarms:
    """An ``OpcUaServer`` extension that raises, clears and acknowledges alarm conditions."""

    def __init__(self, specs: Sequence[AlarmSpec]) -> None:
        self.specs = list(specs)
        self.conditions: dict[ua.NodeId, _Condition] = {}
        self._by_key: dict[str, list[_Condition]] = {}
        self._by_detail: dict[str, list[_Condition]] = {}  # detail_key -> conditions whose message shows it
        self._queue: asyncio.Queue[Sequence[TagSample]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failing: set[ua.NodeId] = set()
        self._unsubscribe: Any = None
        self._server: Any = None
        self._gateway: Any = None  # the OpcUaServer attached to
        self._notifiers: set[ua.NodeId] = set()  # sources referenced from Server with HasNotifier
        self._methods_ready = False

    async def attach(self, server: Any) -> None:
        self._server = server.ua_server
        self._gateway = server
        await self.add_specs(self.specs, initial=True)
        self._unsubscribe = server.registry.subscribe(self._on_samples)
        self._task = server.start_task(self.run, "opcua:alarms")
        log.info("alarms_ready", conditions=len(self.conditions))

    async def add_specs(self, specs: Sequence[AlarmSpec], *, initial: bool = False) -> None:
        """Create the conditions of *specs* (at attach, or on a running server after a reload)."""
        server = self._gateway
        iserver = self._server.iserver
        server_node = self._server.nodes.server
        for spec in specs:
            source_id = server.path_node_id(spec.source)
            node_id = server.path_node_id(names.condition_path(spec.source, spec.name))
            source = self._server.get_node(source_id)
            cond = await source.add_object(
                node_id, ua.QualifiedName(spec.name, server.namespace_index), objecttype=ua.ObjectIds.AlarmConditionType, instantiate_optional=False
            )
            # A condition is not a member of its source: relate them with HasCondition (not
            # hierarchical), so browsing a device or asset still shows only its variables.
            await source.delete_reference(cond, ua.ObjectIds.HasComponent, forward=True, bidirectional=True)
            await source.add_reference(cond, ua.ObjectIds.HasCondition)
            self._server.link_method(await cond.get_child(["0:Acknowledge"]), self._acknowledge)
            if source_id not in self._notifiers:
                self._notifiers.add(source_id)
                await server_node.add_reference(source_id, ua.ObjectIds.HasNotifier)
            gen = await self._server.get_event_generator(ua.ObjectIds.AlarmConditionType, source)
            input_id = server.node_id(spec.key) if spec.key in server.registry else None
            asyncua_patches.fix_event_data_types(gen.event)
            c = _Condition(spec, node_id, source_id, input_id, gen.event, await state_nodes(cond, gen.event))
            self.conditions[node_id] = c
            self._by_key.setdefault(spec.key, []).append(c)
            if spec.details:
                self._by_key.setdefault(spec.details[0][1], []).append(c)
            if spec.detail_key:
                self._by_detail.setdefault(spec.detail_key, []).append(c)
            server.require_role((await cond.get_child(["0:Acknowledge"])).nodeid, ACK_ROLE)
        if specs and not self._methods_ready:
            self._methods_ready = True
            iserver.isession.add_method_callback(ACKNOWLEDGE_METHOD, self._acknowledge)
            server.require_role(ACKNOWLEDGE_METHOD, ACK_ROLE)
            if ua.ObjectIds.RefreshStartEventType not in iserver.subscription_service.standard_events:
                await iserver.setup_condition_methods()  # ConditionRefresh replays retained conditions
        if not initial:
            self.specs += list(specs)
            log.info("alarms_added", conditions=[s.name for s in specs])

    async def remove_specs(self, specs: Sequence[AlarmSpec]) -> None:
        """Delete the conditions of *specs* (a reload removed or changed them), before their source
        object goes. A retained condition simply disappears; ConditionRefresh no longer shows it."""
        gone = set(specs)
        for node_id, c in list(self.conditions.items()):
            if c.spec not in gone:
                continue
            del self.conditions[node_id]
            for key in (c.spec.key, *(k for _, k in c.spec.details[:1])):
                self._by_key[key].remove(c)
                if not self._by_key[key]:
                    del self._by_key[key]
            if c in self._by_detail.get(c.spec.detail_key, ()):
                self._by_detail[c.spec.detail_key].remove(c)
            self._failing.discard(node_id)
            await delete_subtrees(self._server, [node_id])
            if not any(o.source_id == c.source_id for o in self.conditions.values()):
                self._notifiers.discard(c.source_id)
                await self._server.nodes.server.delete_reference(c.source_id, ua.ObjectIds.HasNotifier, forward=True)
        self.specs = [s for s in self.specs if s not in gone]
        if gone:
            log.info("alarms_removed", conditions=sorted(s.name for s in gone))

    async def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await cancel_and_wait(self._task)

    def _on_samples(self, batch: Sequence[TagSample]) -> None:
        if any(k in self._by_key or k in self._by_detail for k in sample_keys(batch)):
            self._queue.put_nowait(batch)

    async def run(self) -> None:
        """The alarms loop (task ``opcua:alarms``): evaluate each batch that touches a condition."""
        while True:
            batch = await self._queue.get()
            try:
                await self._evaluate(batch)
            finally:
                self._queue.task_done()

    async def _evaluate(self, batch: Sequence[TagSample]) -> None:
        for sample in batch:
            for c in self._by_detail.get(sample.tag, ()):  # before the flag: a batch carries the detail first
                new_detail = c.state.on_detail(sample)
                if new_detail is not None:
                    if c.state.active:  # the message changed while active: a new event says so
                        await self._transition(c, new_detail, sample.source_time)
                    else:
                        c.state = new_detail
            for c in self._by_key.get(sample.tag, ()):
                try:
                    if sample.tag != c.spec.key:  # a detail: while active, a new value is told in a new event
                        if c.state.active and sample.value not in (None, ""):
                            await self._transition(c, c.state, sample.source_time)
                        continue
                    new = c.state.on_sample(c.spec, sample)  # a value that is not a number raises
                    if new is not None:
                        await self._transition(c, new, sample.source_time)
                except Exception:  # one bad sample or undeliverable event must not end alarm processing
                    if c.node_id not in self._failing:  # logged once until the condition works again
                        self._failing.add(c.node_id)
                        log.exception("alarm_emit_failed", condition=c.spec.name, source="/".join(c.spec.source), value=repr(sample.value)[:200])
                else:
                    self._failing.discard(c.node_id)

    async def drain(self) -> None:
        """Wait until every sample published so far has been evaluated, including the batch being
        evaluated right now (tests)."""
        await self._queue.join()

    async def _transition(self, c: _Condition, new: ConditionState, at: datetime) -> None:
        old = c.state
        new = replace(new, event_id=uuid.uuid4().bytes)
        c.state = new
        if new.active != old.active:
            event = "alarm_raised" if new.active else "alarm_cleared"
            log.warning(event, condition=c.spec.name, source="/".join(c.spec.source), value=new.value, severity=c.spec.severity)
        await self._emit(c, at)

    async def _emit(self, c: _Condition, at: datetime) -> None:
        s, spec, ev = c.state, c.spec, c.event
        now = utcnow()
        ev.EventId = s.event_id
        ev.NodeId = c.node_id  # ConditionId
        ev.ConditionName = spec.name
        ev.ConditionClassId = ua.NodeId(ua.ObjectIds.ProcessConditionClassType)
        ev.ConditionClassName = ua.LocalizedText("Process")
        ev.BranchId = ua.NodeId()
        ev.SourceNode = c.source_id
        ev.SourceName = "/".join(spec.source[1:])
        ev.InputNode = c.input_id
        ev.Time = at
        ev.ReceiveTime = now
        ev.Severity = spec.severity
        ev.LastSeverity = spec.severity
        message = s.message(spec)
        if s.active and spec.details and self._gateway is not None:
            extra = details_text(spec, self._gateway.registry.latest)
            message = f"{message}; {extra}" if extra else message
        ev.Message = ua.LocalizedText(message)
        ev.Retain = s.retain
        ev.Quality = ua.StatusCode(s.quality)
        ev.Comment = ua.LocalizedText(s.comment)
        ev.ClientUserId = s.user
        two_state(ev, "EnabledState", True, "Enabled", "Disabled", None)
        two_state(ev, "ActiveState", s.active, "Active", "Inactive", s.active_since if s.active else at)
        two_state(ev, "AckedState", s.acked, "Acknowledged", "Unacknowledged", s.acked_at)
        ev.SuppressedOrShelved = False
        aspace = self._server.iserver.aspace
        for name, nid in c.mirror.items():  # the condition node shows the state of its latest event
            value = getattr(ev, name, None)
            variant = ua.Variant(value, ev.data_types[name]) if value is not None else ua.Variant(None, ua.VariantType.Null)
            result = await aspace.write_attribute_value(nid, ua.AttributeIds.Value, ua.DataValue(variant, SourceTimestamp=at, ServerTimestamp=now))
            if not result.is_good():
                log.error("condition_variable_write_failed", condition=spec.name, field=name, status=result.name)
        subscriptions = self._server.iserver.subscription_service
        for emitter in (c.source_id, ua.NodeId(ua.ObjectIds.Server)):
            out = copy.copy(ev)  # emitted twice: on the source and on Server (root of the notifier tree)
            out.emitting_node = emitter
            await subscriptions.trigger_event(out)

    async def _acknowledge(self, parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode | list[ua.Variant]:
        c = self.conditions.get(parent)
        if c is None:
            return ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)
        role = current_role()
        principal = current_principal.get()
        user = principal.name if principal is not None else ""
        if role is not None and role < ACK_ROLE:
            log.warning("acknowledge_refused", condition=c.spec.name, user=user, needs=ACK_ROLE.label)
            return ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
        if (
            len(args) != 2
            or args[0].VariantType != ua.VariantType.ByteString
            or args[1].VariantType not in (ua.VariantType.LocalizedText, ua.VariantType.String, ua.VariantType.Null)
        ):
            log.warning("acknowledge_rejected", condition=c.spec.name, user=user, reason="expected (EventId: ByteString, Comment: LocalizedText)")
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        comment = args[1].Value
        text = comment.Text if isinstance(comment, ua.LocalizedText) else (comment or "")
        now = utcnow()
        result = c.state.acknowledge(args[0].Value or b"", text or "", user, now)
        if isinstance(result, int):
            log.warning("acknowledge_rejected", condition=c.spec.name, user=user, reason=ua.StatusCode(result).name)
            return ua.StatusCode(result)
        log.info("alarm_acknowledged", condition=c.spec.name, source="/".join(c.spec.source), user=user, comment=text)
        await self._transition(c, result, now)
        return []
