"""Fixed-count Sinkhorn sweeps on large batches of small matrices (mHC's ``SK_t`` path).

A batch ``(B, n, n)`` of small matrices is the worst case for numpy: every reduction
runs over an axis of length ``n`` (4 for mHC), so per-call overhead and short inner loops
dominate, and a whole-batch pass streams the array from memory each time. Here the
batch is cut into chunks of ``CHUNK`` matrices that stay in the L2 cache, each chunk is
transposed to ``(n, n, b)`` so that every operation is one long contiguous vector
operation over the chunk (``s_i = sum_j W_ij``, ``W_i *= 1 / s_i``, then the same for
columns), and the updates are in place. The row and column scalings are accumulated
as products, so ``P = diag(r) A diag(c)`` is also returned as ``r, c``.

A sum of zero (an all-zero row or column) is replaced by 1: the row stays zero and its
scaling 1, as ``sinkhorn`` defines it. A row whose sum is below the float range
overflows its scaling to ``inf``; ``sinkhorn`` then redoes the batch in the log domain.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fixed_sweeps", "CHUNK", "MAX_N"]

CHUNK = 4096          # matrices per chunk: 4096 x 4 x 4 float64 = 512 KiB
MAX_N = 16            # above this the einsum path of birkhoff.sinkhorn is as fast


def _sums(W: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``s = sum_j W[i, j]`` for row ``i`` of every matrix of the chunk, in ``s``."""
    n = W.shape[0]
    if n == 1:
        s[...] = W[0]
    else:
        np.add(W[0], W[1], out=s)
        for j in range(2, n):
            s += W[j]
    return s


def _normalise(W: np.ndarray, acc: np.ndarray, s: np.ndarray) -> None:
    """Scale each row ``W[i]`` of every matrix of the chunk by ``1 / sum_j W[i, j]`` in place;
    ``acc[i]`` accumulates the factors."""
    for i in range(W.shape[0]):
        _sums(W[i], s)[s == 0] = 1.0
        np.divide(1.0, s, out=s)
        W[i] *= s
        acc[i] *= s


def _normalise_positive(W: np.ndarray, s: np.ndarray) -> None:
    """:func:`_normalise` for a chunk with no zero entry: no zero sums to guard, and no factors
    to accumulate (:func:`_scalings` recovers them at the end): ``n + 1`` operations a row."""
    for i in range(W.shape[0]):
        np.divide(1.0, _sums(W[i], s), out=s)
        W[i] *= s


def _scalings(W: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``r, c`` with ``W = diag(r) M diag(c)`` for positive ``M`` (chunk layout ``(n, n, b)``), the free
    factor fixed by ``c_0 = 1``: ``r_i = W_i0 / M_i0`` and ``c_j = W_0j / (M_0j r_0)``."""
    r = W[:, 0] / M[:, 0]
    return r, W[0] / (M[0] * r[0])


def _residual(W: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``max_i |sum_j W[i, j] - 1|`` per matrix of the chunk."""
    worst = np.zeros_like(s)
    for i in range(W.shape[0]):
        _sums(W[i], s)
        s -= 1.0
        np.maximum(worst, np.abs(s, out=s), out=worst)
    return worst


def fixed_sweeps(M: np.ndarray, iters: int) -> tuple[np.ndarray, ...]:
    """``iters`` row-then-column sweeps on every matrix of ``M`` ``(B, n, n)``.

    Each matrix is first divided by its largest entry (so sums stay in range; scaling ``A``
    does not change ``P``). Returns ``(P, r, c, row_residual, col_residual)``:
    ``P = diag(r) M diag(c)`` per matrix (``r, c``: ``(B, n)``) and the max
    ``|row sum - 1|``, ``|column sum - 1|`` of the returned ``P`` (``(B,)``).
    """
    B, n, _ = M.shape
    P = np.empty_like(M, dtype=np.float64)
    r, c = np.ones((B, n)), np.ones((B, n))
    rows, cols = np.empty(B), np.empty(B)
    for start in range(0, B, CHUNK):
        stop = min(start + CHUNK, B)
        W = np.array(M[start:stop].transpose(1, 2, 0), dtype=np.float64, order="C")     # (n, n, b), a copy
        WT = W.transpose(1, 0, 2)                                                         # columns as rows
        s = np.empty(stop - start)
        if (W > 0).all():                      # mHC's exp(logits): the short loop, scalings at the end
            M0 = W.copy()
            W *= 1.0 / W.reshape(n * n, -1).max(axis=0)
            for _ in range(iters):
                _normalise_positive(W, s)
                _normalise_positive(WT, s)
            rc, cc = _scalings(W, M0)
        else:
            top = W.reshape(n * n, -1).max(axis=0)
            scale = np.divide(1.0, top, out=np.ones_like(top), where=top > 0)
            W *= scale
            rc, cc = np.tile(scale, (n, 1)), np.ones((n, stop - start))
            for _ in range(iters):
                _normalise(W, rc, s)
                _normalise(WT, cc, s)
        P[start:stop] = W.transpose(2, 0, 1)
        r[start:stop], c[start:stop] = rc.T, cc.T
        rows[start:stop], cols[start:stop] = _residual(W, s), _residual(WT, s)
    return P, r, c, rows, cols
