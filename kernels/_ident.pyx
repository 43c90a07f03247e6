# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, embedsignature=True
# distutils: extra_compile_args = -ffp-contract=off
"""Compiled online identification: ``rls_step`` and ``arx_simulate`` of ``kernels.ident_reference``.

Same arithmetic as the reference, term for term and left to right (and no FMA contraction), so
results match it to rtol=1e-12. Argument checking lives in ``kernels/ident.py``; the guards here
only keep a mismatched call from reading or writing out of bounds. Per-channel scratch lives on the
stack, hence the size limits below.
"""

from libc.math cimport NAN, isnan

cdef enum:
    MAX_NA_ = 8
    MAX_NB_ = 8
    MAX_P_ = 17        # na + nb + 1
    MAX_NU_ = 256      # nk + nb - 1: input history (dead time in samples)

MAX_NA = MAX_NA_
MAX_NB = MAX_NB_
MAX_NU = MAX_NU_


cdef int _check_orders(Py_ssize_t p, Py_ssize_t na, Py_ssize_t nu) except -1:
    cdef Py_ssize_t nb = p - na - 1
    if not (0 <= na <= MAX_NA_ and 1 <= nb <= MAX_NB_ and nb <= nu <= MAX_NU_):
        raise ValueError(f"unsupported model orders: p={p}, na={na}, input history {nu}")
    return 0


cdef void _rls_loop(
    Py_ssize_t n, Py_ssize_t p, Py_ssize_t na, Py_ssize_t nu,
    double* theta, double* P, double* yh, double* uh, const double* y, const double* u,
    const double* lam, const double* p_max, double* sigma2, double* err,
) noexcept nogil:
    cdef double phi[MAX_P_]
    cdef double g[MAX_P_]
    cdef double k[MAX_P_]
    cdef double acc, e, s, sinv, tr, linv, en, v
    cdef bint ok, forget
    cdef Py_ssize_t c, a, b, nb = p - na - 1, nk = nu - nb + 1, pp = p * p
    cdef double* th
    cdef double* Pi
    cdef double* yi
    cdef double* ui
    for c in range(n):
        th = theta + c * p
        Pi = P + c * pp
        yi = yh + c * na
        ui = uh + c * nu
        ok = not isnan(y[c])
        for a in range(na):
            phi[a] = yi[a]
        for a in range(nb):
            phi[na + a] = ui[nk - 1 + a]
        phi[p - 1] = 1.0
        for a in range(p):
            if isnan(phi[a]):
                ok = False
        if ok:
            acc = phi[0] * th[0]
            for a in range(1, p):
                acc = acc + phi[a] * th[a]
            e = y[c] - acc
            for a in range(p):
                acc = Pi[a * p] * phi[0]
                for b in range(1, p):
                    acc = acc + Pi[a * p + b] * phi[b]
                g[a] = acc
            s = phi[0] * g[0]
            for a in range(1, p):
                s = s + phi[a] * g[a]
            s = s + lam[c]
            sinv = 1.0 / s
            for a in range(p):
                k[a] = g[a] * sinv
                th[a] = th[a] + k[a] * e
            for a in range(p):
                for b in range(a, p):
                    Pi[a * p + b] = Pi[a * p + b] - k[a] * g[b]
            tr = Pi[0]
            for a in range(1, p):
                tr = tr + Pi[a * p + a]
            linv = 1.0 / lam[c]
            forget = tr * linv <= p_max[c]
            for a in range(p):
                for b in range(a, p):
                    v = Pi[a * p + b]
                    if forget:
                        v = v * linv
                    Pi[a * p + b] = v
                    Pi[b * p + a] = v
            en = e * e * lam[c] * sinv
            if isnan(sigma2[c]):
                sigma2[c] = en
            else:
                sigma2[c] = lam[c] * sigma2[c] + (1.0 - lam[c]) * en
            err[c] = e
        else:
            err[c] = NAN
        for a in range(na - 1, 0, -1):
            yi[a] = yi[a - 1]
        if na > 0:
            yi[0] = y[c]
        for a in range(nu - 1, 0, -1):
            ui[a] = ui[a - 1]
        if nu > 0:
            ui[0] = u[c]


