"""Compiled twin of :func:`birkhoff.certify.certify_batch` for small float matrices, matrix by matrix.

The same bounds as the numpy path (:mod:`birkhoff.certify`, :mod:`birkhoff.enclose`,
:mod:`birkhoff.exact`), written as loops over one ``n x n`` matrix at a time: exact sums by TwoSum
(Sum2 with its a priori bound, then VecSum passes where the sign is undecided), the gains, the
prescaling by a power of two, the norm bounds (``sqrt(||M||_1 ||M||_inf)``, Frobenius, the Schur test
at the singular vectors), the proved SVD of :func:`birkhoff.enclose.singular_value_bounds` (its basis from one-sided Jacobi here, LAPACK's
SVD there: a basis only makes the bounds tight, any basis keeps them true) for
``||M||_2`` and ``sigma_min``, Perron-Frobenius margins (nonnegative) or ``|tr| / n`` (signed) for the
radius and, for a signed matrix where ``|tr| / n`` is loose, the similarity-Gershgorin enclosure of
:func:`birkhoff.enclose.spectral_radius_bounds` (LAPACK's eigenvectors from numpy's batched ``eig``, their
inverse by Gauss-Jordan here, the products in complex interval arithmetic on real and imaginary parts),
and ``sigma2`` from the proved
SVD of ``D = M - J/n`` (in ``M``'s basis where ``M`` is doubly stochastic to ``2**-44``, else in
``D``'s own). Directed rounding as there: error-free transformations and a priori bounds that hold
for any summation order, outward steps of one or two ulps (Rump et al.'s successor, where the numpy
path calls ``nextafter``), no fastmath.

A matrix the kernel cannot finish the numpy path's way is handed back (``handback``): a sum whose
sign VecSum leaves undecided (the numpy path's ``fsum``), a prescaling that is not exact (subnormal
entries), a radius the similarity leaves loose (an ill-conditioned or defective eigenbasis, close
eigenvalues of equal modulus: the numpy path goes on with balancing, the Frobenius normal form, a
Schur basis and powers), and a ``sigma_min`` wider than ``1e-6`` relative (nearly singular: the
numpy path's enclosure through an inverse).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

from . import JIT
from ..certify import NEAR_DS, SMIN_WIDE
from ..enclose import LOOSE, REFINE
from ..exact import _SPLIT, ETA, U, gamma

__all__ = ["certify_batch", "compile_all"]

_INF = np.inf


# Rump, Zimmermann, Boldo and Melquiond, "Computing predecessor and successor in rounding to nearest"
# (BIT 2009): for every float x, fl(x + fl(PHI |x| + ETA_MIN)) is succ(x) or succ(succ(x)); plain
# arithmetic that inlines, where nextafter is a call per use (about 15 % of certify_batch's time)
_PHI = 2.0 ** -53 * (1.0 + 2.0 ** -52)
_ETA_MIN = 2.0 ** -1074
_MAX = float(np.finfo(np.float64).max)


@njit(**JIT)
def _up(x):
    """A float ``> x`` (``x``'s successor or the next one; ``-MAX`` for ``-inf``, ``inf`` and NaN stay)."""
    if x == -_INF:
        return -_MAX
    return x + (_PHI * abs(x) + _ETA_MIN)


@njit(**JIT)
def _down(x):
    """A float ``< x`` (its predecessor or the one before)."""
    if x == _INF:
        return _MAX
    return x - (_PHI * abs(x) + _ETA_MIN)


@njit(**JIT)
def _inflate(x, rel, absolute):
    return _up(x * (1.0 + rel) + absolute)


@njit(**JIT)
def _deflate(x, rel, absolute):
    return max(_down(x * (1.0 - rel) - absolute), 0.0)


@njit(**JIT)
def _add_up(a, b):
    s = _up(a + b)
    return _INF if s != s else s


@njit(**JIT)
def _add_down(a, b):
    s = _down(a + b)
    return -_INF if s != s else s


@njit(**JIT)
def _two_sum(a, b):
    s = a + b
    bv = s - a
    return s, (a - (s - bv)) + (b - bv)


@njit(**JIT)
def _two_prod(a, b):
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    e = al * bl - (((p - ah * bh) - al * bh) - ah * bl)
    big = 2.0 ** 995
    valid = (abs(a) < big) and (abs(b) < big) and np.isfinite(p) and (
        abs(p) >= 2.0 ** -969 or a == 0.0 or b == 0.0)
    return p, (e if valid else 0.0), valid


@njit(**JIT)
def _mul_up(a, b):
    if a == 0.0 or b == 0.0:
        return 0.0
    p, e, valid = _two_prod(a, b)
    up = _up(p) if (not valid or e > 0.0) else p
    return _INF if up != up else up


@njit(**JIT)
def _sqrt_exact(x):
    s = math.sqrt(max(x, 0.0))
    c = _SPLIT * s
    short = (c - (c - s) == s) and (s >= 2.0 ** -500 or s == 0.0)
    return s, short and s * s == x


@njit(**JIT)
def _sqrt_up(x):
    s, exact = _sqrt_exact(x)
    return s if exact else _up(s)


@njit(**JIT)
def _sqrt_down(x):
    s, exact = _sqrt_exact(x)
    return s if exact else max(_down(s), 0.0)


@njit(**JIT)
def _div_exact(a, b):
    q = a / b
    p, e, valid = _two_prod(q, b)
    return q, valid and p == a and e == 0.0


@njit(**JIT)
def _div_up(a, b):
    q, exact = _div_exact(a, b)
    return q if exact else _up(q)


@njit(**JIT)
def _div_down(a, b):
    q, exact = _div_exact(a, b)
    return q if exact else _down(q)


@njit(**JIT)
def _scale(x, k, toward):
    """``x 2**k`` rounded toward ``toward`` (exact unless it under- or overflows)."""
    if k == 0 or x != x:
        return x
    y = np.ldexp(x, k)
    return y if np.ldexp(y, -k) == x else np.nextafter(y, toward)


@njit(**JIT)
def _exponent(top):
    """``e`` with ``top 2**-e`` in ``[0.5, 1)`` (0 for 0 or a non-finite ``top``): exact.scale_exponent."""
    if not (np.isfinite(top) and top > 0.0):
        return 0
    return math.frexp(top)[1]


@njit(**JIT)
def _sum(x, m, offset, g, t):
    """Enclosure ``(lo, hi, decided)`` of ``sum(x[:m]) + offset``: :func:`birkhoff.exact.sum_enclosure` for
    one row (Sum2 and its bound; ``_distil``'s three VecSum passes where the sign is undecided).
    ``g = gamma(m + 1)``; ``t`` is scratch of length ``m + 1`` (not ``x``'s memory)."""
    s, err, no_error, S = offset, 0.0, True, abs(offset)
    for k in range(m):
        s, e = _two_sum(s, x[k])
        err = err + e
        no_error = no_error and e == 0.0
        S += abs(x[k])
    if no_error and np.isfinite(s):
        return s, s, True
    res = s + err
    S_up = _inflate(S, 2.0 * g, 0.0)
    delta = _inflate(U * abs(res) + g * g * S_up, 8.0 * U, 4.0 * (m + 1) * ETA)
    lo, hi = _down(res - delta), _up(res + delta)
    if np.isfinite(lo) and np.isfinite(hi) and not (lo <= 0.0 and hi >= 0.0):
        return lo, hi, True
    for k in range(m):                                   # VecSum passes (exact._distil)
        t[k] = x[k]
    t[m] = offset
    finite = True
    for k in range(m + 1):
        finite = finite and np.isfinite(t[k])
    for _ in range(3):
        for j in range(1, m + 1):
            t[j], t[j - 1] = _two_sum(t[j - 1], t[j])
        finite = finite and np.isfinite(t[m])
    zero, rest = True, 0.0
    for k in range(m):
        zero = zero and t[k] == 0.0
        rest += abs(t[k])
    if zero:
        return t[m], t[m], finite
    rest = _inflate(rest, g, 2.0 * ETA)
    lo, hi = _down(t[m] - rest), _up(t[m] + rest)
    return lo, hi, finite and (lo > 0.0 or hi < 0.0)


@njit(**JIT)
def _matmul(A, B, n, out, transpose_a):
    """``out = A B`` (or ``A^T B``), plain loops: no BLAS call per tiny matrix; any summation order is
    covered by the a priori bounds that use it."""
    for i in range(n):
        for j in range(n):
            s = 0.0
            for k in range(n):
                s += (A[k, i] if transpose_a else A[i, k]) * B[k, j]
            out[i, j] = s


@njit(**JIT)
def _jacobi_svd(A, n, V, W, sigma):
    """A float SVD basis by one-sided Jacobi (Hestenes): ``V`` (right singular vectors, columns, the top
    first), ``W = A V`` with orthogonal columns, ``sigma`` their norms. The basis only makes the proved
    bounds tight (they hold for any basis), so what matters is its orthogonality, which Jacobi
    reaches to a few ulps. ``V`` on entry is the starting basis."""
    _matmul(A, V, n, W, False)
    for _ in range(40):
        rotated = False
        for p in range(n - 1):
            for q in range(p + 1, n):
                alpha, beta, gam = 0.0, 0.0, 0.0
                for i in range(n):
                    alpha += W[i, p] * W[i, p]
                    beta += W[i, q] * W[i, q]
                    gam += W[i, p] * W[i, q]
                if gam == 0.0 or abs(gam) <= 1e-15 * math.sqrt(alpha) * math.sqrt(beta):
                    continue
                rotated = True
                zeta = (beta - alpha) / (2.0 * gam)
                t = (1.0 if zeta >= 0 else -1.0) / (abs(zeta) + math.sqrt(1.0 + zeta * zeta))
                c = 1.0 / math.sqrt(1.0 + t * t)
                s = c * t
                for i in range(n):
                    wp, wq = W[i, p], W[i, q]
                    W[i, p], W[i, q] = c * wp - s * wq, s * wp + c * wq
                    vp, vq = V[i, p], V[i, q]
                    V[i, p], V[i, q] = c * vp - s * vq, s * vp + c * vq
        if not rotated:
            break
    for j in range(n):
        s = 0.0
        for i in range(n):
            s += W[i, j] * W[i, j]
        sigma[j] = math.sqrt(s)
    for j in range(n - 1):                            # the top singular vector first (selection sort)
        k = j
        for m in range(j + 1, n):
            if sigma[m] > sigma[k]:
                k = m
        if k != j:
            sigma[j], sigma[k] = sigma[k], sigma[j]
            for i in range(n):
                V[i, j], V[i, k] = V[i, k], V[i, j]
                W[i, j], W[i, k] = W[i, k], W[i, j]


@njit(**JIT)
def _gram(X, n, G, c, B):
    """Gershgorin enclosure ``(lo, hi)`` of the eigenvalues of ``X^T X`` (square ``X``), and the column
    norms ``c`` (rounded up) it uses: enclose._gram_eigen_bounds. ``B`` is scratch."""
    _matmul(X, X, n, B, True)
    total = 0.0
    for j in range(n):
        s = 0.0
        for i in range(n):
            s += X[i, j] * X[i, j]
        c[j] = _sqrt_up(_inflate(s, 2.0 * G[n + 1], 4.0 * n * ETA))
        total += c[j]
    lo, hi = _INF, -_INF
    for i in range(n):
        err = G[n + 2] * c[i] * total + n * n * ETA
        off = 0.0
        for j in range(n):
            if j != i:
                off += abs(B[i, j])
        r = _inflate(off + err, 4.0 * G[n + 4], 2.0 * n * ETA)
        lo = min(lo, _add_down(B[i, i], -r))
        hi = max(hi, _add_up(B[i, i], r))
    return lo, hi


@njit(**JIT)
def _root_up(squares, n, G):
    """Float ``>= sqrt(s)`` for ``s`` the exact sum of ``n * n`` squares whose float sum is ``squares``:
    sqrt_up(exact.sum_squares_up)."""
    return _sqrt_up(_inflate(squares, 2.0 * G[n * n + 1], 4.0 * n * n * ETA))


@njit(**JIT)
def _frobenius_up(X, n, G):
    """Float ``>= ||X||_F``."""
    s = 0.0
    for i in range(n):
        for j in range(n):
            s += X[i, j] * X[i, j]
    return _root_up(s, n, G)


@njit(**JIT)
def _singular_bounds(A, rad, V, n, G, out, W, B, vj_hi, wj_hi):
    """enclose.singular_value_bounds for the midpoint ``A`` with Frobenius radius ``rad`` in the basis ``V``:
    ``out[:4] = (smax_lo, smax_hi, smin_lo, smin_hi)``; ``W``, ``B``, ``vj_hi``, ``wj_hi`` are scratch."""
    _matmul(A, V, n, W, False)
    eps = _inflate(G[n + 2] * _frobenius_up(A, n, G) * _frobenius_up(V, n, G), 4.0 * U, n * n * ETA)
    g_lo, g_hi = _gram(V, n, G, vj_hi, B)
    w_lo, w_hi = _gram(W, n, G, wj_hi, B)
    ok = g_lo > 0.0 and np.isfinite(w_hi)
    v_lo, v_hi = _sqrt_down(g_lo if ok else 1.0), _sqrt_up(g_hi)
    hi = _div_up(_add_up(_sqrt_up(w_hi), eps), v_lo)
    lo = _div_down(max(_add_down(_sqrt_down(max(w_lo, 0.0)), -eps), 0.0), v_hi)
    top_lo, low_hi = -_INF, _INF
    for j in range(n):
        sw, sv = 0.0, 0.0
        for i in range(n):
            sw += W[i, j] * W[i, j]
            sv += V[i, j] * V[i, j]
        wj_lo = _sqrt_down(_deflate(sw, 2.0 * G[n + 1], 4.0 * n * ETA))
        vj_lo = _sqrt_down(_deflate(sv, 2.0 * G[n + 1], 4.0 * n * ETA))
        top_lo = max(top_lo, _div_down(max(_add_down(wj_lo, -eps), 0.0), vj_hi[j]))
        if vj_lo > 0.0:
            low_hi = min(low_hi, _div_up(_add_up(wj_hi[j], eps), vj_lo))
    out[0] = max(_add_down(top_lo, -rad), 0.0)
    out[1] = _add_up(max(hi, top_lo), rad) if ok else _INF
    out[2] = max(_add_down(min(lo, low_hi), -rad), 0.0) if ok else 0.0
    out[3] = _add_up(low_hi, rad)


@njit(**JIT)
def _enclosed(c, rad, n, g):
    """``[c - r, c + r]`` outward, ``r`` the a priori bound ``rad`` of exact.matmul_enclosure inflated by its own
    error (``g = gamma(n + 2)``: any summation order); ``(-inf, inf)`` where undefined."""
    if not (np.isfinite(c) and rad == rad):
        return -_INF, _INF
    r = _inflate(rad, 2.0 * g + 8.0 * U, 8.0 * (n + 2) * ETA)
    return _down(c - r), _up(c + r)


@njit(**JIT)
def _centry(Pm, Pr, Qm, Qr, Xr, Xi, i, j, n, g):
    """Enclosure ``(re_lo, re_hi, im_lo, im_hi)`` of ``(Z X)_ij`` for the complex interval matrix
    ``Z = [Pm +- Pr] + i [Qm +- Qr]`` and the complex float ``X = Xr + i Xi``: its four real products by
    exact.matmul_enclosure's bound (``|c - fl(c)| <= gamma_(n+2) |Zm||X| + Zr |X|``), then added outward."""
    c1, c2, c3, c4, r1, r2, r3, r4 = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for k in range(n):
        p, q, xr, xi = Pm[i, k], Qm[i, k], Xr[k, j], Xi[k, j]
        c1 += p * xr
        c2 += q * xi
        c3 += p * xi
        c4 += q * xr
        pa, qa = g * abs(p) + Pr[i, k], g * abs(q) + Qr[i, k]
        r1 += pa * abs(xr)
        r2 += qa * abs(xi)
        r3 += pa * abs(xi)
        r4 += qa * abs(xr)
    a_lo, a_hi = _enclosed(c1, r1, n, g)
    b_lo, b_hi = _enclosed(c2, r2, n, g)
    c_lo, c_hi = _enclosed(c3, r3, n, g)
    d_lo, d_hi = _enclosed(c4, r4, n, g)
    return _add_down(a_lo, -b_hi), _add_up(a_hi, -b_lo), _add_down(c_lo, d_lo), _add_up(c_hi, d_hi)


@njit(**JIT)
def _mid_rad(lo, hi):
    """exact.mid_rad of one interval: ``[mid - rad, mid + rad]`` contains ``[lo, hi]`` (``(0, inf)`` unbounded)."""
    mid = lo + 0.5 * (hi - lo)
    rad = _up(max(mid - lo, hi - mid))
    if not (np.isfinite(mid) and np.isfinite(rad)):
        return 0.0, _INF
    return mid, rad


@njit(**JIT)
def _cabs_hi(re_lo, re_hi, im_lo, im_hi, G):
    """Upper bound of ``|z|`` over a complex interval (enclose._cabs_hi)."""
    a, b = max(abs(re_lo), abs(re_hi)), max(abs(im_lo), abs(im_hi))
    return _sqrt_up(_inflate(a * a + b * b, 2.0 * G[2], 4.0 * ETA))


@njit(**JIT)
def _mig(lo, hi):
    return lo if lo > 0.0 else (-hi if hi < 0.0 else 0.0)


@njit(**JIT)
def _cabs_lo(re_lo, re_hi, im_lo, im_hi, G):
    """Lower bound of ``|z|`` over a complex interval (enclose._cabs_lo)."""
    a, b = _mig(re_lo, re_hi), _mig(im_lo, im_hi)
    return _sqrt_down(_deflate(a * a + b * b, 2.0 * G[2], 4.0 * ETA))


@njit(**JIT)
def _cmul(xr, xi, yr, yi):
    return xr * yr - xi * yi, xr * yi + xi * yr


@njit(**JIT)
def _inverse(Xr, Xi, n, Wr, Wi, Yr, Yi):
    """``Y ~ X^-1`` for the complex ``X = Xr + i Xi`` (float; real and imaginary parts apart: numba's complex
    type would add seconds to the family's compile) by Gauss-Jordan with partial pivoting; False where a
    pivot is 0 or ``Y`` is not finite. Any approximate inverse serves: :func:`_similarity_radius` encloses
    ``Y X - I``. ``Wr``, ``Wi`` are scratch."""
    for i in range(n):
        for j in range(n):
            Wr[i, j], Wi[i, j] = Xr[i, j], Xi[i, j]
            Yr[i, j], Yi[i, j] = (1.0 if i == j else 0.0), 0.0
    for k in range(n):
        p, top = k, -1.0
        for i in range(k, n):
            m = Wr[i, k] * Wr[i, k] + Wi[i, k] * Wi[i, k]
            if m > top:
                p, top = i, m
        if not (top > 0.0 and np.isfinite(top)):
            return False
        for j in range(n):
            Wr[k, j], Wr[p, j] = Wr[p, j], Wr[k, j]
            Wi[k, j], Wi[p, j] = Wi[p, j], Wi[k, j]
            Yr[k, j], Yr[p, j] = Yr[p, j], Yr[k, j]
            Yi[k, j], Yi[p, j] = Yi[p, j], Yi[k, j]
        dr, di = Wr[k, k] / top, -Wi[k, k] / top             # 1 / W_kk
        for j in range(n):
            Wr[k, j], Wi[k, j] = _cmul(Wr[k, j], Wi[k, j], dr, di)
            Yr[k, j], Yi[k, j] = _cmul(Yr[k, j], Yi[k, j], dr, di)
        for i in range(n):
            fr, fi = Wr[i, k], Wi[i, k]
            if i != k and (fr != 0.0 or fi != 0.0):
                for j in range(n):
                    ar, ai = _cmul(fr, fi, Wr[k, j], Wi[k, j])
                    Wr[i, j], Wi[i, j] = Wr[i, j] - ar, Wi[i, j] - ai
                    br, bi = _cmul(fr, fi, Yr[k, j], Yi[k, j])
                    Yr[i, j], Yi[i, j] = Yr[i, j] - br, Yi[i, j] - bi
    for i in range(n):
        for j in range(n):
            if not (np.isfinite(Yr[i, j]) and np.isfinite(Yi[i, j])):
                return False
    return True


@njit(**JIT)
def _similarity_radius(A, X, n, G, mats, v):
    """enclose._similarity_bounds for one float matrix ``A``: Gershgorin in the basis ``X`` (LAPACK's
    eigenvectors of ``A``, complex) with ``Y ~ X^-1``, ``E = Y X - I`` and ``B = Y A X`` enclosed by complex
    interval products; with ``e = ||E||_inf < 1`` the eigenvalues lie in discs
    ``|z - B_ii| <= r_i(B) + e ||B||_inf / (1 - e)``, and the component of the disc of largest floor holds
    one. ``X (2, n, n)`` holds the basis' real and imaginary parts; ``(lo, hi)``; ``(0, inf)`` where the
    basis proves nothing. ``mats[10:23]`` and ``v (3, n)`` are scratch."""
    Xr, Xi, Yr, Yi, zero = X[0], X[1], mats[12], mats[13], mats[14]
    Trm, Trr, Tim, Tir = mats[15], mats[16], mats[17], mats[18]
    Brl, Brh, Bil, Bih = mats[19], mats[20], mats[21], mats[22]
    R, floors, member = v[0], v[1], v[2]
    for i in range(n):
        for j in range(n):
            zero[i, j] = 0.0
            if not (np.isfinite(Xr[i, j]) and np.isfinite(Xi[i, j])):
                return 0.0, _INF
    if not _inverse(Xr, Xi, n, mats[10], mats[11], Yr, Yi):
        return 0.0, _INF
    g = G[n + 2]
    e = 0.0                                           # ||Y X - I||_inf, from above
    for i in range(n):
        row = 0.0
        for j in range(n):
            re_lo, re_hi, im_lo, im_hi = _centry(Yr, zero, Yi, zero, Xr, Xi, i, j, n, g)
            if i == j:
                re_lo, re_hi = _add_down(re_lo, -1.0), _add_up(re_hi, -1.0)
            row += _cabs_hi(re_lo, re_hi, im_lo, im_hi, G)
        row = _inflate(row, G[n], n * ETA)
        if not row < 1.0:
            return 0.0, _INF
        e = max(e, row)
    for i in range(n):                                # T = Y A, in midpoint-radius form
        for j in range(n):
            re_lo, re_hi, im_lo, im_hi = _centry(Yr, zero, Yi, zero, A, zero, i, j, n, g)
            Trm[i, j], Trr[i, j] = _mid_rad(re_lo, re_hi)
            Tim[i, j], Tir[i, j] = _mid_rad(im_lo, im_hi)
    normB = 0.0                                       # B = T X, its row sums off the diagonal
    for i in range(n):
        row, off = 0.0, 0.0
        for j in range(n):
            Brl[i, j], Brh[i, j], Bil[i, j], Bih[i, j] = _centry(Trm, Trr, Tim, Tir, Xr, Xi, i, j, n, g)
            m = _cabs_hi(Brl[i, j], Brh[i, j], Bil[i, j], Bih[i, j], G)
            row += m
            if j != i:
                off += m
        row = _inflate(row, G[n], n * ETA)
        if not np.isfinite(row):
            return 0.0, _INF
        normB = max(normB, row)
        R[i] = _inflate(off, G[n], n * ETA)
    f = _div_up(_mul_up(e, normB), _add_down(1.0, -e))
    hi, start = 0.0, 0
    for i in range(n):
        R[i] = _add_up(R[i], f)
        hi = max(hi, _add_up(_cabs_hi(Brl[i, i], Brh[i, i], Bil[i, i], Bih[i, i], G), R[i]))
        floors[i] = _add_down(_cabs_lo(Brl[i, i], Brh[i, i], Bil[i, i], Bih[i, i], G), -R[i])
        if floors[i] > floors[start]:
            start = i
        member[i] = 0.0
    if not (np.isfinite(hi) and floors[start] == floors[start]):
        return 0.0, _INF
    member[start] = 1.0                               # the discs connected to the one of largest floor
    for _ in range(n):
        grew = False
        for i in range(n):
            if member[i] == 0.0:
                continue
            for j in range(n):
                if member[j] == 1.0:
                    continue
                gre = max(max(Brl[i, i] - Brh[j, j], Brl[j, j] - Brh[i, i]), 0.0)
                gim = max(max(Bil[i, i] - Bih[j, j], Bil[j, j] - Bih[i, i]), 0.0)
                dist = _sqrt_down(_deflate(gre * gre + gim * gim, 2.0 * G[2], 4.0 * ETA))
                if not dist > _add_up(R[i], R[j]):
                    member[j], grew = 1.0, True
        if not grew:
            break
    lo = _INF
    for i in range(n):
        if member[i] == 1.0:
            lo = min(lo, floors[i])
    return max(lo, 0.0), hi


@njit(**JIT)
def _sums(M, n, G, transpose, S, t):
    """Enclosures of the absolute row (column, ``transpose``) sums of ``M`` into ``S[0:2]`` (its sums, where
    ``M`` is nonnegative), and the residual ``max |sum - 1|``; NaN when a sum is undecided (hand back)."""
    col = t[n + 1:]
    res = 0.0
    for i in range(n):
        for j in range(n):
            col[j] = abs(M[j, i] if transpose else M[i, j])
        S[0, i], S[1, i], ok = _sum(col, n, 0.0, G[n + 1], t)
        for j in range(n):
            col[j] = M[j, i] if transpose else M[i, j]
        lo, hi, ok1 = _sum(col, n, -1.0, G[n + 1], t)
        res = max(res, max(abs(lo), abs(hi)))
        if not (ok and ok1):
            return np.nan
    return res


@njit(**JIT)
def _one(M, X, G, out, mats, vecs):
    """The certificate of one matrix into ``out`` (see :func:`certify_batch`); False: hand it back. ``X``: the
    eigenbasis of a signed ``M``, real and imaginary parts (see :func:`_bases`; unused for a nonnegative
    one). ``mats (23, n, n)`` and ``vecs (14, 2 n + 2)`` are scratch."""
    n = M.shape[0]
    A, V, W, W2, B, D_lo, D_hi, mid, R, Vd = (mats[0], mats[1], mats[2], mats[3], mats[4], mats[5], mats[6],
                                               mats[7], mats[8], mats[9])
    RS, CS = vecs[0:2, :n], vecs[2:4, :n]             # row / column sums: lo, hi
    sigma, sv, p, q, c1, c2 = vecs[4, :n], vecs[5, :4], vecs[6, :n], vecs[7, :n], vecs[8, :n], vecs[9, :n]
    t = vecs[10]
    nonneg, top = True, 0.0
    for i in range(n):
        for j in range(n):
            nonneg = nonneg and M[i, j] >= 0.0
            top = max(top, abs(M[i, j]))
    row_res = _sums(M, n, G, False, RS, t)
    col_res = _sums(M, n, G, True, CS, t)
    if not (row_res == row_res and col_res == col_res):
        return False
    out[10], out[11], out[14] = row_res, col_res, 1.0 if nonneg else 0.0
    out[6], out[7] = RS[0].max(), RS[1].max()                        # the gains, unscaled
    out[8], out[9] = CS[0].max(), CS[1].max()

    # --- prescaled by 2**-e (exact, else handed back)
    e = _exponent(top)
    for i in range(n):
        for j in range(n):
            A[i, j] = np.ldexp(M[i, j], -e)
            if np.ldexp(A[i, j], e) != M[i, j]:
                return False
    for S in (RS, CS):
        for i in range(n):
            S[0, i], S[1, i] = _scale(S[0, i], -e, -_INF), _scale(S[1, i], -e, _INF)
    gf_hi, gb_hi = RS[1].max(), CS[1].max()

    # --- spectral norm and sigma_min: the bounds of certify._bounds, the proved SVD in A's basis
    norm_hi = min(_sqrt_up(_mul_up(gf_hi, gb_hi)), _frobenius_up(A, n, G))
    V[:, :] = 0.0
    for i in range(n):
        V[i, i] = 1.0
    _jacobi_svd(A, n, V, W, sigma)
    _singular_bounds(A, 0.0, V, n, G, sv, W2, B, c1, c2)
    pt, qt = 0.0, 0.0                                 # the Schur test at the singular vectors
    for i in range(n):
        p[i] = abs(W[i, 0]) / sigma[0] if sigma[0] > 0.0 else 0.0
        q[i] = abs(V[i, 0])
        pt, qt = max(pt, p[i]), max(qt, q[i])
    for i in range(n):
        p[i] = max(p[i], (pt if pt > 0 else 1.0) * 1e-12)
        q[i] = max(q[i], (qt if qt > 0 else 1.0) * 1e-12)
    a, b, amax = -_INF, -_INF, 0.0
    for i in range(n):
        Kq, Ktp = 0.0, 0.0
        for j in range(n):
            Kq += abs(A[i, j]) * q[j]
            Ktp += abs(A[j, i]) * p[j]
            amax = max(amax, abs(A[i, j]))
        a = max(a, _div_up(_inflate(Kq, 2.0 * G[n + 1], 2.0 * (n + 1) * ETA), p[i]))
        b = max(b, _div_up(_inflate(Ktp, 2.0 * G[n + 1], 2.0 * (n + 1) * ETA), q[i]))
    schur = _sqrt_up(_mul_up(a, b))
    if schur == schur:
        norm_hi = min(norm_hi, schur)
    norm_lo = max(amax, sv[0])
    norm_hi = min(norm_hi, sv[1])
    smin_lo, smin_hi = sv[2], min(sv[3], norm_hi)
    if not (smin_hi - smin_lo <= SMIN_WIDE * smin_hi):     # the numpy path's inverse-based enclosure
        return False

    # --- spectral radius: Perron-Frobenius margins (nonnegative), |tr| / n and where loose the
    # similarity-Gershgorin enclosure (signed); still loose (past REFINE for a signed matrix, as the numpy
    # path's costliest fallbacks are): handed back
    rho_hi = min(min(gf_hi, gb_hi), norm_hi)
    if nonneg:
        rho_lo = max(max(RS[0].min(), CS[0].min()), 0.0)
        rho_hi = min(min(RS[1].max(), CS[1].max()), rho_hi)
    else:
        diag = t[n + 1:]
        for i in range(n):
            diag[i] = A[i, i]
        tr_lo, tr_hi, _ = _sum(diag, n, 0.0, G[n + 1], t)
        rho_lo = max(_div_down(_mig(tr_lo, tr_hi), float(n)), 0.0)
        if not (rho_hi - rho_lo <= LOOSE * rho_hi):
            s_lo, s_hi = _similarity_radius(A, X, n, G, mats, vecs[11:14, :n])
            rho_lo, rho_hi = max(rho_lo, s_lo), min(rho_hi, s_hi)
    if not (rho_hi - rho_lo <= (LOOSE if nonneg else REFINE) * rho_hi):
        return False
    norm_lo = max(norm_lo, rho_lo)

    # --- sigma2 = ||M - J/n||_2 on D prescaled by its own power of two
    inv_up, inv_down = _div_up(1.0, float(n)), _div_down(1.0, float(n))
    dtop = 0.0
    for i in range(n):
        for j in range(n):
            D_lo[i, j] = _add_down(M[i, j], -inv_up)
            D_hi[i, j] = _add_up(M[i, j], -inv_down)
            dtop = max(dtop, max(abs(D_lo[i, j]), abs(D_hi[i, j])))
    ed = _exponent(dtop)
    dmig = 0.0
    for i in range(n):
        for j in range(n):
            lo, hi = _scale(D_lo[i, j], -ed, -_INF), _scale(D_hi[i, j], -ed, _INF)
            D_lo[i, j], D_hi[i, j] = lo, hi
            mid[i, j] = lo + 0.5 * (hi - lo)
            R[i, j] = _up(max(mid[i, j] - lo, hi - mid[i, j]))
            dmig = max(dmig, lo if lo > 0 else (-hi if hi < 0 else 0.0))
    rmax, cmax, fro = 0.0, 0.0, 0.0
    for i in range(n):
        rs, cs = 0.0, 0.0
        for j in range(n):
            rs += max(abs(D_lo[i, j]), abs(D_hi[i, j]))
            cs += max(abs(D_lo[j, i]), abs(D_hi[j, i]))
            m = max(abs(D_lo[i, j]), abs(D_hi[i, j]))
            fro += m * m
        rmax = max(rmax, _inflate(rs, G[n], n * ETA))
        cmax = max(cmax, _inflate(cs, G[n], n * ETA))
    s2_hi = min(_sqrt_up(_mul_up(rmax, cmax)), _root_up(fro, n, G))
    s2_lo = dmig
    rad = _frobenius_up(R, n, G)
    p_lo, p_hi = 0.0, _INF
    near = row_res <= NEAR_DS and col_res <= NEAR_DS
    if near:
        _singular_bounds(mid, rad, V, n, G, sv, W2, B, c1, c2)
        p_lo, p_hi = sv[0], sv[1]
    if not near or not (p_hi - p_lo <= LOOSE * p_hi):
        for i in range(n):                            # D's own basis, from M's (close when M is nearly DS)
            for j in range(n):
                Vd[i, j] = V[i, j]
        _jacobi_svd(mid, n, Vd, W, sigma)
        _singular_bounds(mid, rad, Vd, n, G, sv, W2, B, c1, c2)
        p_lo, p_hi = max(p_lo, sv[0]), min(p_hi, sv[1])
    s2_lo, s2_hi = max(s2_lo, p_lo), min(s2_hi, p_hi)

    out[0], out[1] = _scale(rho_lo, e, -_INF), _scale(rho_hi, e, _INF)
    out[2], out[3] = _scale(norm_lo, e, -_INF), _scale(norm_hi, e, _INF)
    out[4], out[5] = _scale(smin_lo, e, -_INF), _scale(smin_hi, e, _INF)
    out[12], out[13] = _scale(s2_lo, ed, -_INF), _scale(s2_hi, ed, _INF)
    return True


_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (12, 13))   # the intervals' columns of ``out``


