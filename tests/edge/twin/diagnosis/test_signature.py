"""Signature extraction and matching on synthetic signals with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.twin.diagnosis.library import UNKNOWN, Library, Pattern
from edge.twin.diagnosis.match import diagnose, overlaps
from edge.twin.diagnosis.signature import Signature, extract, signal_features, similarity

SIGNALS = ("temperature", "flow", "current", "vibration")
NOISE = (0.1, 0.2, 0.05, 0.03)


def episode(kind: str, strength: float = 1.0, seed: int = 0, offset: float = 0.0) -> Signature:
    """A baseline of 300 noisy samples, then 120 samples of *kind* (1 sample per second)."""
    rng = np.random.default_rng(seed)
    base_level = np.array([50.0 + offset, 20.0 + offset, 6.0, 1.5])
    base = base_level[:, None] + np.array(NOISE)[:, None] * rng.standard_normal((4, 300))
    t = np.arange(120.0)
    epi = base_level[:, None] + np.array(NOISE)[:, None] * rng.standard_normal((4, 120))
    flags = [""] * 4
    if kind == "bearing":
        epi[2] += strength * 0.005 * t
        epi[3] += strength * 0.02 * t
    elif kind == "drift":
        epi[0] += strength * 0.5 / 60 * t * 4
    elif kind == "stuck":
        epi[0] = epi[0][0]
        flags[0] = "stuck"
    elif kind == "flow":
        epi[1] = 0.0
    elif kind == "spike":
        hits = rng.random(120) < 0.1
        epi[0] += np.where(hits, strength * 5.0 * np.sign(rng.standard_normal(120)), 0.0)
    return extract(SIGNALS, base.tolist(), epi.tolist(), [t.tolist()] * 4, NOISE, flags, [(np.arange(300.0) - 300.0).tolist()] * 4)


def test_features_of_a_step_a_ramp_and_a_frozen_reading() -> None:
    rng = np.random.default_rng(1)
    base = 10.0 + 0.1 * rng.standard_normal(300)
    t = np.arange(100.0)
    step = 10.0 + 1.0 + 0.1 * rng.standard_normal(100)  # +10 sigma
    dev, slope, spread = signal_features(base, step, t, 0.1)
    assert dev == pytest.approx(10.0, rel=0.15)
    assert abs(slope) < 1.0
    assert abs(spread) < 0.2
    ramp = 10.0 + 0.01 * t + 0.1 * rng.standard_normal(100)  # 0.6 per minute = 6 sigma/min
    _, slope, _ = signal_features(base, ramp, t, 0.1)
    assert slope == pytest.approx(6.0, rel=0.15)
    dev, slope, spread = signal_features(base, np.full(100, 10.0), t, 0.1)
    assert abs(dev) < 1.0 and spread < -3  # the noise collapsed
    assert signal_features([], [1.0, 2.0], [0.0, 1.0], 0.1) == (0.0, 0.0, 0.0)


def test_a_trend_under_way_before_the_episode_is_not_a_deviation() -> None:
    rng = np.random.default_rng(4)
    tb, te = np.arange(-300.0, 0.0), np.arange(0.0, 120.0)
    base = 40.0 + 0.01 * tb + 0.1 * rng.standard_normal(300)  # settling after a setpoint move
    epi = 40.0 + 0.01 * te + 0.1 * rng.standard_normal(120)
    dev, slope, _ = signal_features(base, epi, te, 0.1, tb)
    assert abs(dev) < 2.0 and abs(slope) < 1.0
    dev_flat, _, _ = signal_features(base, epi, te, 0.1)  # without times: no trend
    assert dev_flat > 2.5  # around 3 sigma of the (trend-inflated) spread


def test_noise_floor_keeps_a_still_baseline_from_inflating_the_deviation() -> None:
    dev, _, _ = signal_features(np.zeros(100), np.full(20, 0.1), np.arange(20.0), 0.1)
    assert dev == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["bearing", "drift", "stuck", "flow", "spike"])
def test_the_same_fault_matches_itself_at_another_strength_and_operating_point(kind: str) -> None:
    a, b = episode(kind, 1.0, seed=1), episode(kind, 0.6, seed=2, offset=5.0)
    assert similarity(a, b) > 0.85
    others = [similarity(a, episode(k, seed=3)) for k in ("bearing", "drift", "stuck", "flow", "spike") if k != kind]
    assert max(others) < 0.5


def test_contributors_rank_the_deviating_signals_first() -> None:
    sig = episode("bearing")
    assert sig.contributors()[:2] == ["vibration", "current"]
    assert sum(sig.contributions()) == pytest.approx(1.0)
    assert episode("flow").contributors()[0] == "flow"
    assert episode("spike").contributors()[0] == "temperature"  # nothing moved: ranked by the noise change


def test_diagnosis_names_the_pattern_and_says_unknown_for_a_new_fault() -> None:
    lib = Library("t")
    for kind in ("bearing", "drift", "flow"):
        lib = lib.with_pattern(Pattern(kind, action=f"fix {kind}", signatures=(episode(kind, seed=10),)))
    d = diagnose(episode("bearing", 1.4, seed=11), lib)
    assert (d.fault, d.action) == ("bearing", "fix bearing")
    assert d.confidence > 0.85 and d.runner_up in ("drift", "flow") and d.runner_up_confidence < 0.5
    unknown = diagnose(episode("spike", seed=12), lib)
    assert unknown.fault == UNKNOWN and unknown.action == ""
    assert diagnose(episode("spike"), Library("empty")).fault == UNKNOWN


def test_overlap_with_another_pattern_is_reported() -> None:
    lib = Library("t").with_pattern(Pattern("wear", signatures=(episode("bearing", seed=1),)))
    assert overlaps(episode("bearing", seed=2), lib, "bearing2") == [("wear", pytest.approx(1.0, abs=0.15))]
    assert overlaps(episode("flow", seed=2), lib, "flow") == []


def test_signature_json_round_trip_and_checks() -> None:
    sig = episode("stuck")
    back = Signature.from_json(sig.to_json())
    assert back.signals == sig.signals and back.flags == sig.flags
    assert np.allclose(back.deviation, sig.deviation, atol=1e-4)
    with pytest.raises(ValueError, match="unknown sensor flag"):
        Signature(("a",), (0.0,), (0.0,), (0.0,), ("wobbly",))
    with pytest.raises(ValueError, match="finite"):
        Signature(("a",), (math.nan,), (0.0,), (0.0,), ("",))
    with pytest.raises(ValueError, match="entries for 2 signals"):
        Signature(("a", "b"), (0.0,), (0.0, 0.0), (0.0, 0.0), ("", ""))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=40), st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=40), st.floats(1e-6, 10.0))
def test_features_are_finite_for_any_finite_input(base: list[float], epi: list[float], noise: float) -> None:
    feats = signal_features(base, epi, list(range(len(epi))), noise)
    assert all(math.isfinite(f) for f in feats)