cdef void _rls_fo(
    Py_ssize_t n, Py_ssize_t nu, double* theta, double* P, double* yh, double* uh, const double* y,
    const double* u, const double* lam, const double* p_max, double* sigma2, double* err,
) noexcept nogil:
    """na = nb = 1 (first order plus dead time), unrolled; same operations in the same order as
    ``_rls_loop``, so it rounds exactly like it."""
    cdef double f0, f1, t0, t1, t2, g0, g1, g2, e, s, sinv, k0, k1, k2, tr, linv, en, l
    cdef double p00, p01, p02, p11, p12, p22
    cdef Py_ssize_t c, a
    cdef double* th
    cdef double* Pi
    cdef double* ui
    for c in range(n):
        th = theta + 3 * c
        Pi = P + 9 * c
        ui = uh + c * nu
        f0 = yh[c]
        f1 = ui[nu - 1]
        if isnan(y[c]) or isnan(f0) or isnan(f1):
            err[c] = NAN
        else:
            l = lam[c]
            t0 = th[0]; t1 = th[1]; t2 = th[2]
            e = y[c] - (f0 * t0 + f1 * t1 + 1.0 * t2)
            p00 = Pi[0]; p01 = Pi[1]; p02 = Pi[2]; p11 = Pi[4]; p12 = Pi[5]; p22 = Pi[8]
            g0 = p00 * f0 + p01 * f1 + p02 * 1.0
            g1 = Pi[3] * f0 + p11 * f1 + p12 * 1.0
            g2 = Pi[6] * f0 + Pi[7] * f1 + p22 * 1.0
            s = f0 * g0 + f1 * g1 + 1.0 * g2 + l
            sinv = 1.0 / s
            k0 = g0 * sinv; k1 = g1 * sinv; k2 = g2 * sinv
            th[0] = t0 + k0 * e; th[1] = t1 + k1 * e; th[2] = t2 + k2 * e
            p00 = p00 - k0 * g0; p01 = p01 - k0 * g1; p02 = p02 - k0 * g2
            p11 = p11 - k1 * g1; p12 = p12 - k1 * g2; p22 = p22 - k2 * g2
            tr = p00 + p11 + p22
            linv = 1.0 / l
            if tr * linv <= p_max[c]:
                p00 = p00 * linv; p01 = p01 * linv; p02 = p02 * linv
                p11 = p11 * linv; p12 = p12 * linv; p22 = p22 * linv
            Pi[0] = p00; Pi[1] = p01; Pi[2] = p02
            Pi[3] = p01; Pi[4] = p11; Pi[5] = p12
            Pi[6] = p02; Pi[7] = p12; Pi[8] = p22
            en = e * e * l * sinv
            if isnan(sigma2[c]):
                sigma2[c] = en
            else:
                sigma2[c] = l * sigma2[c] + (1.0 - l) * en
            err[c] = e
        yh[c] = y[c]
        for a in range(nu - 1, 0, -1):
            ui[a] = ui[a - 1]
        ui[0] = u[c]


def rls_step(
    double[:, ::1] theta, double[:, :, ::1] P, double[:, ::1] yh, double[:, ::1] uh,
    const double[::1] y, const double[::1] u, const double[::1] lam, const double[::1] p_max,
    double[::1] sigma2, double[::1] err,
) -> None:
    """One RLS update with forgetting per channel, in place (see ``kernels.ident_reference.rls_step``)."""
    cdef Py_ssize_t n = theta.shape[0], p = theta.shape[1], na = yh.shape[1], nu = uh.shape[1]
    _check_orders(p, na, nu)
    if not (P.shape[0] == n and P.shape[1] == p and P.shape[2] == p and yh.shape[0] == n and uh.shape[0] == n):
        raise ValueError("theta, P, yh and uh disagree in channels or parameters")
    if not (y.shape[0] == n and u.shape[0] == n and lam.shape[0] == n and p_max.shape[0] == n and sigma2.shape[0] == n and err.shape[0] == n):
        raise ValueError(f"y, u, lam, p_max, sigma2 and err must all have {n} channels")
    if n == 0:
        return
    cdef double* yp = &yh[0, 0] if na > 0 else NULL
    with nogil:
        if na == 1 and p == 3:
            _rls_fo(n, nu, &theta[0, 0], &P[0, 0, 0], &yh[0, 0], &uh[0, 0], &y[0], &u[0], &lam[0], &p_max[0], &sigma2[0], &err[0])
        else:
            _rls_loop(n, p, na, nu, &theta[0, 0], &P[0, 0, 0], yp, &uh[0, 0], &y[0], &u[0],
                      &lam[0], &p_max[0], &sigma2[0], &err[0])


