"""The SKAB data set beside the checkout (``../shared/datasets/skab``), for the tests that read it.

CI always has ``../shared`` beside its clone, so there a missing file fails the test; in a checkout
without it the test is skipped, and says why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SKAB = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "skab" / "data"


def require(path: Path) -> Path:
    """*path* (a file or folder of the data set) when it exists; else fail under CI, skip elsewhere."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"SKAB data not found at {path} (CI must provide ../shared/datasets/skab)")
        pytest.skip(f"SKAB data not found at {path} (a checkout without ../shared)")
    return path
