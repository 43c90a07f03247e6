"""Config checks of the ``[mqtt]`` section that need more than its own model: the files it names
exist. (A device and an asset never share a name, ``edge.config.checks``, so each is its own
Sparkplug device.)

``mqtt_problems`` returns (key path, message) pairs; the loader locates them in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILE_KEYS = ("password_file", "ca_file", "cert_file", "key_file")


def mqtt_problems(mqtt: Any, base: Path) -> list[tuple[str, str]]:
    out = []
    for key in FILE_KEYS:
        value = getattr(mqtt, key)
        if value is None:
            continue
        path = Path(value) if Path(value).is_absolute() else base / value
        if not path.is_file():
            out.append((f"mqtt.{key}", f"file not found: {path}"))
    return out
