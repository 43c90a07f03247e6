"""Fault diagnosis from a fault-pattern library (docs/diagnosis.md).

* ``signature``: what an anomaly episode looks like, per signal (pure).
* ``library``: the fault patterns of an asset type and their versioned JSON file.
* ``match``: which pattern an episode is, or ``unknown`` (pure).
* ``live``: the per-asset diagnoser the twin runner ticks, publishing ``Assets/<asset>/Diagnosis``.
* ``record``: a pattern built from a window of history (RecordFaultPattern, ``edgetwin patterns``).
"""
