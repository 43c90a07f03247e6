"""Which implementation runs: every compiled module, or every NumPy reference, never a mix.

``EDGE_KERNELS_PURE`` (non-empty) forces the references; ``EDGE_REQUIRE_CYTHON=1`` turns a missing
compiled module into an ImportError instead of a fallback. ``kernels.IMPLEMENTATION`` reports the
choice for all kernels at once, so the startup log line and the Diagnostics node cannot be wrong
about one of them.
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType
from typing import Final

from . import detect_reference, ident_reference, kalman_reference

_COMPILED = ("kernels._kalman", "kernels._detect", "kernels._ident")
_REFERENCES = (kalman_reference, detect_reference, ident_reference)


def _select() -> tuple[ModuleType, ...]:
    require = os.environ.get("EDGE_REQUIRE_CYTHON") == "1"
    if os.environ.get("EDGE_KERNELS_PURE"):
        if require:
            raise ImportError("EDGE_KERNELS_PURE and EDGE_REQUIRE_CYTHON=1 are both set; unset one of them")
        return _REFERENCES
    modules = []
    for name in _COMPILED:
        try:
            modules.append(import_module(name))
        except ImportError as exc:
            if require:
                raise ImportError(
                    f"EDGE_REQUIRE_CYTHON=1 but {name} cannot be imported; build the kernels with "
                    "`python setup.py build_ext --inplace` (needs Cython and a C compiler)"
                ) from exc
            return _REFERENCES
    return tuple(modules)


kalman_impl, detect_impl, ident_impl = _select()
IMPLEMENTATION: Final[str] = "numpy" if kalman_impl is kalman_reference else "cython"
