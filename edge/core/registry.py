"""The tag registry: what every tag is, its latest sample, and who wants to hear about changes.

Device tags, twin outputs and diagnostics all live here under one key space, so the OPC UA server
(and later history and MQTT) see one uniform stream of ``TagSample``s.

Stale rules (one place): when a device's link is lost, a tag with a last usable value keeps it as
``UncertainNoCommunicationLastUsableValue`` (source time unchanged); a tag never read goes to
``BadNoCommunication``. With a staleness limit, a last usable value older than the limit goes Bad
instead (the supervisor re-applies the rule while the source stays unreachable). Until the first read every tag is ``BadWaitingForInitialData``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from drivers.columns import SampleColumns
from drivers.sample import Status, TagSample, is_bad, utcnow

log = structlog.get_logger("edge.core.registry")

Listener = Callable[[Sequence[TagSample]], None]
_BAD = 0x80000000  # status codes at or above this are Bad (severity bits 10 or 11)

DATA_TYPES = frozenset({"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "datetime", "bytes"})


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What a tag is: its key, where it appears in the address space, and its metadata."""

    key: str  # registry key, e.g. "tank1_plc.temperature" or "tank1.temperature.estimate"
    path: tuple[str, ...]  # browse path below the gateway object, e.g. ("Devices", "tank1_plc", "temperature")
    data_type: str = "float64"
    units: str | None = None
    low: float | None = None
    high: float | None = None
    description: str = ""
    writable: bool = False
    device: str | None = None  # the device whose link state governs this tag's staleness
    array: bool = False  # values are one-dimensional arrays (lists) of data_type
    sampling_interval_s: float | None = None  # the fastest the value can change (a tag's poll interval); None: unknown
    states: tuple[tuple[int, str], ...] | None = None  # named codes of an integer tag: ((0, "stopped"), (1, "running"))

    def __post_init__(self) -> None:
        if self.data_type not in DATA_TYPES:
            raise ValueError(f"{self.key}: unknown data type {self.data_type!r}")


