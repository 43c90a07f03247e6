"""The contract between the daemon and a southbound driver.

A driver is a connection to one device (or one bus): it opens the transport, reads its points,
writes one point, and closes. It never retries a lost connection by itself: the supervisor in
``edge`` owns reconnection, backoff and outage logging, so that each outage is handled in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from drivers.sample import TagSample, TagValue

if TYPE_CHECKING:
    from drivers.settings import DeviceSettings


@dataclass(slots=True)
class ReadResult:
    """What one ``Driver.read`` produced.

    ``samples`` holds one finished sample per point that was fetched (Good, or Bad for a point the
    device refused or that did not decode), keyed by the point's ``name`` (the registry key) and
    stamped by the driver: the daemon publishes these objects as they are.

    ``not_fetched`` names the points that could not be fetched in this cycle although the link is
    up (a unit on a shared bus that does not answer, or one that is demoted), grouped by the Bad
    status each takes once its last usable value has expired (``BadTimeout``,
    ``BadNoCommunication``). Until then the daemon keeps that last value as
    UncertainNoCommunicationLastUsableValue. Every point appears in exactly one of the two.
    """

    samples: Sequence[TagSample]  # a list, or columns (drivers.columns.SampleColumns)
    not_fetched: dict[int, list[str]] = field(default_factory=dict)


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class DriverContext:
    """Where a driver may keep state and find files its settings name (``from_settings``).

    ``state_dir``: the gateway's state folder (certificates, keys); a driver keeps its own files in
    a subfolder of it. ``config_dir``: the folder relative paths in the settings are relative to
    (the config file's folder). None: not given (a driver that needs one says so).
    """

    state_dir: Path | None = None
    config_dir: Path | None = None


class DriverError(Exception):
    """Base class of driver errors."""


class DriverUnavailable(DriverError):
    """The transport is lost or cannot be opened; the supervisor reconnects."""


class UnknownDriverError(DriverError, LookupError):
    """No driver is registered under the requested kind."""


@runtime_checkable
class Driver(Protocol):
    """A connection to one southbound device or upstream server.

    A point is the driver's own parsed, validated tag description (e.g. a Modbus RegisterPoint),
    made by its settings model's ``points()``. The gateway renames each point to the registry key of
    its tag (``name``; the samples read returns carry it) and reads its ``value_type`` (the type of
    the values read delivers: bool, int8..uint64, float32, float64, string, datetime or bytes;
    a point with ``array = True`` delivers lists of that type). Points are validated when the config
    is loaded, never inside connect/read. The class is built from its settings by
    ``from_settings`` (see ``DriverClass``).

    A driver whose samples carry the device's own source timestamps (an upstream OPC UA server: an
    unchanged value keeps the time it last changed) sets ``source_timestamps = True``; the
    supervisor then counts a last usable value's age from the loss of the link, not from its source
    time (``edge.core.supervisor``).

    A driver may count the requests it sends to the device in an int attribute ``requests_sent``
    (never reset); the daemon shows it as the device's request counter.
    """

    kind: ClassVar[str]
    name: str

    @property
    def state(self) -> LinkState: ...

    async def connect(self) -> None:
        """Open the transport. Raise DriverUnavailable if the device cannot be reached."""

    async def read(self, points: Sequence[Any]) -> ReadResult:
        """Fetch *points*; each one ends in ``samples`` or in ``not_fetched`` (see ReadResult).

        A failure that affects only some points (illegal address, decode error) becomes a Bad
        sample for those points. Losing the transport raises DriverUnavailable.
        """

    async def write(self, point: Any, value: TagValue) -> int:
        """Write one value; return Status.Good or the status that explains the refusal.

        Any OPC UA status code may come back (e.g. the upstream device's own refusal), not only
        the ``Status`` members."""

    async def close(self) -> None:
        """Release the transport. Idempotent; never raises."""


@runtime_checkable
class SubscribingDriver(Driver, Protocol):
    """A driver whose device pushes changes (an OPC UA subscription) instead of being polled.

    After ``connect``, the supervisor calls ``run_subscription`` once instead of polling ``read``.
    It asks the device for *points* and hands each batch of changes to *sink* as a ReadResult
    (samples keyed by the points' ``name``, as ``read`` would), the current values first; points
    the device refuses arrive as Bad samples. *sink* is synchronous and must not be awaited. It
    runs until cancelled, and raises DriverUnavailable as soon as the session is lost (it never
    returns normally); the supervisor then closes the driver and reconnects, and the next
    ``run_subscription`` subscribes afresh. The driver never reconnects or resubscribes by itself.

    ``source_timestamps``: see ``Driver`` (a pushing device only sends changes, so a sample's source
    time is the time of the last change, not the time it was last confirmed).
    """

    async def run_subscription(self, points: Sequence[Any], sink: Callable[[ReadResult], None]) -> None: ...


@runtime_checkable
class StreamingDriver(Driver, Protocol):
    """A polled driver that can hand over each request's results as they arrive (Modbus blocks).

    ``read_streaming`` fetches *points* like ``read`` and calls *sink* (synchronous, never awaited)
    once per request with the ReadResult of that request's points, as soon as they are decoded;
    together the calls cover every point once. The supervisor publishes each one at once, so a
    value is dated and shown when it arrives, not when the slowest request of the cycle ends.
    Losing the transport raises DriverUnavailable, as ``read`` does.
    """

    async def read_streaming(self, points: Sequence[Any], sink: Callable[[ReadResult], None]) -> None: ...


class DriverClass(Protocol):
    """What ``drivers.DRIVER_KINDS`` registers for a kind: a driver class and how to build it.

    ``kind`` is the value of the device's ``driver`` key, ``Settings`` the settings model the config
    validates the device with, and ``from_settings`` builds a driver from such a validated model
    (``log`` is a structlog logger; None means the driver's own; ``context`` says where the driver
    may keep state and how relative paths in its settings resolve, None: a default context).
    """

    kind: str
    Settings: type[DeviceSettings]

    def from_settings(self, settings: Any, *, log: Any = None, context: DriverContext | None = None) -> Driver: ...
