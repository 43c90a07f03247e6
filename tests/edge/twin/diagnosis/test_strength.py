"""A recorded pattern recognises the same fault at another strength: the shape rule
(``signature.compare``: the full cosine, or 0.9 x the cosine of the strength-free shapes)."""

from __future__ import annotations

import pytest

from edge.twin.diagnosis.library import UNKNOWN, Library, Pattern
from edge.twin.diagnosis.match import diagnose
from edge.twin.diagnosis.signature import SHAPE_WEIGHT, Signature, cosine, shape_vector, similarity, vector

SIGNALS = ("temperature", "level", "flow", "motor_current", "vibration")


def sig(deviation, slope, spread, flags=("",) * 5) -> Signature:
    return Signature(SIGNALS, tuple(deviation), tuple(slope), tuple(spread), tuple(flags))


# recorded from history while the flowmeter read 0 (noise gone: spread -6), and a live episode of
# the same meter losing 40 % of its reading (noise kept; the step itself raises the spread a little):
# the signatures bench_diagnosis.py's record-then-recognise run produced
READS_ZERO = sig([-0.46, -0.23, -175.1, 0.19, 0.16], [-0.16, -0.03, -0.36, 0.01, 0.01], [-0.02, -0.09, -6.0, 0.03, -0.05], ("", "", "contradiction", "", ""))
LOSES_40 = sig([0.39, -0.04, -73.4, -0.07, -0.03], [0.09, 0.01, -27.7, -0.02, -0.01], [-0.02, -0.02, 0.45, -0.02, -0.04], ("", "", "contradiction", "", ""))


def test_the_flowmeter_recorded_reading_zero_recognises_one_losing_40_percent() -> None:
    full = cosine(vector(READS_ZERO, SIGNALS), vector(LOSES_40, SIGNALS))
    assert full < 0.7  # the full signatures alone fall short: the noise collapse is part of the recorded one
    assert similarity(READS_ZERO, LOSES_40) == pytest.approx(SHAPE_WEIGHT * cosine(shape_vector(READS_ZERO, SIGNALS), shape_vector(LOSES_40, SIGNALS)))
    assert similarity(READS_ZERO, LOSES_40) >= 0.85
    lib = Library("t", (Pattern("flow_sensor", signatures=(READS_ZERO,)),))
    assert diagnose(LOSES_40, lib).fault == "flow_sensor"


def test_a_shape_only_match_scores_at_most_the_shape_weight_and_a_full_match_wins() -> None:
    s = similarity(READS_ZERO, LOSES_40)
    assert s <= SHAPE_WEIGHT
    assert similarity(LOSES_40, LOSES_40) == pytest.approx(1.0)
    lib = Library("t", (Pattern("meter_failed", signatures=(READS_ZERO,)), Pattern("meter_drops", signatures=(LOSES_40,))))
    d = diagnose(LOSES_40, lib)
    assert (d.fault, d.runner_up) == ("meter_drops", "meter_failed")


def test_the_shape_never_joins_faults_that_move_other_signals_or_the_other_way() -> None:
    flow_up = sig([0.0, 0.0, 60.0, 0.0, 0.0], [0.0, 0.0, 20.0, 0.0, 0.0], [0.0] * 5)
    bearing = sig([0.2, 0.0, 0.0, 4.9, 29.0], [0.1, 0.0, -0.2, 2.7, 16.6], [0.0] * 5)
    assert similarity(READS_ZERO, flow_up) < 0  # same signal, opposite direction
    assert similarity(READS_ZERO, bearing) < 0.3
    lib = Library("t", (Pattern("bearing_wear", signatures=(bearing,)), Pattern("flow_high", signatures=(flow_up,))))
    assert diagnose(LOSES_40, lib).fault == UNKNOWN


def test_without_a_significant_deviation_only_the_full_signature_compares() -> None:
    stuck = sig([0.1, 0.0, 0.5, 0.0, 0.0], [0.0] * 5, [0.0, 0.0, -2.0, 0.0, 0.0], ("", "", "stuck", "", ""))
    spikes = sig([0.1, 0.0, 0.5, 0.0, 0.0], [0.0] * 5, [0.0, 0.0, 1.2, 0.0, 0.0], ("", "", "spike", "", ""))
    assert not shape_vector(stuck, SIGNALS).any()
    assert similarity(stuck, spikes) == pytest.approx(cosine(vector(stuck, SIGNALS), vector(spikes, SIGNALS)))
    assert similarity(stuck, spikes) < 0


@pytest.mark.parametrize("scale", [0.3, 0.6, 1.5, 4.0])
def test_deviations_and_slopes_scaled_together_keep_a_full_match(scale: float) -> None:
    """A fault at another strength scales the deviations and slopes; with the noise unchanged the
    full signatures still agree (the direction is compared, slopes clip at 5 sigma/min)."""
    base = sig([0.0, 0.0, 0.0, 6.0, 30.0], [0.0, 0.0, 0.0, 1.0, 5.0], [0.0] * 5)
    scaled = sig([0.0, 0.0, 0.0, 6.0 * scale, 30.0 * scale], [0.0, 0.0, 0.0, scale, 5.0 * scale], [0.0] * 5)
    assert similarity(base, scaled) >= 0.9
