# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, embedsignature=True
# distutils: extra_compile_args = -ffp-contract=off
"""Compiled Kalman kernels: the batched Kalman filter of ``kernels.kalman_reference``, looped in C.

Same contract and same arithmetic as the reference: every sum over a state index is accumulated
left to right with separate multiplies and adds, so results match it to rtol=1e-12 (in practice
bit for bit). ``-ffp-contract=off`` keeps the compiler from fusing them into FMAs when the build
targets a CPU that has them.

Argument checking lives in ``kernels/kalman.py``; the shape guards here only make a
mismatched call raise instead of reading or writing out of bounds.

Speed: s = 1, 2, 3 (the models of ``kernels.kalman.model_matrices``) have hand-unrolled channel
loops that keep a channel's prediction in registers. s = 4..8 share one inlined generic loop,
``_step_loop``, called with a literal state size so the C compiler can unroll its state loops; its
scratch arrays live on the stack (hence MAX_STATE_SIZE = 8). No Python objects are touched inside
the loops.
"""

from libc.math cimport NAN, isnan

import numpy as np

cdef enum:
    MAX_S = 8  # scratch arrays below live on the stack, sized for this

MAX_STATE_SIZE = MAX_S


cdef inline void _step_loop(
    Py_ssize_t n, Py_ssize_t s, double* x, double* P, const double* F, const double* Q,
    const double* H, const double* R, const double* z, double* innov, double* innov_var,
) noexcept nogil:
    cdef double xp[MAX_S]
    cdef double fp[MAX_S * MAX_S]
    cdef double pp[MAX_S * MAX_S]
    cdef double u[MAX_S]
    cdef double acc, hx, S, y, sinv, k, v
    cdef double* xi
    cdef double* Pi
    cdef Py_ssize_t c, a, b, l, ss = s * s
    for c in range(n):
        xi = x + c * s
        Pi = P + c * ss
        # Predict: x_pred = F x; FP = F P; P_pred = FP F^T + Q (upper triangle, mirrored).
        for a in range(s):
            acc = F[a * s] * xi[0]
            for b in range(1, s):
                acc = acc + F[a * s + b] * xi[b]
            xp[a] = acc
        for a in range(s):
            for l in range(s):
                acc = F[a * s] * Pi[l]
                for b in range(1, s):
                    acc = acc + F[a * s + b] * Pi[b * s + l]
                fp[a * s + l] = acc
        for a in range(s):
            for b in range(a, s):
                acc = fp[a * s] * F[b * s]
                for l in range(1, s):
                    acc = acc + fp[a * s + l] * F[b * s + l]
                acc = acc + Q[a * s + b]
                pp[a * s + b] = acc
                pp[b * s + a] = acc
        # Update: u = P_pred H^T, S = H u + R, K = u / S.
        for a in range(s):
            acc = pp[a * s] * H[0]
            for b in range(1, s):
                acc = acc + pp[a * s + b] * H[b]
            u[a] = acc
        hx = H[0] * xp[0]
        for b in range(1, s):
            hx = hx + H[b] * xp[b]
        S = H[0] * u[0]
        for b in range(1, s):
            S = S + H[b] * u[b]
        S = S + R[c]
        innov_var[c] = S
        if isnan(z[c]):  # no measurement: keep the prediction
            innov[c] = NAN
            for a in range(s):
                xi[a] = xp[a]
            for a in range(ss):
                Pi[a] = pp[a]
            continue
        y = z[c] - hx
        innov[c] = y
        sinv = 1.0 / S
        for a in range(s):
            k = u[a] * sinv
            xi[a] = xp[a] + k * y
            for b in range(a, s):
                v = pp[a * s + b] - k * u[b]
                Pi[a * s + b] = v
                Pi[b * s + a] = v


