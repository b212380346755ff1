"""Fixed-count Sinkhorn sweeps on large batches of small matrices (mHC's ``SK_t`` path).

A batch ``(B, n, n)`` of small matrices is the worst case for numpy: every reduction
runs over an axis of length ``n`` (4 for mHC), so per-call overhead and short inner loops
dominate, and a whole-batch pass streams the array from memory each time. Here the
batch is cut into chunks of ``CHUNK`` matrices that stay in cache, each chunk is
transposed to ``(n, n, b)`` so that every operation is a long vector operation over the
chunk, and a half-sweep is ``n + 1`` of them, all in place: the row sums of every matrix
as ``n - 1`` additions of ``(n, b)`` slices, one reciprocal, one broadcast multiply
(columns: the same on the transposed view). The scalings ``r, c`` with
``P = diag(r) A diag(c)`` are accumulated, or, for a chunk with no zero entry, read
off ``P`` and ``A`` at the end.

Once a process has done enough of this work for compiled code to pay (an estimated 0.5 s of it;
:func:`birkhoff._compiled.kernels` says when), both functions hand the batch to the numba twin in
:mod:`birkhoff._compiled.sweeps`, whose results are bit-identical: the same operations on every
matrix, in the same order.

A sum of zero (an all-zero row or column) is replaced by 1: the row stays zero and its
scaling 1, as ``sinkhorn`` defines it. A row whose sum is below the float range
overflows its scaling to ``inf``; ``sinkhorn`` then redoes the batch in the log domain.
"""

from __future__ import annotations

import numpy as np

from . import _compiled

__all__ = ["fixed_sweeps", "fixed_sweeps_logits", "CHUNK", "MAX_N"]

CHUNK = 8192          # matrices per chunk: 8192 x 4 x 4 float64 = 1 MiB
MAX_N = 16            # the largest n the blocked path takes (its Python loops grow like n); mixing matrices are n <= 16


