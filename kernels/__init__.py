"""Twin kernels: pure functions on float64 arrays (imports only NumPy), compiled or NumPy.

Three kernel families, each named the same way:

==========  ==============  ================  =====================  =====================================
family      public layer    compiled          NumPy reference        what
==========  ==============  ================  =====================  =====================================
Kalman      ``kalman.py``   ``_kalman.pyx``   ``kalman_reference``   batched linear Kalman filter, models
ident       ``ident.py``    ``_ident.pyx``    ``ident_reference``    online ARX identification, what-if
detect      ``detect.py``   ``_detect.pyx``   ``detect_reference``   EWMA / CUSUM / PCA detectors, fitting
==========  ==============  ================  =====================  =====================================

``detect_adapt.py`` (NumPy only, no kernel of its own) wraps the PCA kernel in a monitor that
follows slow normal change (``AdaptivePca``, ``Adaptation``); ``detect_release.py`` ends its
alarms by the peak-relative release (``PeakRelease``); ``detect_fit.py`` fits the detectors and
computes their control limits (re-exported by ``detect``).

The public layer validates arguments and calls the active implementation; the reference is the
spec the compiled module is parity-tested against (rtol 1e-12); each ``_<family>.pyx`` has a
``.pyi`` stub. ``kernels._select`` picks one implementation for every family at once and
``IMPLEMENTATION`` (``"cython"`` or ``"numpy"``) says which one runs.

Environment:
    ``EDGE_KERNELS_PURE`` (any non-empty value, as in setup.py): use the NumPy references.
    ``EDGE_REQUIRE_CYTHON=1``: raise ImportError instead of falling back when a compiled module
    is missing (CI sets it for the compiled run, so a broken build cannot pass on the fallback).
"""

from __future__ import annotations

from ._select import IMPLEMENTATION
from .detect import AlarmPolicy, PcaDetector, ResidualDetector
from .detect_adapt import Adaptation, AdaptivePca
from .ident import IDENT_IMPLEMENTATION, ArxOrders, RlsBank, RlsChannelState, arx_simulate, model_params, rls_step
from .kalman import MAX_STATE_SIZE, STATE_SIZE, KalmanBank, kalman_forecast, kalman_step, model_matrices, nis_ewma, transition_power

__all__ = [
    "IDENT_IMPLEMENTATION",
    "IMPLEMENTATION",
    "MAX_STATE_SIZE",
    "STATE_SIZE",
    "Adaptation",
    "AdaptivePca",
    "AlarmPolicy",
    "ArxOrders",
    "KalmanBank",
    "PcaDetector",
    "ResidualDetector",
    "RlsBank",
    "RlsChannelState",
    "arx_simulate",
    "kalman_forecast",
    "kalman_step",
    "model_matrices",
    "model_params",
    "nis_ewma",
    "rls_step",
    "transition_power",
]