# Hand-unrolled paths for the common small models. The expressions follow the generic loop term for
# term (C adds left to right), so they round exactly like it and like the reference.
cdef void _step_s1(
    Py_ssize_t n, double* x, double* P, const double* F, const double* Q,
    const double* H, const double* R, const double* z, double* innov, double* innov_var,
) noexcept nogil:
    cdef double f = F[0], q = Q[0], h = H[0]
    cdef double xp, pp, u, S, y, k
    cdef Py_ssize_t c
    for c in range(n):
        xp = f * x[c]
        pp = f * P[c] * f + q
        u = pp * h
        S = h * u + R[c]
        innov_var[c] = S
        if isnan(z[c]):
            innov[c] = NAN
            x[c] = xp
            P[c] = pp
            continue
        y = z[c] - h * xp
        innov[c] = y
        k = u * (1.0 / S)
        x[c] = xp + k * y
        P[c] = pp - k * u


cdef void _step_s2(
    Py_ssize_t n, double* x, double* P, const double* F, const double* Q,
    const double* H, const double* R, const double* z, double* innov, double* innov_var,
) noexcept nogil:
    cdef double f00 = F[0], f01 = F[1], f10 = F[2], f11 = F[3]
    cdef double q00 = Q[0], q01 = Q[1], q11 = Q[3], h0 = H[0], h1 = H[1]
    cdef double x0, x1, a00, a01, a10, a11, b00, b01, b11, u0, u1, S, y, sinv, k0, k1
    cdef double* xi
    cdef double* Pi
    cdef Py_ssize_t c
    for c in range(n):
        xi = x + 2 * c
        Pi = P + 4 * c
        x0 = f00 * xi[0] + f01 * xi[1]
        x1 = f10 * xi[0] + f11 * xi[1]
        a00 = f00 * Pi[0] + f01 * Pi[2]
        a01 = f00 * Pi[1] + f01 * Pi[3]
        a10 = f10 * Pi[0] + f11 * Pi[2]
        a11 = f10 * Pi[1] + f11 * Pi[3]
        b00 = a00 * f00 + a01 * f01 + q00
        b01 = a00 * f10 + a01 * f11 + q01
        b11 = a10 * f10 + a11 * f11 + q11
        u0 = b00 * h0 + b01 * h1
        u1 = b01 * h0 + b11 * h1
        S = h0 * u0 + h1 * u1 + R[c]
        innov_var[c] = S
        if isnan(z[c]):
            innov[c] = NAN
        else:
            y = z[c] - (h0 * x0 + h1 * x1)
            innov[c] = y
            sinv = 1.0 / S
            k0 = u0 * sinv
            k1 = u1 * sinv
            x0 = x0 + k0 * y
            x1 = x1 + k1 * y
            b00 = b00 - k0 * u0
            b01 = b01 - k0 * u1
            b11 = b11 - k1 * u1
        xi[0] = x0
        xi[1] = x1
        Pi[0] = b00
        Pi[1] = b01
        Pi[2] = b01
        Pi[3] = b11


