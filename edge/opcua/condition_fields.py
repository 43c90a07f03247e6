"""How a condition's state reaches its event fields and the condition node's own variables
(``edge.opcua.alarms``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asyncua import ua


def two_state(ev: Any, name: str, value: bool, true_text: str, false_text: str, since: datetime | None) -> None:
    """Set a TwoStateVariable field of the event (``ActiveState``, ``AckedState`` ...) and its
    ``Id``, ``TrueState``, ``FalseState`` and (when known) ``TransitionTime``."""
    setattr(ev, name, ua.LocalizedText(true_text if value else false_text))
    setattr(ev, f"{name}/Id", value)
    setattr(ev, f"{name}/TrueState", ua.LocalizedText(true_text))
    setattr(ev, f"{name}/FalseState", ua.LocalizedText(false_text))
    if since is not None:
        setattr(ev, f"{name}/TransitionTime", since)


async def state_nodes(cond: Any, event: Any) -> dict[str, ua.NodeId]:
    """The variables of an instantiated condition (and their properties, e.g. ``ActiveState/Id``)
    that carry one of the event's fields."""
    out: dict[str, ua.NodeId] = {}
    for child in await cond.get_children(nodeclassmask=ua.NodeClass.Variable):
        name = (await child.read_browse_name()).Name
        if name in event.data_types:
            out[name] = child.nodeid
        for prop in await child.get_children(nodeclassmask=ua.NodeClass.Variable):
            sub = f"{name}/{(await prop.read_browse_name()).Name}"
            if sub in event.data_types:
                out[sub] = prop.nodeid
    return out
