"""The soak benchmark's arithmetic (benchmarks/soak_stats.py, through bench_soak) and its generated config (the benchmark itself is not run here)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "benchmarks" / "bench_soak.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_soak"] = bench
_spec.loader.exec_module(bench)


def test_slope_is_the_least_squares_fit_per_hour_after_the_warmup() -> None:
    # 2 MB per minute after a warm-up that jumps about; the warm-up is left out
    samples = [(t, 500.0 if t < 60 else 100.0 + 2.0 * (t - 60) / 60) for t in range(0, 600, 10)]
    assert bench.slope_per_hour(samples, warmup_s=60) == pytest.approx(120.0)
    assert bench.slope_per_hour(samples, warmup_s=0) < 0  # the warm-up would turn it around
    noisy = [(t, 100.0 + (1.0 if t % 20 else -1.0)) for t in range(0, 3600, 10)]
    assert abs(bench.slope_per_hour(noisy)) < 0.1  # flat with noise: about zero
    assert math.isnan(bench.slope_per_hour([(0.0, 1.0)]))
    assert math.isnan(bench.slope_per_hour([(5.0, 1.0), (5.0, 2.0)]))


def test_percentile_by_nearest_rank() -> None:
    values = list(range(1, 101))
    assert bench.percentile(values, 0.5) == 50
    assert bench.percentile(values, 0.99) == 99
    assert bench.percentile(values, 1.0) == 100
    assert bench.percentile([7.0], 0.99) == 7.0
    assert math.isnan(bench.percentile([], 0.5))


def test_overruns_are_the_cycles_above_the_poll_interval_bucket() -> None:
    text = "\n".join(
        [
            "# HELP edgetwin_poll_cycle_seconds duration of each poll cycle",
            'edgetwin_poll_cycle_seconds_bucket{device="s00",le="0.1"} 3.0',
            'edgetwin_poll_cycle_seconds_bucket{device="s00",le="1.0"} 9.0',
            'edgetwin_poll_cycle_seconds_bucket{device="s00",le="+Inf"} 10.0',
            'edgetwin_poll_cycle_seconds_count{device="s00"} 10.0',
            'edgetwin_poll_cycle_seconds_bucket{device="f00",le="0.1"} 40.0',
            'edgetwin_poll_cycle_seconds_count{device="f00"} 50.0',
            "edgetwin_history_rows_written_total 1234.0",
        ]
    )
    metrics = bench.parse_metrics(text)
    assert metrics[("edgetwin_history_rows_written_total", ())] == 1234.0
    cycles = bench.poll_cycles(metrics, {"s00": 1.0, "f00": 0.1, "absent": 1.0})
    assert (cycles["s00"].cycles, cycles["s00"].overruns) == (10.0, 1.0)
    assert (cycles["f00"].cycles, cycles["f00"].overruns) == (50.0, 10.0)
    assert "absent" not in cycles


def test_the_generated_config_loads_with_history_twin_and_metrics(tmp_path: Path) -> None:
    plan = bench.make_plan(1000, 1000)
    plan.ports = {d: 1502 + i for i, d in enumerate(plan.devices)}
    cfg = load_config(bench.write_config(plan, tmp_path, 4840, 9108))
    assert [(d.name, d.poll_interval_s, len(d.tags)) for d in cfg.devices] == [("s00", 1.0, 1000), ("f00", 0.1, 1000)]
    assert sum(t.historize for t in cfg.devices[0].tags) == 100
    stamps = [t for t in cfg.devices[0].tags if t.type == "uint32"]
    assert len(stamps) == 40 and all(t.address.startswith("hr:") for t in stamps)
    assert len(cfg.assets) == bench.ASSETS and all(a.historize for a in cfg.assets)
    assert all(s.tag.startswith("s00.") for a in cfg.assets for s in a.signals)  # twin over the 1 s tags
    assert cfg.metrics is not None and cfg.metrics.listen == "127.0.0.1:9108"


def test_help_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_soak.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--minutes" in out.stdout and "--quick" in out.stdout
