"""What an alarm's message adds while it is active: the asset's diagnosis (fault, confidence, action).

A detail is a (label, registry key) pair of ``AlarmSpec.details``; it is shown as ``label: value``
when its latest sample is Good and not empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drivers.sample import Status
from edge.core import names

if TYPE_CHECKING:
    from edge.opcua.alarms import AlarmSpec


def diagnosis_details(asset: Any) -> tuple[tuple[str, str], ...]:
    """The details of an asset's anomaly alarm: its diagnosis, when it has ``[assets.diagnosis]``."""
    if getattr(asset, "diagnosis", None) is None:
        return ()
    return tuple((label, names.diagnosis_key(asset.name, output)) for label, output in (("fault", "fault"), ("confidence", "confidence"), ("action", "action")))


def details_text(spec: AlarmSpec, latest: Any) -> str:
    """``label: value`` of each Good, non-empty detail of *spec* (*latest*: key -> TagSample)."""
    parts = []
    for label, key in spec.details:
        s = latest(key)
        if s.status == Status.Good and s.value not in (None, "", []):
            parts.append(f"{label}: {s.value:.2f}" if isinstance(s.value, float) else f"{label}: {s.value}")
    return "; ".join(parts)
