"""Type stub for the compiled identification kernels (kernels/_ident.pyx). Call them through
``kernels.ident``, which validates arguments; these assume C-contiguous float64 input of
consistent shapes."""

import numpy as np

MAX_NA: int
MAX_NB: int
MAX_NU: int

def rls_step(
    theta: np.ndarray,
    P: np.ndarray,
    yh: np.ndarray,
    uh: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    lam: np.ndarray,
    p_max: np.ndarray,
    sigma2: np.ndarray,
    err: np.ndarray,
) -> None: ...
def arx_simulate(
    theta: np.ndarray,
    P: np.ndarray,
    yh: np.ndarray,
    uh: np.ndarray,
    u_future: np.ndarray,
    sigma2: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
) -> None: ...
