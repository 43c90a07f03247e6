"""The ``stuck`` test's second form: a reading that fails to follow a move the model predicts (pure).

The run-of-repeats form (in ``SignalValidator.observe``) catches a reading frozen at one value. A
sensor that lost contact with the process (a dry thermowell, a transmitter holding a live but
unrelated value) still shows its noise; it is caught when the identified model predicts that an
input move bends the reading's course by several noise deviations and the reading stays flat
within its noise, on the course it had before (flat before, flat after).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FLAT_SIGMA = 2.0  # "flat": every period mean within this many reading-noise deviations of their mean
FOLLOW_S = 50.0  # the look-back over which the reading must follow the predicted move


def fails_to_follow(means: Sequence[float], forced: Sequence[float], noise_std: float, follow_sigma: float) -> bool:
    """*means*: the reading's model-period means over two look-backs that share their middle
    period (``2 n - 1`` values); *forced*: the model's response to the input moves, at the same
    periods (any common offset).

    The predicted bend is the forced change over the second look-back minus the one over the
    first; the reading's bend likewise (a reading that was rising and stops when the input steps
    down bends as predicted). True when the predicted bend is at least *follow_sigma* noise
    deviations, the second look-back is flat (every mean within ``FLAT_SIGMA`` deviations of
    their mean) and the reading bent less than a fifth of the prediction."""
    if len(means) < 3 or len(means) % 2 == 0 or len(means) != len(forced) or not noise_std > 0:
        return False
    if any(not math.isfinite(x) for x in (*means, *forced)):
        return False
    mid = len(means) // 2
    bend = (forced[-1] - forced[mid]) - (forced[mid] - forced[0])
    if abs(bend) < follow_sigma * noise_std:
        return False
    last = means[mid:]
    centre = sum(last) / len(last)
    flat = all(abs(m - centre) <= FLAT_SIGMA * noise_std for m in last)
    seen = (means[-1] - means[mid]) - (means[mid] - means[0])
    return flat and abs(seen) < 0.2 * abs(bend)
