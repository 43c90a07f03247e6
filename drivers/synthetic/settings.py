"""Settings of a synthetic device (``driver = "synthetic"``) and its points. Pure: pydantic only.

``tags`` is either a count (``tags = 10000`` generates ``t0`` .. ``t9999``, each with the device's
pattern, amplitude, period and offset) or a list of ``[[devices.tags]]`` tables with their own.
Every tag changes every ``interval_s``. See docs/drivers.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.settings import DeviceSettings, Name, Strict, TagFiles

Pattern = Literal["random_walk", "sine", "ramp", "counter", "square", "constant"]
SyntheticType = Literal["float64", "float32", "int64", "int32", "bool"]
MAX_TAGS = 1_000_000
WRITABLE_PATTERNS = ("random_walk", "counter", "constant")  # a written value is where these go on from
BOOL_PATTERNS = ("square", "constant")


class SyntheticTag(Strict):
    name: Name
    type: SyntheticType = "float64"
    pattern: Pattern | None = None  # None: the device's
    amplitude: float | None = None
    period_s: float | None = Field(None, gt=0)
    offset: float | None = None
    writable: bool = False
    low: float | None = None
    high: float | None = None
    units: str | None = None
    description: str = ""
    historize: bool = False
    alarm_high: float | None = None
    alarm_low: float | None = None
    alarm_deadband: float = Field(0.0, ge=0)
    alarm_severity: int = Field(500, ge=1, le=1000)

    @model_validator(mode="after")
    def _rules(self) -> SyntheticTag:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.alarm_high is not None and self.alarm_low is not None and self.alarm_low >= self.alarm_high:
            raise ValueError(f"alarm_low ({self.alarm_low:g}) must be below alarm_high ({self.alarm_high:g})")
        if self.type == "bool" and (self.low is not None or self.high is not None or self.alarm_high is not None or self.alarm_low is not None):
            raise ValueError("low/high and alarm limits need a numeric tag, not type 'bool'")
        return self


@dataclass(frozen=True, slots=True)
class SyntheticPoint:
    """One generated tag, with the device's defaults filled in."""

    name: str
    value_type: str
    pattern: str
    amplitude: float
    period_s: float
    offset: float
    writable: bool
    array: bool = False


class SyntheticSettings(DeviceSettings):
    """A synthetic device: no transport; every tag changes every ``interval_s``."""

    driver: Literal["synthetic"]
    interval_s: float = Field(1.0, ge=0.01, le=3600)
    pattern: Pattern = "random_walk"
    amplitude: float = 1.0  # sine/square: half the peak-to-peak; ramp: the rise per period; random_walk: ten steps' spread
    period_s: float = Field(60.0, gt=0)  # sine, ramp and square
    offset: float = 0.0  # the centre (sine, square, random_walk) or start (ramp, counter, constant)
    seed: int = 0  # random_walk: the same seed gives the same values
    stale_after_s: float = Field(30.0, gt=0, le=86400)
    description: str = ""
    tags_csv: str | None = None
    tags_from: TagFiles = None  # tag files: .toml ([[tags]] tables) or .csv, relative to the config file
    tags: list[SyntheticTag] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _count(cls, data: Any) -> Any:
        """``tags = N``: N generated tags t0 .. t<N-1>."""
        if isinstance(data, dict) and isinstance(data.get("tags"), int) and not isinstance(data.get("tags"), bool):
            n = data["tags"]
            if not 0 <= n <= MAX_TAGS:
                raise ValueError(f"tags: a count of 0..{MAX_TAGS}, got {n}")
            data = {**data, "tags": [{"name": f"t{i}"} for i in range(n)]}
        return data

    @model_validator(mode="after")
    def _rules(self) -> SyntheticSettings:
        for i, t in enumerate(self.tags):
            pattern = t.pattern or self.pattern
            if t.writable and pattern not in WRITABLE_PATTERNS:
                raise ValueError(f"tags[{i}]: a writable tag needs pattern {', '.join(WRITABLE_PATTERNS)}, not {pattern!r}")
            if t.type == "bool" and pattern not in BOOL_PATTERNS:
                raise ValueError(f"tags[{i}]: a bool tag needs pattern {' or '.join(BOOL_PATTERNS)}, not {pattern!r}")
        return self

    @property  # type: ignore[misc]
    def poll_interval_s(self) -> float:  # type: ignore[override]
        """The gateway reads each device's poll interval; a synthetic device pushes every interval_s."""
        return self.interval_s

    def points(self) -> list[SyntheticPoint]:
        return [
            SyntheticPoint(
                name=t.name,
                value_type=t.type,
                pattern=t.pattern or self.pattern,
                amplitude=self.amplitude if t.amplitude is None else t.amplitude,
                period_s=t.period_s or self.period_s,
                offset=self.offset if t.offset is None else t.offset,
                writable=t.writable,
            )
            for t in self.tags
        ]

    def poll_intervals(self) -> list[float]:
        return [self.interval_s] * len(self.tags)
