"""Per-device health: link state, last error and counters, published as Diagnostics tags.

Counters are data, not log lines: the supervisor logs an outage once and counts everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.base import LinkState
from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo

# (leaf name, data type, units, description)
DEVICE_FIELDS: tuple[tuple[str, str, str | None, str], ...] = (
    ("LinkState", "string", None, "disconnected | connecting | connected | closed"),
    ("LastError", "string", None, "the error of the current or most recent outage"),
    ("ReadsOk", "uint64", None, "poll cycles that returned"),
    ("ReadsFailed", "uint64", None, "poll cycles lost to a transport failure"),
    ("Reconnects", "uint64", None, "successful connects after an outage"),
    ("PollCycleTime", "float64", "s", "duration of the last poll cycle"),
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

    def key(self, leaf: str) -> str:
        return f"_diag.{self.device}.{leaf}"

    def infos(self) -> list[TagInfo]:
        return [
            TagInfo(self.key(leaf), ("Diagnostics", self.device, leaf), dtype, units, description=desc)
            for leaf, dtype, units, desc in DEVICE_FIELDS
        ]

    def samples(self) -> list[TagSample]:
        now = utcnow()
        values = (
            self.link_state.value,
            self.last_error,
            self.reads_ok,
            self.reads_failed,
            self.reconnects,
            self.poll_cycle_s,
        )
        return [
            TagSample(self.key(leaf), value, Status.Good, now, now)
            for (leaf, *_), value in zip(DEVICE_FIELDS, values, strict=True)
        ]