class TagRegistry:
    """Latest sample per tag plus synchronous fan-out to listeners (which must not block).

    Listeners run inside the producer's ``publish`` call: one that raises is logged once
    (``listener_failed``) and counted in ``listener_failures``; the producer and the other
    listeners carry on.
    """

    def __init__(self) -> None:
        self._info: dict[str, TagInfo] = {}
        self._latest: dict[str, TagSample] = {}
        self._listeners: list[Listener] = []
        self._failed_listeners: set[int] = set()  # id() of subscribed listeners whose failure is logged
        self.listener_failures = 0
        self._by_device: dict[str, list[str]] = {}
        # columnar batches (drivers.columns): the latest batch per key tuple, and where each key's
        # latest sample is while it is in one (a later sample of the key alone takes it out)
        # (by the id of the key tuple, which the batch keeps alive: hashing a long tuple is not free)
        self._columns: dict[int, SampleColumns] = {}
        self._in_columns: dict[str, tuple[int, int]] = {}
        self._detached: set[int] = set()  # key tuples some of whose keys were published alone since

    # -- declaration -------------------------------------------------------------------------
    def add(self, info: TagInfo) -> None:
        self.add_all((info,))

    def add_all(self, infos: Iterable[TagInfo]) -> None:
        """``add`` each of *infos*, in order (one timestamp for their BadWaitingForInitialData samples)."""
        now = utcnow()
        for info in infos:
            if info.key in self._info:
                raise ValueError(f"duplicate tag key {info.key!r}")
            self._info[info.key] = info
            self._latest[info.key] = TagSample(info.key, None, Status.BadWaitingForInitialData, now, now)
            if info.device is not None:
                self._by_device.setdefault(info.device, []).append(info.key)

    def remove(self, keys: Iterable[str]) -> None:
        """Forget *keys* (a reload removed or redeclares them); their producers must have stopped,
        since a sample for an unknown key is refused. Unknown keys are ignored."""
        for key in keys:
            info = self._info.pop(key, None)
            if info is None:
                continue
            del self._latest[key]
            loc = self._in_columns.pop(key, None)
            if loc is not None:
                self._leave_columns(loc[0])
            if info.device is not None:
                tags = self._by_device.get(info.device, [])
                if key in tags:
                    tags.remove(key)
                if not tags:
                    self._by_device.pop(info.device, None)

    def redeclare(self, info: TagInfo) -> None:
        """Replace the metadata of an existing key whose device stays the same (a reload changed
        only its description); its latest sample stays."""
        old = self._info[info.key]
        if old.device != info.device:
            raise ValueError(f"{info.key}: redeclared for device {info.device!r}, was {old.device!r}")
        self._info[info.key] = info

    def info(self, key: str) -> TagInfo:
        return self._info[key]

    def infos(self) -> list[TagInfo]:
        return list(self._info.values())

    def __contains__(self, key: object) -> bool:
        return key in self._info

    def __len__(self) -> int:
        return len(self._info)

    def device_tags(self, device: str) -> list[str]:
        return list(self._by_device.get(device, ()))

    # -- samples -----------------------------------------------------------------------------
    def latest(self, key: str) -> TagSample:
        loc = self._in_columns.get(key)
        if loc is not None:
            return self._columns[loc[0]].sample(loc[1])
        return self._latest[key]

    def publish(self, samples: Sequence[TagSample]) -> None:
        """Accept finished samples as they are and notify listeners once per batch.

        The producer built each sample once and stamped it (``server_time`` is when the gateway
        received or computed the value); nothing is copied here. The one exception: a Bad sample
        that still carries a value is replaced by one without it, since a Bad status never carries
        a value (keeping one would show stale data as current).
        """
        if not samples:
            return
        if type(samples) is SampleColumns:
            self._publish_columns(samples)
            return
        latest = self._latest
        batch = samples
        in_columns = self._in_columns
        for i, s in enumerate(samples):
            if s.tag not in latest:
                raise KeyError(f"sample for unknown tag {s.tag!r}")
            if in_columns:
                loc = in_columns.pop(s.tag, None)
                if loc is not None:
                    self._detached.add(loc[0])
            if s.value is not None and s.status >= _BAD:
                if batch is samples:
                    batch = list(samples)
                s = batch[i] = TagSample(s.tag, None, s.status, s.source_time, s.server_time)
            latest[s.tag] = s
        self._notify(batch)

    def _publish_columns(self, batch: SampleColumns) -> None:
        """A columnar batch: its keys are checked when their tuple is first seen (or after a sample
        of one of them came alone); each key's latest sample is then read from the batch itself
        (a Bad row carries no value: ``SampleColumns.sample``)."""
        keys = batch.keys
        kid = id(keys)
        if kid not in self._columns or kid in self._detached:
            for key in keys:
                if key not in self._info:
                    raise KeyError(f"sample for unknown tag {key!r}")
            for i, key in enumerate(keys):
                self._in_columns[key] = (kid, i)
            self._detached.discard(kid)
        self._columns[kid] = batch
        self._notify(batch)

    def _leave_columns(self, kid: int) -> None:
        """Forget the columnar batch of key tuple *kid*: its keys keep their latest sample as rows."""
        batch = self._columns.pop(kid, None)
        self._detached.discard(kid)
        if batch is None:
            return
        for i, key in enumerate(batch.keys):
            loc = self._in_columns.get(key)
            if loc is not None and loc[0] == kid:
                del self._in_columns[key]
                self._latest[key] = batch.sample(i)

    def mark_stale(
        self,
        keys: Iterable[str],
        *,
        at: datetime | None = None,
        stale_after_s: float | None = None,
        status: int = Status.BadNoCommunication,
        since: datetime | None = None,
    ) -> None:
        """Downgrade tags whose source is unreachable (see the module docstring for the rules).

        With *stale_after_s*, a last usable value older than that (by its source time) is no
        longer usable: the tag goes to *status* (a Bad code) instead. Call again to re-evaluate.
        With *since* (when the source was last known to hold the value, e.g. the loss of a link
        to a device that only reports changes), the age counts from *since* if that is later.
        """
        at = at or utcnow()
        out = []
        for key in keys:
            last = self.latest(key)
            usable = last.value is not None and not is_bad(last.status)
            confirmed = max(last.source_time, since) if since is not None else last.source_time
            if usable and stale_after_s is not None and (at - confirmed).total_seconds() >= stale_after_s:
                usable = False
            if usable:
                if last.status != Status.UncertainNoCommunicationLastUsableValue:
                    out.append(TagSample(key, last.value, Status.UncertainNoCommunicationLastUsableValue, last.source_time, at))
            elif last.status != status:
                out.append(TagSample(key, None, status, at, at))
        self.publish(out)

    # -- listeners ---------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register *listener*; return a function that removes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
                self._failed_listeners.discard(id(listener))

        return unsubscribe

    def _notify(self, batch: Sequence[TagSample]) -> None:
        """Hand *batch* to every listener; a listener that raises never reaches the producer."""
        for listener in list(self._listeners):
            try:
                listener(batch)
            except Exception as exc:
                self.listener_failures += 1
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    log.error("listener_failed", listener=_name(listener), error=repr(exc), exc_info=exc)


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__qualname__
