"""Sensor validation, per signal: is this reading a measurement of the process or a sensor fault?

Pure logic (no I/O, no clock: time is a count of seconds passed in). One ``SignalValidator``
(``signal.py``) per validated signal; ``edge.twin.validation_hook`` feeds it from the registry and
the identified model and publishes its flags. Four tests, each naming the signal and the kind:

``stuck``
    A flat-lined reading, in two forms. Repeats: in normal operation it learns the share of
    consecutive readings that repeat (``p_flat``: a quantised reading repeats now and then, a
    float reading almost never). A run of ``n`` repeats has probability ``p_flat ** n`` on a
    healthy sensor; the reading is flagged when that falls below ``stuck_probability`` and the run
    lasts ``stuck_min_s``. A reading pinned at the tag's ``low`` limit (a stopped drive, a meter
    below its low-flow cutoff) is not a flat line. A signal that is flat in normal operation
    (``p_flat`` >= 0.9) is not tested. Fails to follow (``stuck.py``, signals with an identified
    model): the model predicts a move of ``follow_sigma`` noise deviations over the last 50 s (an
    input step) and the reading stays flat within its noise.
``spike``
    An isolated outlier: a reading more than ``spike_sigma`` noise deviations from the last
    accepted one is held back; if the next reading is back, it was a spike (flagged, never fed to
    the filter or the identification); if the next reading stays away, the process moved and the
    new reading is accepted.
``drift``
    A slow offset, three views. Balance (``balance.py``, signals with ``explained_by`` tags): the
    signal's rate of change against what those tags explain (a heat balance: heater, ambient,
    inflow through the volume), learnt by least squares on 10 s means; the residual summed over
    ``drift_window_s`` above ``balance_sigma`` deviations for 3 periods flags. It explains setpoint
    moves of every input it is told of, so once it has learnt it judges the drift alone. Ramp
    (``drift.py``, signals with an identified model, whether or not the model has learnt yet): over
    a window of ``drift_window_s`` the reading's slopes in its two halves leave a rate ``d`` that
    a process settling with a time constant up to ``drift_tau_s`` cannot make; ``d`` above
    ``drift_min_rate`` (per minute) and its noise, in the direction the reading moves, for a whole
    window, flags it. Against the model: the reading minus the identified model run open loop
    from the readings ``drift_horizon_s`` ago under the inputs since (a drifting sensor builds up
    an offset there), in units of that error's standard deviation learnt while the signal was
    trusted, into a two-sided CUSUM (slack ``drift_k``, decision level ``drift_h``) that flags
    while the ramp test's rate points the same way (the model's error after a move it does not
    explain settles; a drift does not).
``contradiction``
    The reading disagrees with its ``related`` signals: per related signal an online least-squares
    model ``signal ~ c0 + c1 x + c2 x^2`` (x the related reading scaled to its tag range,
    ``related.py``), learnt only while the signal is trusted and its related readings are Good.
    The smoothed residual, divided by its prediction standard deviation (which is large where the
    model has not seen data, so a new operating point is learnt, not flagged), above
    ``contradiction_sigma`` against *every* related signal flags it: a reading that disagrees with
    only one of them is more likely a change of that one (a worn bearing draws more current at the
    same flow and speed).

A flag stays raised at least ``hold_s`` and clears when its test no longer sees the fault. No test
flags before the signal has learnt ``learn_s`` of normal operation; nothing is learnt from a
flagged reading. ``trusted`` (no flag, nothing held back, learnt) is what the identified model may
learn from.
"""

from .balance import BalanceTest
from .drift import RampTest, open_loop
from .params import KINDS, ValidationParams
from .related import RelatedModel
from .signal import SignalValidator
from .stuck import fails_to_follow

__all__ = ["KINDS", "BalanceTest", "RampTest", "RelatedModel", "SignalValidator", "ValidationParams", "fails_to_follow", "open_loop"]