cdef void _sim_loop(
    Py_ssize_t n, Py_ssize_t h, Py_ssize_t p, Py_ssize_t na, Py_ssize_t nu,
    const double* theta, const double* P, const double* yh, const double* uh, const double* uf,
    const double* sigma2, double* mean, double* var,
) noexcept nogil:
    cdef double ys[MAX_NA_]
    cdef double imp[MAX_NA_]
    cdef double sens[MAX_NA_ * MAX_P_]  # row i: sensitivity of the prediction i steps back
    cdef double us[MAX_NU_ + 1]
    cdef double phi[MAX_P_]
    cdef double sv[MAX_P_]
    cdef double acc, hacc, hm, q, ps
    cdef Py_ssize_t c, j, i, m, b, nb = p - na - 1, nk = nu - nb + 1, pp = p * p
    cdef const double* th
    cdef const double* Pi
    for c in range(n):
        th = theta + c * p
        Pi = P + c * pp
        for i in range(na):
            ys[i] = yh[c * na + i]
            imp[i] = 0.0
            for m in range(p):
                sens[i * MAX_P_ + m] = 0.0
        if na > 0:
            imp[0] = 1.0
        for i in range(nu):
            us[i] = uh[c * nu + i]
        hacc = 1.0
        for j in range(h):
            for i in range(nu, 0, -1):
                us[i] = us[i - 1]
            us[0] = uf[c * h + j]
            for i in range(na):
                phi[i] = ys[i]
            for i in range(nb):
                phi[na + i] = us[nk + i]
            phi[p - 1] = 1.0
            acc = th[0] * phi[0]
            for i in range(1, p):
                acc = acc + th[i] * phi[i]
            for m in range(p):
                ps = phi[m]
                for i in range(na):
                    ps = ps + th[i] * sens[i * MAX_P_ + m]
                sv[m] = ps
            q = 0.0
            for m in range(p):
                ps = Pi[m * p] * sv[0]
                for b in range(1, p):
                    ps = ps + Pi[m * p + b] * sv[b]
                if m == 0:
                    q = sv[0] * ps
                else:
                    q = q + sv[m] * ps
            mean[c * h + j] = acc
            var[c * h + j] = sigma2[c] * (hacc + q)
            for i in range(na - 1, 0, -1):
                ys[i] = ys[i - 1]
                for m in range(p):
                    sens[i * MAX_P_ + m] = sens[(i - 1) * MAX_P_ + m]
            if na > 0:
                ys[0] = acc
                for m in range(p):
                    sens[m] = sv[m]
                hm = th[0] * imp[0]
                for i in range(1, na):
                    hm = hm + th[i] * imp[i]
                for i in range(na - 1, 0, -1):
                    imp[i] = imp[i - 1]
                imp[0] = hm
                hacc = hacc + hm * hm


def arx_simulate(
    const double[:, ::1] theta, const double[:, :, ::1] P, const double[:, ::1] yh, const double[:, ::1] uh,
    const double[:, ::1] u_future, const double[::1] sigma2, double[:, ::1] mean, double[:, ::1] var,
) -> None:
    """Simulate each channel's model under ``u_future`` (see ``kernels.ident_reference.arx_simulate``)."""
    cdef Py_ssize_t n = theta.shape[0], p = theta.shape[1], na = yh.shape[1], nu = uh.shape[1], h = u_future.shape[1]
    _check_orders(p, na, nu)
    if not (P.shape[0] == n and P.shape[1] == p and P.shape[2] == p):
        raise ValueError(f"P must have shape ({n}, {p}, {p})")
    if not (yh.shape[0] == n and uh.shape[0] == n and u_future.shape[0] == n and sigma2.shape[0] == n):
        raise ValueError(f"yh, uh, u_future and sigma2 must all have {n} channels")
    if not (mean.shape[0] == n and var.shape[0] == n and mean.shape[1] == h and var.shape[1] == h):
        raise ValueError(f"mean and var must have shape ({n}, {h})")
    if n == 0 or h == 0:
        return
    cdef const double* yp = &yh[0, 0] if na > 0 else NULL
    with nogil:
        _sim_loop(n, h, p, na, nu, &theta[0, 0], &P[0, 0, 0], yp, &uh[0, 0], &u_future[0, 0], &sigma2[0], &mean[0, 0], &var[0, 0])