cdef void _step_s3(
    Py_ssize_t n, double* x, double* P, const double* F, const double* Q,
    const double* H, const double* R, const double* z, double* innov, double* innov_var,
) noexcept nogil:
    cdef double f00 = F[0], f01 = F[1], f02 = F[2], f10 = F[3], f11 = F[4], f12 = F[5], f20 = F[6], f21 = F[7], f22 = F[8]
    cdef double q00 = Q[0], q01 = Q[1], q02 = Q[2], q11 = Q[4], q12 = Q[5], q22 = Q[8], h0 = H[0], h1 = H[1], h2 = H[2]
    cdef double x0, x1, x2, p00, p01, p02, p10, p11, p12, p20, p21, p22
    cdef double a00, a01, a02, a10, a11, a12, a20, a21, a22, b00, b01, b02, b11, b12, b22
    cdef double u0, u1, u2, S, y, sinv, k0, k1, k2
    cdef double* xi
    cdef double* Pi
    cdef Py_ssize_t c
    for c in range(n):
        xi = x + 3 * c
        Pi = P + 9 * c
        x0 = f00 * xi[0] + f01 * xi[1] + f02 * xi[2]
        x1 = f10 * xi[0] + f11 * xi[1] + f12 * xi[2]
        x2 = f20 * xi[0] + f21 * xi[1] + f22 * xi[2]
        p00 = Pi[0]; p01 = Pi[1]; p02 = Pi[2]
        p10 = Pi[3]; p11 = Pi[4]; p12 = Pi[5]
        p20 = Pi[6]; p21 = Pi[7]; p22 = Pi[8]
        a00 = f00 * p00 + f01 * p10 + f02 * p20
        a01 = f00 * p01 + f01 * p11 + f02 * p21
        a02 = f00 * p02 + f01 * p12 + f02 * p22
        a10 = f10 * p00 + f11 * p10 + f12 * p20
        a11 = f10 * p01 + f11 * p11 + f12 * p21
        a12 = f10 * p02 + f11 * p12 + f12 * p22
        a20 = f20 * p00 + f21 * p10 + f22 * p20
        a21 = f20 * p01 + f21 * p11 + f22 * p21
        a22 = f20 * p02 + f21 * p12 + f22 * p22
        b00 = a00 * f00 + a01 * f01 + a02 * f02 + q00
        b01 = a00 * f10 + a01 * f11 + a02 * f12 + q01
        b02 = a00 * f20 + a01 * f21 + a02 * f22 + q02
        b11 = a10 * f10 + a11 * f11 + a12 * f12 + q11
        b12 = a10 * f20 + a11 * f21 + a12 * f22 + q12
        b22 = a20 * f20 + a21 * f21 + a22 * f22 + q22
        u0 = b00 * h0 + b01 * h1 + b02 * h2
        u1 = b01 * h0 + b11 * h1 + b12 * h2
        u2 = b02 * h0 + b12 * h1 + b22 * h2
        S = h0 * u0 + h1 * u1 + h2 * u2 + R[c]
        innov_var[c] = S
        if isnan(z[c]):
            innov[c] = NAN
        else:
            y = z[c] - (h0 * x0 + h1 * x1 + h2 * x2)
            innov[c] = y
            sinv = 1.0 / S
            k0 = u0 * sinv
            k1 = u1 * sinv
            k2 = u2 * sinv
            x0 = x0 + k0 * y
            x1 = x1 + k1 * y
            x2 = x2 + k2 * y
            b00 = b00 - k0 * u0
            b01 = b01 - k0 * u1
            b02 = b02 - k0 * u2
            b11 = b11 - k1 * u1
            b12 = b12 - k1 * u2
            b22 = b22 - k2 * u2
        xi[0] = x0
        xi[1] = x1
        xi[2] = x2
        Pi[0] = b00; Pi[1] = b01; Pi[2] = b02
        Pi[3] = b01; Pi[4] = b11; Pi[5] = b12
        Pi[6] = b02; Pi[7] = b12; Pi[8] = b22


cdef inline double _dot(const double* a, const double* b, Py_ssize_t s) noexcept nogil:
    """a[0] b[0] + a[1] b[1] + ... + a[s-1] b[s-1], added left to right."""
    cdef double acc = a[0] * b[0]
    cdef Py_ssize_t k
    for k in range(1, s):
        acc = acc + a[k] * b[k]
    return acc


cdef void _forecast_loop(
    Py_ssize_t n, Py_ssize_t s, const double* x, const double* P, const double* g, double c0,
    double* mean, double* var,
) noexcept nogil:
    """mean = g x and var = g P g^T + c0 per channel, with var's sum as g[a] (P g)[a] over a."""
    cdef double q
    cdef Py_ssize_t c, a
    cdef const double* Pi
    for c in range(n):
        Pi = P + c * s * s
        mean[c] = _dot(g, x + c * s, s)
        q = g[0] * _dot(Pi, g, s)
        for a in range(1, s):
            q = q + g[a] * _dot(Pi + a * s, g, s)
        var[c] = q + c0


cdef int _check_model(Py_ssize_t s, Py_ssize_t[8] P, Py_ssize_t[8] F, Py_ssize_t[8] Q, Py_ssize_t h) except -1:
    if not 1 <= s <= MAX_S:
        raise ValueError(f"state size must be in 1..{MAX_S}, got {s}")
    if not (P[1] == s and P[2] == s and F[0] == s and F[1] == s and Q[0] == s and Q[1] == s and h == s):
        raise ValueError(
            f"inconsistent shapes for s={s}: P (.., {P[1]}, {P[2]}), F ({F[0]}, {F[1]}), Q ({Q[0]}, {Q[1]}), H ({h},)"
        )
    return 0


