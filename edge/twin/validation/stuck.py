"""The ``stuck`` test's second form: a reading that fails to follow a move the model predicts (pure).

The run-of-repeats form (in ``SignalValidator.observe``) catches a reading frozen at one value. A
sensor that lost contact with the process (a dry thermowell, a transmitter holding a live but
unrelated value) still shows its noise; it is caught when the identified model predicts a move of
the process of several noise deviations (an input step) and the reading stays flat within its noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FLAT_SIGMA = 2.0  # "flat": every period mean within this many reading-noise deviations of their mean
FOLLOW_S = 50.0  # the look-back over which the reading must follow the predicted move


def fails_to_follow(means: Sequence[float], predicted: Sequence[float], noise_std: float, follow_sigma: float) -> bool:
    """*means*: the reading's model-period means over the look-back; *predicted*: the model's
    predicted output change due to input moves, at the same periods (any common offset).

    True when the model predicts a move of at least *follow_sigma* noise deviations over the
    look-back while every period mean stays within ``FLAT_SIGMA`` deviations of their mean and the
    reading moved less than a fifth of the prediction."""
    if len(means) < 2 or len(means) != len(predicted) or not noise_std > 0:
        return False
    if any(not math.isfinite(x) for x in (*means, *predicted)):
        return False
    move = predicted[-1] - predicted[0]
    if abs(move) < follow_sigma * noise_std:
        return False
    centre = sum(means) / len(means)
    flat = all(abs(m - centre) <= FLAT_SIGMA * noise_std for m in means)
    return flat and abs(means[-1] - means[0]) < 0.2 * abs(move)
