"""NumPy reference of online identification and model simulation: the spec ``kernels._ident`` matches.

``n`` channels each identify one ARX model with a bias term from a scalar input ``u`` to a scalar
output ``y``, sampled every ``T`` seconds::

    y[k] = a_1 y[k-1] + ... + a_na y[k-na] + b_1 u[k-nk] + ... + b_nb u[k-nk-nb+1] + c + e[k]

Parameters per channel: ``theta = [a_1..a_na, b_1..b_nb, c]`` (``p = na + nb + 1`` entries), with
``nk >= 1`` (the input needs at least one sample to act). A first-order-plus-dead-time model is
``na = nb = 1, nk = 1 + d``: ``y[k] = a y[k-1] + b u[k-1-d] + c`` with ``a = exp(-T/tau)``,
gain ``b / (1 - a)`` and dead time ``d T``.

Histories, newest first: ``yh[:, j] = y[k-1-j]`` (``na`` columns) and ``uh[:, j] = u[k-1-j]``
(``nk + nb - 1`` columns). The regressor for ``y[k]`` is
``phi = [yh[0..na-1], uh[nk-1..nk+nb-2], 1]``.

Same arithmetic rule as ``kernels.kalman_reference``: sums over a parameter index are added left to right
with separate multiplies and adds (``_lsum``), so the compiled loops agree to rtol=1e-12.
No argument checking here (``kernels/ident.py`` validates); outputs are updated in place.
"""

from __future__ import annotations

import numpy as np

from .kalman_reference import _lsum


def _regressor(yh: np.ndarray, uh: np.ndarray, nb: int) -> list[np.ndarray]:
    na, nu = yh.shape[1], uh.shape[1]
    nk = nu - nb + 1
    n = yh.shape[0]
    return [yh[:, j] for j in range(na)] + [uh[:, nk - 1 + j] for j in range(nb)] + [np.ones(n)]


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
) -> None:
    """One recursive-least-squares update with exponential forgetting per channel, in place.

    Shapes: theta (n, p), P (n, p, p), yh (n, na), uh (n, nk+nb-1), y (n,) new output y[k],
    u (n,) input u[k] now applied, lam (n,) forgetting factor in (0, 1], p_max (n,) bound on
    trace(P), sigma2 (n,) residual variance, err (n,) a-priori prediction error out.

    Update (skipped, with ``err = NaN``, when y or any regressor entry is NaN)::

        e     = y - phi . theta                       (a-priori prediction error)
        g     = P phi,   s = lam + phi . g
        theta = theta + g e / s
        P'    = P - g g^T / s                          (upper triangle, mirrored)
        P     = P' / lam   if trace(P') / lam <= p_max, else P'
        sigma2 = e^2 lam / s                  if sigma2 is NaN (first update)
                 lam sigma2 + (1 - lam) e^2 lam / s   otherwise

    Anti-windup: forgetting divides P by lam on every update; when the input does not excite the
    model (a constant heater setpoint), P grows without bound in the unexcited directions and the
    next small disturbance throws theta far off. Here forgetting is applied only while
    trace(P) / lam stays within p_max, so P is bounded (trace <= max(p_max, trace before)) whatever
    the input does, and forgetting resumes as soon as new information shrinks P.
    ``e^2 lam / s`` is the error normalised by its parameter-uncertainty part, so sigma2 estimates
    the equation-noise variance.

    Then, whether or not an update happened, the histories shift: ``yh <- [y, yh[:, :-1]]`` and
    ``uh <- [u, uh[:, :-1]]`` (a NaN enters and blocks updates until it leaves the regressor).
    """
    p = theta.shape[1]
    nb = p - yh.shape[1] - 1
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        phi = _regressor(yh, uh, nb)
        ok = ~np.isnan(y)
        for f in phi:
            ok &= ~np.isnan(f)
        pred = _lsum(phi[j] * theta[:, j] for j in range(p))
        e = y - pred
        g = [_lsum(P[:, a, b] * phi[b] for b in range(p)) for a in range(p)]
        s = _lsum(phi[a] * g[a] for a in range(p)) + lam
        sinv = 1.0 / s
        k = [g[a] * sinv for a in range(p)]
        new_theta = [theta[:, a] + k[a] * e for a in range(p)]
        Pn: dict[tuple[int, int], np.ndarray] = {}
        for a in range(p):
            for b in range(a, p):
                Pn[a, b] = P[:, a, b] - k[a] * g[b]
        tr = _lsum(Pn[a, a] for a in range(p))
        linv = 1.0 / lam
        forget = tr * linv <= p_max
        for a in range(p):
            theta[:, a] = np.where(ok, new_theta[a], theta[:, a])
            for b in range(a, p):
                v = np.where(forget, Pn[a, b] * linv, Pn[a, b])
                P[:, a, b] = np.where(ok, v, P[:, a, b])
                P[:, b, a] = P[:, a, b]
        en = e * e * lam * sinv
        s2 = np.where(np.isnan(sigma2), en, lam * sigma2 + (1.0 - lam) * en)
        sigma2[:] = np.where(ok, s2, sigma2)
        err[:] = np.where(ok, e, np.nan)
    # Shift the histories (newest first).
    if yh.shape[1] > 0:
        yh[:, 1:] = yh[:, :-1].copy()
        yh[:, 0] = y
    if uh.shape[1] > 0:
        uh[:, 1:] = uh[:, :-1].copy()
        uh[:, 0] = u


