"""``edgetwin --version``: the versions an operator reports with a problem."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from edge import __version__

LIBRARIES = ("asyncua", "pymodbus", "numpy")


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """edgetwin, Python, the protocol and array libraries, and the kernel implementation in use."""
    import kernels

    out = {"edgetwin": __version__, "python": f"{platform.python_version()} ({sys.executable})"}
    out.update({name: _dist_version(name) for name in LIBRARIES})
    out["kernels"] = kernels.IMPLEMENTATION
    return out


def version_text() -> str:
    width = max(map(len, versions()))
    return "\n".join(f"{name:<{width}}  {value}" for name, value in versions().items())


class VersionAction(argparse.Action):
    """``--version``: print ``version_text()`` and exit 0 (computed only when asked: it imports the kernels)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the versions of edgetwin, Python, asyncua, pymodbus, numpy and the kernel implementation, then exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        print(version_text())
        parser.exit(0)