@njit(**JIT)
def _batch(M, G, out, handback, X, basis):
    B, n = M.shape[0], M.shape[1]
    mats = np.empty((23, n, n))
    vecs = np.empty((14, max(2 * n + 2, 4)))
    for b in range(B):
        handback[b] = not _one(M[b], X[max(basis[b], 0)], G, out[b], mats, vecs)
        for lo, hi in _PAIRS:                      # an end the arithmetic left undefined: its trivial bound
            if out[b, lo] != out[b, lo]:
                out[b, lo] = 0.0
            if out[b, hi] != out[b, hi]:
                out[b, hi] = _INF


@functools.lru_cache(maxsize=None)
def _gammas(n: int) -> np.ndarray:
    """``gamma(k)`` for ``k < n**2 + 8``: the a priori bounds the kernels use."""
    return np.array([gamma(k) for k in range(n * n + 8)])


def _bases(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X, basis)``: LAPACK's eigenvectors of the signed members of ``M (B, n, n)`` (numpy's batched
    ``eig``, as the numpy path takes them; numba's would add seconds to the family's compile), real and
    imaginary parts ``X[k, 0]``, ``X[k, 1]``, member ``b``'s at ``k = basis[b]`` (-1: nonnegative). A basis
    LAPACK cannot give is NaN (the kernel then proves nothing with it and hands the member back)."""
    signed = (M < 0).any(axis=(-2, -1))
    every = signed.all()
    if not every and not signed.any():
        return _no_basis(M.shape[-1]), np.full(len(M), -1)
    S = M if every else M[signed]
    try:
        X = np.linalg.eig(S)[1]
    except np.linalg.LinAlgError:                  # one member failed: basis by basis
        X = np.full(S.shape, np.nan, dtype=np.complex128)
        for i, A in enumerate(S):
            try:
                X[i] = np.linalg.eig(A)[1]
            except np.linalg.LinAlgError:
                pass
    if every:
        basis = np.arange(len(M))
    else:
        basis = np.cumsum(signed) - 1
        basis[~signed] = -1
    return np.stack([X.real, X.imag], axis=1), basis


@functools.lru_cache(maxsize=None)
def _no_basis(n: int) -> np.ndarray:
    return np.full((1, 2, n, n), np.nan)


def certify_batch(M: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Certificate fields of every float ``M (B, n, n)`` and the ``handback`` mask (the members the numpy
    path must certify instead; their fields here are meaningless)."""
    M = np.ascontiguousarray(M, dtype=np.float64)
    out, handback = np.empty((len(M), 15)), np.empty(len(M), dtype=bool)     # numpy's: fewer page faults
    _batch(M, _gammas(M.shape[-1]), out, handback, *_bases(M))
    fields = {"spectral_radius": out[:, 0:2], "spectral_norm": out[:, 2:4], "sigma_min": out[:, 4:6],
              "sigma2": out[:, 12:14], "gain_forward": out[:, 6:8], "gain_backward": out[:, 8:10],
              "row_residual": out[:, 10], "col_residual": out[:, 11], "nonnegative": out[:, 14] == 1.0}
    return fields, handback


def compile_all() -> str | None:
    """Compile (or load from numba's cache) the family on a tiny input; numba's cache folder."""
    certify_batch(np.array([[[0.25, 0.75], [0.75, 0.25]]]))
    return getattr(getattr(_batch, "_cache", None), "_cache_path", None)
