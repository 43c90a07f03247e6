"""Built-in simulated plant: a heated tank with a pump, served over Modbus TCP.

``plant`` and ``registers`` are pure; ``server`` holds the pymodbus server and the tick task
and is imported lazily so that the pure parts do not pull in pymodbus.
"""

from .plant import Fault, Plant, PlantParams, Setpoints, parse_fault, steady_state

__all__ = [
    "Fault",
    "Plant",
    "PlantParams",
    "PlantServer",
    "Setpoints",
    "parse_fault",
    "serve_plant",
    "steady_state",
]


def __getattr__(name: str):
    if name in ("serve_plant", "PlantServer"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
