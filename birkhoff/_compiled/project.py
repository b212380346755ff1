"""Compiled twin of :func:`birkhoff.project._newton`, matrix by matrix (``project`` uses it up to n = 64).

The same semismooth Newton on the dual ``phi(u, v) = 1/2 ||max(0, A - u 1^T - 1 v^T)||^2 + sum u
+ sum v``, matrix by matrix: the affine start, the Levenberg-Marquardt shift
``(1e-3 min(res, 1) + 1e-14) / scale``, the Newton direction through the Schur complement on the
column block (solved here by Gaussian elimination with partial pivoting, where numpy calls LAPACK),
the same backtracking rule (Armijo, or the residual halved; 60 halvings), an exact block round
first above n = 8 and whenever the step stalls. Each matrix stops at its own tolerance, so its iterates are the numpy path's
up to the rounding of the solve. A matrix whose Schur complement is singular in floating point is
handed back (``failed``) to the numpy path, which solves it by least squares. Whatever the path,
:func:`birkhoff.project.project` checks every result rigorously before returning it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import JIT
from ..project import _ROUND_FIRST_ABOVE as ROUND_FIRST_ABOVE

__all__ = ["newton_batch", "centre_batch", "quality_batch", "compile_all"]


@njit(**JIT)
def _residual(A, u, v, n, P, g):
    """``P = max(0, A - u - v)``, ``g = 1 - (P 1, P^T 1)``; returns ``max |g|`` (NaN when any is)."""
    for i in range(n):
        for j in range(n):
            x = A[i, j] - u[i] - v[j]
            P[i, j] = x if x > 0.0 else 0.0
    res = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += P[i, j]
        g[i] = 1.0 - s
    for j in range(n):
        s = 0.0
        for i in range(n):
            s += P[i, j]
        g[n + j] = 1.0 - s
    for k in range(2 * n):
        a = abs(g[k])
        if a > res or a != a:
            res = a
        if res != res:
            break
    return res


@njit(**JIT)
def _threshold_into(Y, n, out, k, keep):
    """``out[k] = tau`` with ``sum_j max(0, Y_j - tau) = 1`` (simplex projection of the row ``Y``) by
    Michelot's algorithm: ``tau`` from a set of entries, the entries ``<= tau`` dropped, again until none
    drops (a few O(n) passes where numpy's path sorts; the same support, ``tau`` to rounding). ``keep`` is
    work space; NaN gives NaN."""
    s = 0.0
    for j in range(n):
        keep[j] = True
        s += Y[j]
    m = n
    tau = (s - 1.0) / m
    while True:
        s = 0.0
        left = 0
        for j in range(n):
            if keep[j]:
                if Y[j] > tau:
                    s += Y[j]
                    left += 1
                else:
                    keep[j] = False
        if left == 0:
            tau = np.nan
            break
        if left == m:
            break
        m = left
        tau = (s - 1.0) / m
    out[k] = tau


@njit(**JIT)
def _block_round(A, u, v, n):
    """Exact minimisation of ``phi`` over ``u`` (rows), then ``v`` (columns), in place."""
    row = np.empty(n)
    keep = np.empty(n, dtype=np.bool_)
    for i in range(n):
        for j in range(n):
            row[j] = A[i, j] - v[j]
        _threshold_into(row, n, u, i, keep)
    for j in range(n):
        for i in range(n):
            row[i] = A[i, j] - u[i]
        _threshold_into(row, n, v, j, keep)


@njit(**JIT)
def _eliminate(S, n, d, piv):
    """Solve ``S[:, :n] x = S[:, n]`` into ``d[n:]`` by Gaussian elimination with partial pivoting, in place;
    False at a zero (or NaN) pivot. The pivot row is copied to ``piv`` first: the row updates then read
    an array they do not write, and vectorise (2.7x at n = 64; the same operations)."""
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(S[r, c]) > abs(S[p, c]):
                p = r
        if not S[p, c] != 0.0 or S[p, c] != S[p, c]:
            return False
        if p != c:
            for k in range(c, n + 1):
                S[c, k], S[p, k] = S[p, k], S[c, k]
        m = n + 1 - c
        for k in range(m):
            piv[k] = S[c, c + k]
        for r in range(c + 1, n):
            row = S[r, c:]
            f = row[0] / piv[0]
            for k in range(m):
                row[k] -= f * piv[k]
    for c in range(n - 1, -1, -1):
        s = S[c, n]
        for k in range(c + 1, n):
            s -= S[c, k] * d[n + k]
        d[n + c] = s / S[c, c]
    return True


@njit(**JIT)
def _direction(A, u, v, g, mu, n, d, W, inv_r, S, cols, piv):
    """Solve ``(H + mu I) d = -g`` for the active pattern ``W = [A - u - v > 0]`` (Schur complement on
    the column block, ``S`` with the right-hand side as its last column, built from each row's active
    columns ``cols``; ``W``, ``inv_r``, ``S``, ``cols``, ``piv`` are work arrays); False when the complement is
    singular in floating point."""
    for a in range(n):
        for b in range(n + 1):
            S[a, b] = 0.0
    for i in range(n):
        k = 0
        for j in range(n):
            if A[i, j] - u[i] - v[j] > 0:
                W[i, j] = 1.0
                cols[k] = j
                k += 1
            else:
                W[i, j] = 0.0
        inv_r[i] = 1.0 / (k + mu)
        for p in range(k):                              # S -= W_i^T inv_r_i W_i, rhs += W_i^T inv_r_i g_i
            a = cols[p]
            for q in range(k):
                S[a, cols[q]] -= inv_r[i]
            S[a, n] += inv_r[i] * g[i]
            S[a, a] += 1.0                              # the column count, diag(W^T 1)
    for a in range(n):
        S[a, a] += mu
        S[a, n] -= g[n + a]
    if not _eliminate(S, n, d, piv):
        return False
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += W[i, j] * d[n + j]
        d[i] = inv_r[i] * (-g[i] - s)
    return True


@njit(**JIT)
def _half_square(A, u, v, n, P, g):
    """``(1/2 ||X||^2, max marginal error)`` of ``X = max(0, A - u - v)``."""
    res = _residual(A, u, v, n, P, g)
    h = 0.0
    for i in range(n):
        for j in range(n):
            h += P[i, j] * P[i, j]
    return 0.5 * h, res


@njit(**JIT)
def newton_batch(A, tol, scale, max_iter):
    """Semismooth Newton for every matrix of ``A (B, n, n)`` to its ``tol[b]``:
    ``(u, v, iterations, failed)``, ``iterations`` the most any matrix took and ``failed`` the
    matrices to hand back to the numpy path."""
    B, n = A.shape[0], A.shape[1]
    U = np.empty((B, n))
    V = np.empty((B, n))
    failed = np.zeros(B, dtype=np.bool_)
    most = 0
    P = np.empty((n, n))
    g = np.empty(2 * n)
    gt = np.empty(2 * n)
    d = np.empty(2 * n)
    ut = np.empty(n)
    vt = np.empty(n)
    W = np.empty((n, n))
    inv_r = np.empty(n)
    piv = np.empty(n + 1)
    S = np.empty((n, n + 1))
    cols = np.empty(n, dtype=np.int64)
    for b in range(B):
        Ab = A[b]
        u, v = U[b], V[b]
        total = 0.0                                     # the affine start
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += Ab[i, j]
            u[i] = s - 1.0
        for j in range(n):
            s = 0.0
            for i in range(n):
                s += Ab[i, j]
            v[j] = s - 1.0
        for i in range(n):
            total += u[i]
        for i in range(n):
            u[i] = u[i] / n - total / (2 * n * n)
            v[i] = v[i] / n - total / (2 * n * n)
        if n > ROUND_FIRST_ABOVE:                       # as the numpy path: one exact block round first
            _block_round(Ab, u, v, n)
        it = 0
        res = _residual(Ab, u, v, n, P, g)
        while True:
            if not res > tol[b] or it >= max_iter:
                break
            it += 1
            mu = (1e-3 * min(res, 1.0) + 1e-14) / scale[b]
            if not _direction(Ab, u, v, g, mu, n, d, W, inv_r, S, cols, piv):
                failed[b] = True
                break
            half0 = 0.0
            for i in range(n):
                for j in range(n):
                    half0 += P[i, j] * P[i, j]
            half0 *= 0.5
            linear = 0.0
            slope = 0.0
            for k in range(2 * n):
                linear += d[k]
                slope += g[k] * d[k]
            t = 1.0
            accepted = False
            for _ in range(60):
                for i in range(n):
                    ut[i] = u[i] + t * d[i]
                    vt[i] = v[i] + t * d[n + i]
                half_t, res_t = _half_square(Ab, ut, vt, n, P, gt)
                decrease = half_t - half0 + t * linear
                if decrease <= 1e-4 * t * slope or res_t <= 0.5 * res:
                    accepted = True
                    break
                t *= 0.5
            if accepted:                                # P, gt and res_t are the new point's already
                for i in range(n):
                    u[i] = ut[i]
                    v[i] = vt[i]
                for k in range(2 * n):
                    g[k] = gt[k]
                res = res_t
            else:                                       # stalled Newton step: exact block round
                _block_round(Ab, u, v, n)
                res = _residual(Ab, u, v, n, P, g)
        most = max(most, it)
    return U, V, most, failed


@njit(**JIT)
def centre_batch(A):
    """The doubly centred batch of :func:`birkhoff.project.project` in one pass per matrix:
    ``(C, rows, cols, mean, size, top)`` with ``C = A - rows 1^T - 1 cols^T + mean`` (row and column
    means of ``A / n``, summed in order), ``size = max |C|`` and ``top = max |A|`` per matrix. Any
    summation order gives an exact row and column shift of ``A``; only the three roundings per entry
    count, which ``project``'s bound of the centring covers."""
    B, n = A.shape[0], A.shape[1]
    C = np.empty((B, n, n))
    rows = np.empty((B, n))
    cols = np.empty((B, n))
    mean = np.empty(B)
    size = np.empty(B)
    top = np.empty(B)
    for b in range(B):
        for j in range(n):
            cols[b, j] = A[b, 0, j] / n
        for i in range(n):
            s = A[b, i, 0] / n
            for j in range(1, n):
                s += A[b, i, j] / n
            rows[b, i] = s
            if i:
                for j in range(n):
                    cols[b, j] += A[b, i, j] / n
        m = rows[b, 0] / n
        for i in range(1, n):
            m += rows[b, i] / n
        mean[b] = m
        big = 0.0
        amax = 0.0
        for i in range(n):
            for j in range(n):
                x = ((A[b, i, j] - rows[b, i]) - cols[b, j]) + m
                C[b, i, j] = x
                big = max(big, abs(x))
                amax = max(amax, abs(A[b, i, j]))
        size[b] = big
        top[b] = amax
    return C, rows, cols, mean, size, top


@njit(**JIT)
def _line_sums(X, w, sums, mags, offset):
    """The row sums of ``X`` (in order) and of ``|X|`` into ``sums`` and ``mags`` from ``offset``; returns
    ``sum_i w_i (1 - row sum_i)``. Columns: pass ``X.T``."""
    g = 0.0
    for i in range(X.shape[0]):
        s = 0.0
        t = 0.0
        for j in range(X.shape[1]):
            s += X[i, j]
            t += abs(X[i, j])
        sums[offset + i], mags[offset + i] = s, t
        g += w[i] * (1.0 - s)
    return g


@njit(**JIT)
def quality_batch(A, U, V, rep, tol):
    """:func:`birkhoff.project._quality` and :func:`birkhoff.project._gap` for a per-matrix ``rep``, in
    one pass per matrix: ``(X, residual, kkt, gap)``, with the numpy path's formulas (its bounds hold
    for any summation order; NaN gives an infinite bound)."""
    B, n = A.shape[0], A.shape[1]
    X = np.empty((B, n, n))
    residual = np.empty(B)
    kkt = np.empty(B)
    gap = np.empty(B)
    eps = np.finfo(np.float64).eps
    sums = np.empty(2 * n)
    mags = np.empty(2 * n)
    for b in range(B):
        amax = 0.0
        umax = 0.0
        vmax = 0.0
        nan = False
        for i in range(n):
            umax = max(umax, abs(U[b, i]))
            vmax = max(vmax, abs(V[b, i]))
            for j in range(n):
                x = (A[b, i, j] - U[b, i]) - V[b, j]
                X[b, i, j] = x if x >= 0.0 or x != x else 0.0
                amax = max(amax, abs(A[b, i, j]))
                nan |= x != x
        kb = rep[b] + 2.0 * eps * ((amax + umax) + vmax)
        if nan or not kb <= tol:                        # loose (or NaN): the entrywise bound
            kb = 0.0
            for i in range(n):
                for j in range(n):
                    x = (A[b, i, j] - U[b, i]) - V[b, j]
                    err = rep[b] + 2.0 * eps * ((abs(A[b, i, j]) + abs(U[b, i])) + abs(V[b, j]))
                    if not x <= -err:
                        kb = max(kb, np.inf if x != x else err)
        kkt[b] = kb
        gap[b] = 2.0 * (_line_sums(X[b], U[b], sums, mags, 0) + _line_sums(X[b].T, V[b], sums, mags, n))
        bound = 0.0
        for k in range(2 * n):
            e = (abs(sums[k] - 1.0) + 1.01 * n * eps * mags[k]) * (1.0 + eps)
            bound = max(bound, e)
        residual[b] = np.inf if nan or bound != bound else bound
    return X, residual, kkt, gap


def compile_all() -> str | None:
    """Compile (or load from numba's cache) the family's kernels on a tiny input; the cache folder."""
    newton_batch(np.eye(2)[None] * 3.0, np.full(1, 1e-12), np.ones(1), 50)
    centre_batch(np.eye(2)[None])
    quality_batch(np.eye(2)[None], np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), 1e-12)
    return getattr(getattr(newton_batch, "_cache", None), "_cache_path", None)
