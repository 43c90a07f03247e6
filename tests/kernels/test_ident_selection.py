"""Which identification implementation runs (same switches as the Kalman kernels)."""

from __future__ import annotations

import os

import pytest

from kernels.ident import IDENT_IMPLEMENTATION
from tests.kernels.test_selection import import_kernels

BLOCK_IDENT = "import sys; sys.modules['kernels._ident'] = None; "
PRINT = "import kernels.ident as i; print(i.IDENT_IMPLEMENTATION)"


def run(env: dict[str, str], prelude: str = ""):
    return import_kernels(env, prelude=prelude + PRINT + "; ")


def test_implementation_reflects_environment() -> None:
    if os.environ.get("EDGE_KERNELS_PURE"):
        assert IDENT_IMPLEMENTATION == "numpy"
    if os.environ.get("EDGE_REQUIRE_CYTHON") == "1":
        assert IDENT_IMPLEMENTATION == "cython"


def test_pure_switch_forces_numpy() -> None:
    result = run({"EDGE_KERNELS_PURE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "numpy"


def test_built_extension_is_picked_up() -> None:
    pytest.importorskip("kernels._ident", reason="compiled kernels not built")
    result = run({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "cython"


def test_missing_extension_falls_back_or_fails_when_required() -> None:
    result = run({}, prelude=BLOCK_IDENT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "numpy"
    result = run({"EDGE_REQUIRE_CYTHON": "1"}, prelude=BLOCK_IDENT)
    assert result.returncode != 0
    assert "EDGE_REQUIRE_CYTHON=1 but kernels._ident" in result.stderr
