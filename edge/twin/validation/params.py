"""The sensor validation's settings and constants (``[assets.validation]``; docs/detection.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("stuck", "spike", "drift", "contradiction")  # the order in which a signal's flags are shown
FLAT_MAX = 0.9  # a signal flat this often in normal operation is not tested for flat lines
FLAT_MIN = 0.01  # floor of the learnt share of repeats (a few samples cannot prove "never")
FLAT_PRIOR = 0.5  # share of repeats assumed before anything is learnt (cautious)
NOISE_ALPHA = 0.002  # EWMA weight of the noise and repeat statistics (about 500 samples)
RESID_ALPHA = 0.05  # EWMA weight of the model residual variance (model periods)
RESID_WARMUP = 12  # model residuals learnt before the drift test judges
MODEL_REL_ERROR = 0.2  # share of the response to recent input moves the drift test allows as model error
RELATED_LAMBDA = 0.9999  # forgetting of the redundancy models (per sample)
RELATED_P0 = 1e6  # prior covariance of the redundancy models' coefficients, default (units of the residual variance)
RELATED_SMOOTH = 0.2  # EWMA weight of the normalised redundancy residual
RELATED_VAR_ALPHA = 0.01
SMOOTH_STD = math.sqrt(RELATED_SMOOTH / (2 - RELATED_SMOOTH))  # stationary std of the smoothed residual of white noise
RELATED_MIN_UPDATES = 100  # readings a redundancy model learns before it judges
SUPPORT_BINS = 100  # the related reading's range (0..1 scaled) in bins of 1 %
SUPPORT_MIN = 20  # readings learnt in a bin before the model judges there
SUPPORT_CAP = 1_000_000
CLIP_SIGMA = 5.0  # learning statistics clip a deviation at this many sigma
CUSUM_CAP = 1.5  # the drift CUSUM is capped at CUSUM_CAP * drift_h (so it releases in bounded time)


@dataclass(frozen=True, slots=True)
class ValidationParams:
    """The tests' settings (``[assets.validation]``; documented in docs/detection.md)."""

    learn_s: float = 300.0
    stuck_probability: float = 1e-9
    stuck_min_s: float = 10.0
    spike_sigma: float = 8.0
    drift_k: float = 1.5
    drift_h: float = 10.0
    drift_horizon_s: float = 120.0
    drift_window_s: float = 180.0
    drift_tau_s: float = 300.0
    drift_min_rate: float = 0.3
    follow_sigma: float = 6.0
    contradiction_sigma: float = 6.0
    balance_sigma: float = 5.0
    hold_s: float = 30.0
