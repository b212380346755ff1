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

from . import JIT
from ..sweeps import CHUNK

__all__ = ["sweep_batch", "shifted_logits", "compile_all"]

BLOCK = 128           # matrices swept together: 128 x 4 x 4 float64 = 16 KiB, in L1 (64-512 measured: 128 fastest)


@njit(**JIT)
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


@njit(**JIT)
def _load4(M, s0, b, W):
    """``W[:, :, k] = M[s0 + k] / max M[s0 + k]`` (a multiply by the reciprocal) for the ``b`` matrices of
    a 4x4 block: the copy, maximum and scaling of the general path in one pass."""
    for k in range(b):
        t = M[s0 + k, 0, 0]
        for i in range(4):
            for j in range(4):
                if M[s0 + k, i, j] > t:
                    t = M[s0 + k, i, j]
        t = 1.0 / t
        for i in range(4):
            for j in range(4):
                W[i, j, k] = M[s0 + k, i, j] * t


@njit(**JIT)
def _store4(M, s0, b, W, P, r, c, rows, cols):
    """The swept 4x4 block back to ``P``, with its scalings read off ``P`` and ``M``
    (:func:`birkhoff.sweeps._scalings`) and its residuals (:func:`_residual`), in one pass; ``P`` may be ``M``."""
    for k in range(b):
        m = s0 + k
        for i in range(4):
            r[m, i] = W[i, 0, k] / M[m, i, 0]
        for j in range(4):
            c[m, j] = W[0, j, k] / (M[m, 0, j] * r[m, 0])
        for i in range(4):
            for j in range(4):
                P[m, i, j] = W[i, j, k]
        for out, rows_first in ((rows, True), (cols, False)):
            worst = 0.0
            for i in range(4):
                if rows_first:
                    d = abs(((W[i, 0, k] + W[i, 1, k]) + W[i, 2, k]) + W[i, 3, k] - 1.0)
                else:
                    d = abs(((W[0, i, k] + W[1, i, k]) + W[2, i, k]) + W[3, i, k] - 1.0)
                if i == 0 or d > worst or d != d:
                    worst = d
            out[m] = worst


@njit(**JIT)
def _sweeps4(W, iters, b):
    """``iters`` sweeps on the first ``b`` matrices of a block of 4x4 matrices ``W (4, 4, BLOCK)`` with no
    zero entry, in place: the arithmetic of :func:`_normalise` (row sums ``((w_0 + w_1) + w_2) + w_3``, a
    reciprocal, a multiply; then the columns), a whole sweep per matrix in registers, so each sweep
    reads and writes the block once instead of once per row and column (mHC's n = 4, 3x faster)."""
    for _ in range(iters):
        for k in range(b):
            a00, a01, a02, a03 = W[0, 0, k], W[0, 1, k], W[0, 2, k], W[0, 3, k]
            a10, a11, a12, a13 = W[1, 0, k], W[1, 1, k], W[1, 2, k], W[1, 3, k]
            a20, a21, a22, a23 = W[2, 0, k], W[2, 1, k], W[2, 2, k], W[2, 3, k]
            a30, a31, a32, a33 = W[3, 0, k], W[3, 1, k], W[3, 2, k], W[3, 3, k]
            s = 1.0 / (((a00 + a01) + a02) + a03)
            a00, a01, a02, a03 = a00 * s, a01 * s, a02 * s, a03 * s
            s = 1.0 / (((a10 + a11) + a12) + a13)
            a10, a11, a12, a13 = a10 * s, a11 * s, a12 * s, a13 * s
            s = 1.0 / (((a20 + a21) + a22) + a23)
            a20, a21, a22, a23 = a20 * s, a21 * s, a22 * s, a23 * s
            s = 1.0 / (((a30 + a31) + a32) + a33)
            a30, a31, a32, a33 = a30 * s, a31 * s, a32 * s, a33 * s
            s = 1.0 / (((a00 + a10) + a20) + a30)
            W[0, 0, k], W[1, 0, k], W[2, 0, k], W[3, 0, k] = a00 * s, a10 * s, a20 * s, a30 * s
            s = 1.0 / (((a01 + a11) + a21) + a31)
            W[0, 1, k], W[1, 1, k], W[2, 1, k], W[3, 1, k] = a01 * s, a11 * s, a21 * s, a31 * s
            s = 1.0 / (((a02 + a12) + a22) + a32)
            W[0, 2, k], W[1, 2, k], W[2, 2, k], W[3, 2, k] = a02 * s, a12 * s, a22 * s, a32 * s
            s = 1.0 / (((a03 + a13) + a23) + a33)
            W[0, 3, k], W[1, 3, k], W[2, 3, k], W[3, 3, k] = a03 * s, a13 * s, a23 * s, a33 * s


@njit(**JIT)
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


def sweep_batch(M: np.ndarray, iters: int, in_place: bool = False) -> tuple[np.ndarray, ...]:
    """``iters`` row-then-column sweeps on every matrix of ``M (B, n, n)``: ``(P, r, c, rows, cols)``
    exactly as :func:`birkhoff.sweeps.fixed_sweeps` returns them; ``P`` is ``M`` itself when
    ``in_place``. The outputs are numpy's arrays: numpy asks the OS for huge pages for large ones, and
    each page fault of a fresh array costs microseconds here (a third of the time, measured)."""
    B, n = M.shape[0], M.shape[1]
    out = M if in_place else np.empty((B, n, n)), np.empty((B, n)), np.empty((B, n)), np.empty(B), np.empty(B)
    _sweep_into(M, iters, *out)
    return out


@njit(**JIT)
def _sweep_into(M, iters, P, r, c, rows, cols):
    """:func:`sweep_batch` into given arrays (``P`` may be ``M``: a block is read before it is written).
    Whether a chunk has a zero is decided over numpy's chunks (it chooses how the scalings are formed);
    the sweeps then run on blocks of :data:`BLOCK` matrices that stay in the L1 cache through every
    iteration."""
    B, n = M.shape[0], M.shape[1]
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
            if positive and n == 4:
                _load4(M, s0, b, W)
                _sweeps4(W, iters, b)
                _store4(M, s0, b, W, P, r, c, rows, cols)
                continue
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


def shifted_logits(L: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W, top, ok)`` for logits ``L (B, n, n)``: ``top`` each matrix's largest logit, ``ok`` whether
    its logits span at most ``span``, and ``W = L - top`` where ``ok``, zeros elsewhere (placeholders):
    the values :func:`birkhoff.sweeps.fixed_sweeps_logits` exponentiates (numpy's arrays, as in
    :func:`sweep_batch`)."""
    B = L.shape[0]
    out = np.empty(L.shape), np.empty(B), np.empty(B, dtype=np.bool_)
    _shift_into(L, span, *out)
    return out


@njit(**JIT)
def _shift_into(L, span, W, top, ok):
    """:func:`shifted_logits` into given arrays."""
    B, n = L.shape[0], L.shape[1]
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


def compile_all() -> str | None:
    """Compile (or load from numba's cache) every kernel of the family on a tiny input; the cache
    folder numba chose (None if numba does not say)."""
    sweep_batch(np.ones((1, 2, 2)), 1)
    shifted_logits(np.zeros((1, 2, 2)), 1.0)
    return getattr(getattr(_sweep_into, "_cache", None), "_cache_path", None)
