"""Config checks of the ``[mqtt]`` section that need more than its own model: the files it names
exist, and no device shares its name with an asset (both would be the same Sparkplug device).

``mqtt_problems`` returns (key path, message) pairs; the loader locates them in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

FILE_KEYS = ("password_file", "ca_file", "cert_file", "key_file")


def mqtt_problems(mqtt: Any, devices: Sequence[tuple[str, Any]], assets: Sequence[tuple[str, Any]], base: Path) -> list[tuple[str, str]]:
    out = []
    for key in FILE_KEYS:
        value = getattr(mqtt, key)
        if value is None:
            continue
        path = Path(value) if Path(value).is_absolute() else base / value
        if not path.is_file():
            out.append((f"mqtt.{key}", f"file not found: {path}"))
    if mqtt.mode == "sparkplug":
        device_names = {d.name for _, d in devices if d.tags}
        for prefix, asset in assets:
            if asset.name in device_names:
                out.append((f"{prefix}.name", f"asset {asset.name!r} has the name of a device: both would be Sparkplug device {asset.name!r}; rename one"))
    return out