def kalman_step(
    double[:, ::1] x, double[:, :, ::1] P, const double[:, ::1] F, const double[:, ::1] Q,
    const double[::1] H, const double[::1] R, const double[::1] z,
    double[::1] innov, double[::1] innov_var,
) -> None:
    """One predict + update for every channel, in place (see ``kernels.kalman_reference.kalman_step``)."""
    cdef Py_ssize_t n = x.shape[0], s = x.shape[1]
    _check_model(s, P.shape, F.shape, Q.shape, H.shape[0])
    if not (P.shape[0] == n and R.shape[0] == n and z.shape[0] == n and innov.shape[0] == n and innov_var.shape[0] == n):
        raise ValueError(f"P, R, z, innov and innov_var must all have {n} channels")
    if n == 0:
        return
    cdef double* xp = &x[0, 0]
    cdef double* pp = &P[0, 0, 0]
    cdef const double* fp = &F[0, 0]
    cdef const double* qp = &Q[0, 0]
    cdef const double* hp = &H[0]
    cdef const double* rp = &R[0]
    cdef const double* zp = &z[0]
    cdef double* ip = &innov[0]
    cdef double* vp = &innov_var[0]
    with nogil:
        # s = 1..3 are hand unrolled; above that a literal s per branch lets the compiler unroll
        # the state loops of the inlined generic body.
        if s == 1:
            _step_s1(n, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        elif s == 2:
            _step_s2(n, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        elif s == 3:
            _step_s3(n, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        elif s == 4:
            _step_loop(n, 4, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        elif s == 5:
            _step_loop(n, 5, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        elif s == 6:
            _step_loop(n, 6, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        elif s == 7:
            _step_loop(n, 7, xp, pp, fp, qp, hp, rp, zp, ip, vp)
        else:
            _step_loop(n, 8, xp, pp, fp, qp, hp, rp, zp, ip, vp)


def kalman_forecast(
    const double[:, ::1] x, const double[:, :, ::1] P, const double[:, ::1] F,
    const double[:, ::1] Q, const double[::1] H, Py_ssize_t steps,
) -> tuple:
    """Measurement forecast ``steps`` ahead as new arrays ``(mean, var)`` (see ``kernels.kalman_reference``)."""
    cdef Py_ssize_t n = x.shape[0], s = x.shape[1], k, a, b
    _check_model(s, P.shape, F.shape, Q.shape, H.shape[0])
    if P.shape[0] != n:
        raise ValueError(f"P must have {n} channels, got {P.shape[0]}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    mean_arr = np.empty(n, dtype=np.float64)
    var_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] mean = mean_arr
    cdef double[::1] var = var_arr
    cdef double g[MAX_S]
    cdef double gn[MAX_S]
    cdef double qg[MAX_S]
    cdef double c0 = 0.0, acc
    with nogil:
        # Channel independent: g = H F^steps, c0 = sum_{j<steps} (H F^j) Q (H F^j)^T.
        for a in range(s):
            g[a] = H[a]
        for k in range(steps):
            for a in range(s):
                qg[a] = _dot(&Q[a, 0], g, s)
            c0 = c0 + _dot(g, qg, s)
            for b in range(s):
                acc = g[0] * F[0, b]
                for a in range(1, s):
                    acc = acc + g[a] * F[a, b]
                gn[b] = acc
            for a in range(s):
                g[a] = gn[a]
        if n > 0:
            _forecast_loop(n, s, &x[0, 0], &P[0, 0, 0], g, c0, &mean[0], &var[0])
    return mean_arr, var_arr


def nis_ewma(double[::1] score, const double[::1] innov, const double[::1] innov_var, const double[:] alpha) -> None:
    """Smooth innov^2 / innov_var into ``score`` in place, skipping NaN innovations (see ``kernels.kalman_reference``)."""
    cdef Py_ssize_t n = score.shape[0], i
    if (innov.shape[0], innov_var.shape[0], alpha.shape[0]) != (n, n, n):
        raise ValueError(f"score, innov, innov_var and alpha must all have length {n}")
    cdef double nis
    with nogil:
        for i in range(n):
            if isnan(innov[i]):
                continue
            nis = innov[i] * innov[i] / innov_var[i]
            score[i] = (1.0 - alpha[i]) * score[i] + alpha[i] * nis
