"""Type stub for the compiled detectors (kernels/_detect.pyx). Call them through the
detector classes in ``kernels.detect``, which validate arguments; these assume C-contiguous
arrays of consistent shapes: float64, history uint64, alarms uint8."""

import numpy as np

def ewma_detect(
    e: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    lam: np.ndarray,
    on: np.ndarray,
    off: np.ndarray,
    k: int,
    w: int,
    stat: np.ndarray,
    history: np.ndarray,
    alarm: np.ndarray,
    score: np.ndarray,
    alarm_out: np.ndarray,
) -> None: ...
def cusum_detect(
    e: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    kref: np.ndarray,
    on: np.ndarray,
    off: np.ndarray,
    k: int,
    w: int,
    hi: np.ndarray,
    lo: np.ndarray,
    history: np.ndarray,
    alarm: np.ndarray,
    score: np.ndarray,
    alarm_out: np.ndarray,
) -> None: ...
def pca_detect(
    X: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    loadings: np.ndarray,
    eigvals: np.ndarray,
    t2_lim: float,
    q_lim: float,
    lam: float,
    on: float,
    off: float,
    k: int,
    w: int,
    stat: np.ndarray,
    history: np.ndarray,
    alarm: np.ndarray,
    t2: np.ndarray,
    q: np.ndarray,
    score: np.ndarray,
    alarm_out: np.ndarray,
) -> None: ...