def arx_simulate(
    theta: np.ndarray,
    P: np.ndarray,
    yh: np.ndarray,
    uh: np.ndarray,
    u_future: np.ndarray,
    sigma2: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
) -> None:
    """Run each channel's model forward under the inputs ``u_future`` (n, h); fill mean, var (n, h).

    Starting from the histories (``yh[:, 0] = y[k]``, ``uh[:, 0] = u[k]``), column ``j`` is the
    prediction of ``y[k+1+j]`` with ``u[k+1+j] = u_future[:, j]``; past outputs in the regressor
    are replaced by their predictions as they are produced::

        yhat[k+1+j] = sum_i a_i y*[k+1+j-i] + sum_i b_i u[k+1+j-nk-i+1] + c = phi_j . theta

    Prediction variance, two parts, both scaled by the equation-noise variance ``sigma2``:

    * noise: the error of the (j+1)-step prediction is the noise filtered by 1/A(q); with its
      impulse response ``h_0 = 1, h_m = sum_{i=1..min(m, na)} a_i h_{m-i}`` this adds
      ``h_0^2 + ... + h_j^2`` (for a first-order model ``(1 - a^(2(j+1))) / (1 - a^2)``);
    * parameters (delta method): ``cov(theta) = sigma2 P`` and the sensitivity
      ``s_j = d yhat[k+1+j] / d theta = phi_j + sum_i a_i s_{j-i}`` (zero for measured outputs)
      add ``s_j^T P s_j``.

    So ``var[:, j] = sigma2 * (sum_{m<=j} h_m^2 + s_j^T P s_j)``. The RLS covariance with
    forgetting overstates the parameter covariance somewhat (about 1 + lam times), which errs on the
    wide side.
    """
    n, h = u_future.shape
    p = theta.shape[1]
    na, nu = yh.shape[1], uh.shape[1]
    nb = p - na - 1
    nk = nu - nb + 1
    ys = [yh[:, j].copy() for j in range(na)]  # newest first
    us = [uh[:, j].copy() for j in range(nu)]
    imp = [np.ones(n)] + [np.zeros(n) for _ in range(max(na - 1, 0))]  # h_m, h_{m-1}, ... newest first
    sens = [[np.zeros(n) for _ in range(p)] for _ in range(na)]  # s of the last na predictions, newest first
    acc = np.ones(n)  # h_0^2
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(h):
            # Newest first: ys[i] = y*[k+j-i] and, after this prepend, us[m] = u[k+1+j-m].
            us = [u_future[:, j].copy(), *us]
            phi = ys[:na] + [us[nk + i] for i in range(nb)] + [np.ones(n)]
            yhat = _lsum(theta[:, i] * phi[i] for i in range(p))
            sv = [_lsum([phi[m]] + [theta[:, i] * sens[i][m] for i in range(na)]) for m in range(p)]
            Ps = [_lsum(P[:, a, b] * sv[b] for b in range(p)) for a in range(p)]
            q = _lsum(sv[a] * Ps[a] for a in range(p))
            mean[:, j] = yhat
            var[:, j] = sigma2 * (acc + q)
            ys = [yhat, *ys][:na]
            sens = [sv, *sens][:na]
            us = us[:nu]
            if na > 0:
                hm = _lsum(theta[:, i] * imp[i] for i in range(na))
                imp = [hm, *imp][:na]
                acc = acc + hm * hm
