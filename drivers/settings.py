"""Building blocks of the drivers' settings models (pydantic v2; no I/O, no protocol library).

Every driver kind has one settings model, a subclass of ``DeviceSettings``, registered next to
its driver class in ``drivers.DRIVER_KINDS``. The gateway's config (``edge.config``) validates
each ``[[devices]]`` table with the model its ``driver`` key names; the driver is then built from
the validated model (``Driver.from_settings``). Limits are checked here, once: driver constructors
take their arguments as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def _tag_files(value: Any) -> Any:
    """One file or a list of files; anything else is refused with one clear message."""
    if value is None or isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    raise ValueError('must be a file name or a list of file names (tags_from = "pump.toml" or ["pump.toml", "extra.csv"])')


# ``tags_from``: tag files included into a device's tags, in order: ``.toml`` files of ``[[tags]]``
# tables or ``.csv`` files (columns are the tag model's keys), relative to the config file
TagFiles = Annotated[str | list[str] | None, BeforeValidator(_tag_files)]


class Strict(BaseModel):
    """Frozen; an unknown key is an error (with a suggestion, in the config's messages), and so is a
    NaN or infinite number (TOML allows `nan` and `inf`; no setting, limit or scale means either)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class ExclusiveResource:
    """Something only one device may use (a serial port): two devices that claim the same one are
    a config error. Devices of different kinds collide too when ``what`` is the same text."""

    key: str  # the settings key that names the resource; the error is reported there
    what: str  # e.g. "serial port '/dev/ttyUSB0'"; equal texts are the same resource
    hint: str = ""  # what to do instead, appended to the error in parentheses


class DeviceSettings(Strict):
    """Settings of one device (one connection or bus): the base of every driver's settings model.

    A subclass declares ``driver: Literal["<kind>"]`` (the config tells the device models apart by
    it) and the keys the gateway reads from every device: ``description``, ``poll_interval_s``,
    ``stale_after_s`` and ``tags`` (a list of the driver's tag model, with at least ``name``,
    ``type``, ``units``, ``low``, ``high``, ``description``, ``writable``, ``historize``,
    ``alarm_high``, ``alarm_low``, ``alarm_deadband`` and ``alarm_severity``). With a ``tags_csv``
    key, and a flat tag model, the config imports more tags from a CSV file whose columns are the
    tag model's keys; with a ``tags_from`` key (``TagFiles``), from TOML files of ``[[tags]]``
    tables or CSV files. With a ``units`` key (a list of unit ids, or a table of unit names to
    ids) and a tag model with ``unit_id``, the config repeats every tag on each unit
    (``edge.config.units``). See docs/drivers.md.
    """

    name: Name

    if TYPE_CHECKING:  # declared by each subclass, with its own defaults and limits
        driver: str
        description: str
        poll_interval_s: float
        stale_after_s: float
        tags: Sequence[Any]

    def points(self) -> list[Any]:
        """The driver's validated points of this device, in tag order."""
        raise NotImplementedError

    def poll_intervals(self) -> list[float]:
        """Each tag's poll period (its scan group), in tag order."""
        raise NotImplementedError

    def exclusive_resource(self) -> ExclusiveResource | None:
        """What this device needs for itself, if anything (checked across all devices at load)."""
        return None
