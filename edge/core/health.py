"""Per-device health: link state, last error and counters, published as Diagnostics tags.

Counters are data, not log lines: the supervisor logs an outage once and counts everything else.
The same numbers feed the Prometheus endpoint (``edge.metrics``), read at scrape time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.base import LinkState
from drivers.sample import Status, TagSample, utcnow
from edge.core.names import device_diag_key, device_diag_path
from edge.core.registry import TagInfo
from edge.core.stats import Histogram

# (leaf name, data type, units, description); the leaves are edge.core.names.DEVICE_DIAGNOSTICS
DEVICE_FIELDS: tuple[tuple[str, str, str | None, str], ...] = (
    ("LinkState", "string", None, "disconnected | connecting | connected | closed"),
    ("LastError", "string", None, "the error of the current or most recent outage"),
    ("ReadsOk", "uint64", None, "poll cycles that returned"),
    ("ReadsFailed", "uint64", None, "poll cycles lost to a transport failure"),
    ("Reconnects", "uint64", None, "successful connects after an outage"),
    ("PollCycleTime", "float64", "s", "duration of the last poll cycle"),
    ("Requests", "uint64", None, "requests sent to the device (the driver's count; poll cycles for a driver that does not count)"),
)


@dataclass(slots=True)
class DeviceHealth:
    device: str
    link_state: LinkState = LinkState.DISCONNECTED
    last_error: str = ""
    reads_ok: int = 0
    reads_failed: int = 0
    reconnects: int = 0
    poll_cycle_s: float = 0.0
    requests: int = 0
    poll_cycles: Histogram = field(default_factory=Histogram, repr=False)  # every poll cycle's duration (metrics)

    def key(self, leaf: str) -> str:
        return device_diag_key(self.device, leaf)

    def infos(self) -> list[TagInfo]:
        return [TagInfo(self.key(leaf), device_diag_path(self.device, leaf), dtype, units, description=desc) for leaf, dtype, units, desc in DEVICE_FIELDS]

    _published: dict[str, object] = field(default_factory=dict, repr=False)  # leaf -> value last published

    def values(self) -> tuple[object, ...]:
        """The current value of each of DEVICE_FIELDS, in order."""
        return (
            self.link_state.value,
            self.last_error,
            self.reads_ok,
            self.reads_failed,
            self.reconnects,
            self.poll_cycle_s,
            self.requests,
        )

    def changed_samples(self) -> list[TagSample]:
        """Samples of the fields whose value differs from the one last returned here (all, the first time)."""
        now = utcnow()
        out = []
        published = self._published
        for (leaf, *_), value in zip(DEVICE_FIELDS, self.values(), strict=True):
            if leaf not in published or published[leaf] != value:
                published[leaf] = value
                out.append(TagSample(self.key(leaf), value, Status.Good, now, now))
        return out