def _row_sums(W: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``S[i] = sum_j W[i, j]`` for every matrix of the chunk (``n - 1`` additions of ``(n, b)``
    slices), in ``S``."""
    n = W.shape[0]
    if n == 1:
        S[...] = W[:, 0]
    else:
        np.add(W[:, 0], W[:, 1], out=S)
        for j in range(2, n):
            S += W[:, j]
    return S


def _normalise(W: np.ndarray, S: np.ndarray, acc: np.ndarray | None = None) -> None:
    """Divide every row of every matrix of the chunk by its sum, in place. With ``acc``, zero
    sums become 1 (an empty row stays empty) and ``acc`` accumulates the factors; without it
    (a chunk with no zero entry) that is ``n + 1`` operations in all."""
    _row_sums(W, S)
    if acc is not None:
        S[S == 0] = 1.0
    np.divide(1.0, S, out=S)
    W *= S[:, None, :]
    if acc is not None:
        acc *= S


def _scalings(W: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``r, c`` with ``W = diag(r) M diag(c)`` for positive ``M`` (chunk layout ``(n, n, b)``), the free
    factor fixed by ``c_0 = 1``: ``r_i = W_i0 / M_i0`` and ``c_j = W_0j / (M_0j r_0)``."""
    r = W[:, 0] / M[:, 0]
    return r, W[0] / (M[0] * r[0])


def _residual(W: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``max_i |sum_j W[i, j] - 1|`` per matrix of the chunk."""
    _row_sums(W, S)
    S -= 1.0
    return np.abs(S, out=S).max(axis=0)


def _sweep_chunk(W: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """``iters`` sweeps on one chunk ``W (n, n, b)`` in place; ``(r, c)`` with
    ``W_out = diag(r) W_in diag(c)`` per matrix, ``(n, b)`` each. Each matrix is first divided
    by its largest entry (sums stay in range; scaling ``A`` does not change ``P``)."""
    n, b = W.shape[0], W.shape[2]
    WT = W.transpose(1, 0, 2)                                                         # columns as rows
    S = np.empty((n, b))
    top = W.reshape(n * n, b).max(axis=0)
    if (W > 0).all():                          # mHC's exp(logits): the short loop, scalings at the end
        M0 = W.copy()
        W *= 1.0 / top
        for _ in range(iters):
            _normalise(W, S)
            _normalise(WT, S)
        return _scalings(W, M0)
    scale = np.divide(1.0, top, out=np.ones_like(top), where=top > 0)
    W *= scale
    rc, cc = np.tile(scale, (n, 1)), np.ones((n, b))
    for _ in range(iters):
        _normalise(W, S, rc)
        _normalise(WT, S, cc)
    return rc, cc


def _chunks(B: int) -> list[slice]:
    return [slice(start, min(start + CHUNK, B)) for start in range(0, B, CHUNK)]


def fixed_sweeps(M: np.ndarray, iters: int) -> tuple[np.ndarray, ...]:
    """``iters`` row-then-column sweeps on every matrix of ``M`` ``(B, n, n)``.

    Returns ``(P, r, c, row_residual, col_residual)``: ``P = diag(r) M diag(c)`` per matrix
    (``r, c``: ``(B, n)``) and the max ``|row sum - 1|``, ``|column sum - 1|`` of the
    returned ``P`` (``(B,)``).
    """
    B, n, _ = M.shape
    compiled = _compiled.kernels("sweeps", M.size * iters)
    if compiled is not None:
        return compiled.sweep_batch(np.ascontiguousarray(M, dtype=np.float64), iters)
    P = np.empty_like(M, dtype=np.float64)
    r, c = np.ones((B, n)), np.ones((B, n))
    rows, cols = np.empty(B), np.empty(B)
    for k in _chunks(B):
        W = np.array(M[k].transpose(1, 2, 0), dtype=np.float64, order="C")            # (n, n, b), a copy
        rc, cc = _sweep_chunk(W, iters)
        P[k], r[k], c[k] = W.transpose(2, 0, 1), rc.T, cc.T
        S = np.empty((n, W.shape[2]))
        rows[k], cols[k] = _residual(W, S), _residual(W.transpose(1, 0, 2), S)
    return P, r, c, rows, cols


def fixed_sweeps_logits(L: np.ndarray, iters: int, span: float) -> tuple[np.ndarray, ...]:
    """:func:`fixed_sweeps` on ``exp(L)`` for logits ``L (B, n, n)``, ``exp`` taken per chunk in
    cache, for the matrices whose logits span at most ``span`` (``exp(L - max L)`` then cannot
    underflow). Returns ``(P, log_r, log_c, row_residual, col_residual, ok)``; rows where ``ok``
    is False are placeholders, to be redone in the log domain by the caller.
    """
    B, n, _ = L.shape
    compiled = _compiled.kernels("sweeps", L.size * iters)
    if compiled is not None:
        return _compiled_logits(compiled, L, iters, span)
    P = np.empty_like(L, dtype=np.float64)
    log_r, log_c = np.zeros((B, n)), np.zeros((B, n))
    rows, cols, ok = np.empty(B), np.empty(B), np.empty(B, dtype=bool)
    for k in _chunks(B):
        W = np.array(L[k].transpose(1, 2, 0), dtype=np.float64, order="C")
        flat = W.reshape(n * n, -1)
        top = flat.max(axis=0)
        fine = top - flat.min(axis=0) <= span
        W -= top
        W[:, :, ~fine] = 0.0                                # placeholders: all ones after exp
        np.exp(W, out=W)
        rc, cc = _sweep_chunk(W, iters)
        with np.errstate(divide="ignore"):
            log_r[k], log_c[k] = np.log(rc.T) - top[:, None], np.log(cc.T)
        fine &= (rc > 0).all(axis=0) & (cc > 0).all(axis=0)     # a scaling that underflowed: redo in logs
        P[k], ok[k] = W.transpose(2, 0, 1), fine
        S = np.empty((n, W.shape[2]))
        rows[k], cols[k] = _residual(W, S), _residual(W.transpose(1, 0, 2), S)
    return P, log_r, log_c, rows, cols, ok


def _compiled_logits(compiled, L: np.ndarray, iters: int, span: float) -> tuple[np.ndarray, ...]:
    """:func:`fixed_sweeps_logits` through the compiled sweeps; ``exp`` stays numpy's, so the values
    are the chunked path's."""
    W, top, ok = compiled.shifted_logits(np.ascontiguousarray(L, dtype=np.float64), span)
    np.exp(W, out=W)
    P, r, c, rows, cols = compiled.sweep_batch(W, iters, in_place=True)
    ok &= (r > 0).all(axis=1) & (c > 0).all(axis=1)
    with np.errstate(divide="ignore"):
        log_r, log_c = np.log(r, out=r), np.log(c, out=c)       # in place: fresh arrays cost page faults
    log_r -= top[:, None]
    return P, log_r, log_c, rows, cols, ok
