"""Which implementation runs, and the public wrappers' argument checks (shared by both implementations)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kernels

ROOT = Path(__file__).resolve().parents[2]
BLOCK_EXTENSION = "import sys; sys.modules['kernels._kalman'] = None; "  # import of the extension then fails


def import_kernels(env: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess[str]:
    """Import kernels in a fresh interpreter with only the given EDGE_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH", "")]))
    code = prelude + "import kernels; print(kernels.IMPLEMENTATION)"
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_implementation_reflects_environment() -> None:
    """CI runs the suite compiled with EDGE_REQUIRE_CYTHON=1 and again with EDGE_KERNELS_PURE=1."""
    assert kernels.IMPLEMENTATION in ("cython", "numpy")
    if os.environ.get("EDGE_KERNELS_PURE"):
        assert kernels.IMPLEMENTATION == "numpy"
    if os.environ.get("EDGE_REQUIRE_CYTHON") == "1":
        assert kernels.IMPLEMENTATION == "cython"


def test_pure_switch_forces_numpy() -> None:
    result = import_kernels({"EDGE_KERNELS_PURE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


def test_built_extension_is_picked_up() -> None:
    pytest.importorskip("kernels._kalman", reason="compiled kernels not built")
    result = import_kernels({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cython"


def test_missing_extension_falls_back_to_numpy() -> None:
    result = import_kernels({}, prelude=BLOCK_EXTENSION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


def test_require_cython_without_extension_is_an_import_error() -> None:
    result = import_kernels({"EDGE_REQUIRE_CYTHON": "1"}, prelude=BLOCK_EXTENSION)
    assert result.returncode != 0
    assert "ImportError: EDGE_REQUIRE_CYTHON=1" in result.stderr
    assert "build_ext --inplace" in result.stderr


def test_require_cython_contradicts_pure() -> None:
    result = import_kernels({"EDGE_REQUIRE_CYTHON": "1", "EDGE_KERNELS_PURE": "1"})
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "EDGE_KERNELS_PURE" in result.stderr


def step_args(n: int = 4, s: int = 2) -> dict[str, object]:
    return {
        "x": np.zeros((n, s)),
        "P": np.tile(np.eye(s), (n, 1, 1)),
        "F": np.eye(s),
        "Q": np.zeros((s, s)),
        "H": np.eye(s)[0],
        "R": np.ones(n),
        "z": np.ones(n),
        "innov": np.zeros(n),
        "innov_var": np.zeros(n),
    }


def test_step_wrapper_accepts_lists_for_read_only_inputs() -> None:
    args = step_args()
    args.update(F=[[1, 0], [0, 1]], Q=[[0, 0], [0, 0]], H=[1, 0], R=[1, 1, 1, 1], z=[1, 2, 3, 4])
    kernels.kalman_step(**args)  # type: ignore[arg-type]
    assert np.all(args["innov_var"] == 2.0)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("x", np.zeros(4)),  # 1-D
        ("x", np.zeros((4, 9))),  # s above MAX_STATE_SIZE
        ("x", np.zeros((4, 0))),
        ("x", np.zeros((4, 2), dtype=np.float32)),
        ("x", np.zeros((4, 4))[:, ::2]),  # not C-contiguous
        ("x", np.zeros((4, 2)).tolist()),  # not an ndarray: an update would be lost
        ("P", np.zeros((4, 2, 3))),
        ("P", np.zeros((3, 2, 2))),
        ("P", np.asfortranarray(np.zeros((4, 2, 2)))),
        ("F", np.eye(3)),
        ("Q", np.zeros(2)),
        ("H", np.ones(3)),
        ("R", np.ones(5)),
        ("z", np.ones((4, 1))),
        ("innov", np.zeros(3)),
        ("innov_var", np.zeros(8)[::2]),
        ("innov_var", np.zeros(4, dtype=np.int64)),
    ],
)
def test_step_wrapper_rejects_bad_arrays(name: str, bad: object) -> None:
    args = step_args()
    args[name] = bad
    with pytest.raises(ValueError, match=name):
        kernels.kalman_step(**args)  # type: ignore[arg-type]


def test_step_wrapper_rejects_read_only_state() -> None:
    args = step_args()
    args["P"].flags.writeable = False  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"P .*writeable"):
        kernels.kalman_step(**args)  # type: ignore[arg-type]


def test_forecast_wrapper_checks() -> None:
    args = step_args()
    x, P, F, Q, H = (args[k] for k in "xPFQH")
    with pytest.raises(ValueError, match="steps"):
        kernels.kalman_forecast(x, P, F, Q, H, -1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kernels.kalman_forecast(x, P, F, Q, H, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="P"):
        kernels.kalman_forecast(x, np.zeros((4, 3, 3)), F, Q, H, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x"):
        kernels.kalman_forecast(np.zeros((4, 9)), P, F, Q, H, 1)  # type: ignore[arg-type]
    mean, var = kernels.kalman_forecast(x, P, F, Q, H, np.int64(3))  # type: ignore[arg-type]
    assert mean.shape == var.shape == (4,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": np.nan}, "alpha"),
        ({"alpha": np.full(3, 0.1)}, "alpha"),
        ({"score": np.ones(8)[::2]}, "score"),
        ({"score": np.ones((4, 1))}, "score"),
        ({"innov": np.ones(5)}, "innov"),
        ({"innov_var": np.ones(3)}, "innov_var"),
    ],
)
def test_nis_ewma_wrapper_rejects(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"score": np.ones(4), "innov": np.ones(4), "innov_var": np.ones(4), "alpha": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        kernels.nis_ewma(**args)  # type: ignore[arg-type]


def test_nis_ewma_wrapper_takes_scalar_or_per_channel_alpha() -> None:
    score = np.ones(2)
    kernels.nis_ewma(score, [3.0, 3.0], [1.0, 1.0], 0.5)
    assert score.tolist() == [5.0, 5.0]
    kernels.nis_ewma(score, [1.0, 1.0], [1.0, 1.0], [1.0, 0.5])
    assert score.tolist() == [1.0, 3.0]
