"""Compiled twin of :mod:`birkhoff.sweeps`: fixed-count Sinkhorn sweeps on a batch of small matrices.

The same algorithm, in the same order, as the numpy blocked path, so the results are bit-identical
(tested): chunks of :data:`birkhoff.sweeps.CHUNK` matrices in the layout ``(n, n, b)``; a chunk with
no zero entry is divided by each matrix's largest entry (a multiply by its reciprocal), swept, and
its scalings read off ``P`` and ``A`` at the end; a chunk with a zero accumulates the scalings, a
zero sum counting as 1. A half-sweep is, per row, ``((w_0 + w_1) + w_2) + ...`` over the chunk, the
reciprocal, and a multiply: what numpy does as whole-array calls, here as loops over the chunk
that LLVM vectorises, in one pass and without temporaries.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..sweeps import CHUNK

__all__ = ["sweep_batch", "shifted_logits", "compile_all"]

_JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)
BLOCK = 128           # matrices swept together: 128 x 4 x 4 float64 = 16 KiB, in L1 (64-512 measured: 128 fastest)


@njit(**_JIT)
def _normalise(W, S, acc, rows, n, b):
    """Divide every row (``rows``) or column of the first ``b`` matrices of the block ``W (n, n, BLOCK)``
    by its sum, in place; with a non-empty ``acc``, zero sums count as 1 and ``acc`` gathers the factors."""
    for i in range(n):
        if rows:
            for k in range(b):
                S[k] = W[i, 0, k]
            for j in range(1, n):
                for k in range(b):
                    S[k] += W[i, j, k]
        else:
            for k in range(b):
                S[k] = W[0, i, k]
            for j in range(1, n):
                for k in range(b):
                    S[k] += W[j, i, k]
        if acc.shape[0]:
            for k in range(b):
                if S[k] == 0.0:
                    S[k] = 1.0
        for k in range(b):
            S[k] = 1.0 / S[k]
        for j in range(n):
            if rows:
                for k in range(b):
                    W[i, j, k] *= S[k]
            else:
                for k in range(b):
                    W[j, i, k] *= S[k]
        if acc.shape[0]:
            for k in range(b):
                acc[i, k] *= S[k]


@njit(**_JIT)
def _residual(W, out, rows, n, b):
    """``out[k] = max_i |sum_j W[i, j, k] - 1|`` (columns when not ``rows``)."""
    for k in range(b):
        worst = 0.0
        for i in range(n):
            s = W[i, 0, k] if rows else W[0, i, k]
            for j in range(1, n):
                s += W[i, j, k] if rows else W[j, i, k]
            d = abs(s - 1.0)
            if i == 0 or d > worst or d != d:
                worst = d
        out[k] = worst


@njit(**_JIT)
def sweep_batch(M, iters):
    """``iters`` row-then-column sweeps on every matrix of ``M (B, n, n)``: ``(P, r, c, rows, cols)``
    exactly as :func:`birkhoff.sweeps.fixed_sweeps` returns them. Whether a chunk has a zero is
    decided over numpy's chunks (it chooses how the scalings are formed); the sweeps then run on
    blocks of :data:`BLOCK` matrices that stay in the L1 cache through every iteration."""
    B, n = M.shape[0], M.shape[1]
    P = np.empty((B, n, n))
    r = np.ones((B, n))
    c = np.ones((B, n))
    rows = np.empty(B)
    cols = np.empty(B)
    W = np.empty((n, n, BLOCK))
    S = np.empty(BLOCK)
    top = np.empty(BLOCK)
    rc = np.empty((n, BLOCK))
    cc = np.empty((n, BLOCK))
    none = np.empty((0, 0))
    for start in range(0, B, CHUNK):
        stop = min(start + CHUNK, B)
        positive = True
        for k in range(start, stop):
            for i in range(n):
                for j in range(n):
                    if not M[k, i, j] > 0.0:
                        positive = False
        for s0 in range(start, stop, BLOCK):
            b = min(BLOCK, stop - s0)
            for k in range(b):
                t = M[s0 + k, 0, 0]
                for i in range(n):
                    for j in range(n):
                        v = M[s0 + k, i, j]
                        W[i, j, k] = v
                        if v > t:
                            t = v
                top[k] = t
            if positive:
                for k in range(b):
                    top[k] = 1.0 / top[k]
                for i in range(n):
                    for j in range(n):
                        for k in range(b):
                            W[i, j, k] *= top[k]
                for _ in range(iters):
                    _normalise(W, S, none, True, n, b)
                    _normalise(W, S, none, False, n, b)
                for k in range(b):
                    for i in range(n):
                        r[s0 + k, i] = W[i, 0, k] / M[s0 + k, i, 0]
                    for j in range(n):
                        c[s0 + k, j] = W[0, j, k] / (M[s0 + k, 0, j] * r[s0 + k, 0])
            else:
                for k in range(b):
                    top[k] = 1.0 / top[k] if top[k] > 0.0 else 1.0
                for i in range(n):
                    for k in range(b):
                        rc[i, k] = top[k]
                        cc[i, k] = 1.0
                    for j in range(n):
                        for k in range(b):
                            W[i, j, k] *= top[k]
                for _ in range(iters):
                    _normalise(W, S, rc, True, n, b)
                    _normalise(W, S, cc, False, n, b)
                for k in range(b):
                    for i in range(n):
                        r[s0 + k, i] = rc[i, k]
                        c[s0 + k, i] = cc[i, k]
            for k in range(b):
                for i in range(n):
                    for j in range(n):
                        P[s0 + k, i, j] = W[i, j, k]
            _residual(W, rows[s0:s0 + b], True, n, b)
            _residual(W, cols[s0:s0 + b], False, n, b)
    return P, r, c, rows, cols


@njit(**_JIT)
def shifted_logits(L, span):
    """``(W, top, ok)`` for logits ``L (B, n, n)``: ``top`` each matrix's largest logit, ``ok`` whether
    its logits span at most ``span``, and ``W = L - top`` where ``ok``, zeros elsewhere (placeholders):
    the values :func:`birkhoff.sweeps.fixed_sweeps_logits` exponentiates."""
    B, n = L.shape[0], L.shape[1]
    W = np.empty((B, n, n))
    top = np.empty(B)
    ok = np.empty(B, dtype=np.bool_)
    for k in range(B):
        hi = L[k, 0, 0]
        lo = hi
        for i in range(n):
            for j in range(n):
                v = L[k, i, j]
                if v > hi:
                    hi = v
                if v < lo:
                    lo = v
        top[k] = hi
        ok[k] = hi - lo <= span
        for i in range(n):
            for j in range(n):
                W[k, i, j] = L[k, i, j] - hi if ok[k] else 0.0
    return W, top, ok


def compile_all() -> str | None:
    """Compile (or load from numba's cache) every kernel of the family on a tiny input; the cache
    folder numba chose (None if numba does not say)."""
    sweep_batch(np.ones((1, 2, 2)), 1)
    shifted_logits(np.zeros((1, 2, 2)), 1.0)
    return getattr(getattr(sweep_batch, "_cache", None), "_cache_path", None)
