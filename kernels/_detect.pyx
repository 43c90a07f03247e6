# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, embedsignature=True
# distutils: extra_compile_args = -ffp-contract=off
"""Compiled anomaly detectors: ``kernels.detect_reference``'s EWMA, CUSUM and PCA T^2/Q kernels, looped in C.

Same contract and same arithmetic as the reference (sums over a feature or component index
accumulated left to right with separate multiplies and adds; ``-ffp-contract=off`` keeps the C
compiler from fusing them), so results agree to rtol 1e-12. Argument checking lives in
``kernels/detect.py``; the shape guards here only turn a mismatched call into an exception
instead of an out-of-bounds access.
"""

from libc.math cimport NAN, fabs, isnan, sqrt
from libc.stdint cimport uint64_t

cdef extern from *:
    """
    static inline int edge_popcount64(unsigned long long v) { return __builtin_popcountll(v); }
    """
    int edge_popcount64(unsigned long long v) nogil

cdef enum:
    MAX_COMPONENTS = 64  # PCA scores of one sample live on the stack


cdef inline void _alarm(double s, double on, double off, int k, uint64_t mask, uint64_t* hist, unsigned char* alarm) noexcept nogil:
    cdef uint64_t e = 1 if s > on else 0
    hist[0] = ((hist[0] << 1) | e) & mask
    if alarm[0]:
        if s < off:
            alarm[0] = 0
            hist[0] = 0
    elif edge_popcount64(hist[0]) >= k:
        alarm[0] = 1


cdef inline uint64_t _mask(int w) noexcept nogil:
    if w >= 64:
        return <uint64_t>0xFFFFFFFFFFFFFFFF
    return ((<uint64_t>1) << w) - 1


def _check(bint ok, str what):
    if not ok:
        raise ValueError(f"kernels._detect: inconsistent shapes ({what})")


def ewma_detect(
    const double[:, ::1] e, const double[::1] mu, const double[::1] sigma, const double[::1] lam,
    const double[::1] on, const double[::1] off, int k, int w, double[::1] stat, uint64_t[::1] history,
    unsigned char[::1] alarm, double[:, ::1] score, unsigned char[:, ::1] alarm_out,
):
    cdef Py_ssize_t m = e.shape[0], n = e.shape[1], t, c
    _check(mu.shape[0] == n and sigma.shape[0] == n and lam.shape[0] == n and on.shape[0] == n and off.shape[0] == n
           and stat.shape[0] == n and history.shape[0] == n and alarm.shape[0] == n
           and score.shape[0] == m and score.shape[1] == n and alarm_out.shape[0] == m and alarm_out.shape[1] == n, "ewma")
    cdef uint64_t mask = _mask(w)
    cdef double x, z, s, sc
    with nogil:
        for t in range(m):
            for c in range(n):
                x = e[t, c]
                if isnan(x):
                    score[t, c] = NAN
                else:
                    z = (x - mu[c]) / sigma[c]
                    s = stat[c] + lam[c] * (z - stat[c])
                    stat[c] = s
                    sc = fabs(s) / sqrt(lam[c] / (2.0 - lam[c]))
                    score[t, c] = sc
                    _alarm(sc, on[c], off[c], k, mask, &history[c], &alarm[c])
                alarm_out[t, c] = alarm[c]


def cusum_detect(
    const double[:, ::1] e, const double[::1] mu, const double[::1] sigma, const double[::1] kref,
    const double[::1] on, const double[::1] off, int k, int w, double[::1] hi, double[::1] lo,
    uint64_t[::1] history, unsigned char[::1] alarm, double[:, ::1] score, unsigned char[:, ::1] alarm_out,
):
    cdef Py_ssize_t m = e.shape[0], n = e.shape[1], t, c
    _check(mu.shape[0] == n and sigma.shape[0] == n and kref.shape[0] == n and on.shape[0] == n and off.shape[0] == n
           and hi.shape[0] == n and lo.shape[0] == n and history.shape[0] == n and alarm.shape[0] == n
           and score.shape[0] == m and score.shape[1] == n and alarm_out.shape[0] == m and alarm_out.shape[1] == n, "cusum")
    cdef uint64_t mask = _mask(w)
    cdef double x, z, h, l, sc
    with nogil:
        for t in range(m):
            for c in range(n):
                x = e[t, c]
                if isnan(x):
                    score[t, c] = NAN
                else:
                    z = (x - mu[c]) / sigma[c]
                    h = hi[c] + z - kref[c]
                    if not h > 0.0:
                        h = 0.0
                    l = lo[c] - z - kref[c]
                    if not l > 0.0:
                        l = 0.0
                    hi[c] = h
                    lo[c] = l
                    sc = h if h >= l else l
                    score[t, c] = sc
                    _alarm(sc, on[c], off[c], k, mask, &history[c], &alarm[c])
                alarm_out[t, c] = alarm[c]


def pca_detect(
    const double[:, ::1] X, const double[::1] mean, const double[::1] scale, const double[:, ::1] loadings,
    const double[::1] eigvals, double t2_lim, double q_lim, double lam, double on, double off, int k, int w,
    double[::1] stat, uint64_t[::1] history, unsigned char[::1] alarm,
    double[::1] t2, double[::1] q, double[::1] score, unsigned char[::1] alarm_out,
):
    cdef Py_ssize_t m = X.shape[0], p = X.shape[1], a = loadings.shape[1], t, i, j
    _check(mean.shape[0] == p and scale.shape[0] == p and loadings.shape[0] == p and eigvals.shape[0] == a
           and a <= MAX_COMPONENTS and stat.shape[0] == 1 and history.shape[0] == 1 and alarm.shape[0] == 1
           and t2.shape[0] == m and q.shape[0] == m and score.shape[0] == m and alarm_out.shape[0] == m, "pca")
    cdef uint64_t mask = _mask(w)
    cdef double ts[MAX_COMPONENTS]
    cdef double acc, tt, qq, rec, r, raw, zq
    cdef bint bad
    with nogil:
        for t in range(m):
            bad = False
            for j in range(p):
                if isnan(X[t, j]):
                    bad = True
            if bad:
                t2[t] = NAN
                q[t] = NAN
                score[t] = NAN
                alarm_out[t] = alarm[0]
                continue
            for i in range(a):
                acc = ((X[t, 0] - mean[0]) / scale[0]) * loadings[0, i]
                for j in range(1, p):
                    acc = acc + ((X[t, j] - mean[j]) / scale[j]) * loadings[j, i]
                ts[i] = acc
            tt = 0.0
            for i in range(a):
                tt = tt + ts[i] * ts[i] / eigvals[i]
            qq = 0.0
            for j in range(p):
                if a == 0:
                    rec = 0.0
                else:
                    rec = ts[0] * loadings[j, 0]
                for i in range(1, a):
                    rec = rec + ts[i] * loadings[j, i]
                r = (X[t, j] - mean[j]) / scale[j] - rec
                qq = qq + r * r
            t2[t] = tt
            q[t] = qq
            raw = tt / t2_lim
            zq = qq / q_lim
            if zq > raw:
                raw = zq
            stat[0] = stat[0] + lam * (raw - stat[0])
            score[t] = stat[0]
            _alarm(stat[0], on, off, k, mask, &history[0], &alarm[0])
            alarm_out[t] = alarm[0]
