"""The contract between the daemon and a southbound driver.

A driver is a connection to one device (or one bus): it opens the transport, reads its points,
writes one point, and closes. It never retries a lost connection by itself: the supervisor in
``edge`` owns reconnection, backoff and outage logging, so that each outage is handled in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from drivers.sample import Status, TagSample, TagValue

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

    samples: list[TagSample]
    not_fetched: dict[int, list[str]] = field(default_factory=dict)


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


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
    the values read delivers: bool, int16..uint64, float32, float64 or string). Points are
    validated when the config is loaded, never inside connect/read. The class is built from its
    settings by ``from_settings`` (see ``DriverClass``).
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

    async def write(self, point: Any, value: TagValue) -> Status:
        """Write one value; return Status.Good or the status that explains the refusal."""

    async def close(self) -> None:
        """Release the transport. Idempotent; never raises."""


class DriverClass(Protocol):
    """What ``drivers.DRIVER_KINDS`` registers for a kind: a driver class and how to build it.

    ``kind`` is the value of the device's ``driver`` key, ``Settings`` the settings model the config
    validates the device with, and ``from_settings`` builds a driver from such a validated model
    (``log`` is a structlog logger; None means the driver's own).
    """

    kind: str
    Settings: type[DeviceSettings]

    def from_settings(self, settings: Any, *, log: Any = None) -> Driver: ...
