"""Type stub for the compiled Kalman kernels (kernels/_kalman.pyx). Call them through ``kernels.kalman``,
which validates arguments; these assume C-contiguous float64 input of consistent shapes."""

import numpy as np

MAX_STATE_SIZE: int

def kalman_step(
    x: np.ndarray,
    P: np.ndarray,
    F: np.ndarray,
    Q: np.ndarray,
    H: np.ndarray,
    R: np.ndarray,
    z: np.ndarray,
    innov: np.ndarray,
    innov_var: np.ndarray,
) -> None: ...
def kalman_forecast(x: np.ndarray, P: np.ndarray, F: np.ndarray, Q: np.ndarray, H: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]: ...
def nis_ewma(score: np.ndarray, innov: np.ndarray, innov_var: np.ndarray, alpha: np.ndarray) -> None: ...
