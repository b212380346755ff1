"""``y[m, :, c] = (U_1 (x) ... (x) U_K)[m] x[m, :, c]`` over ``x (M, N, C)``, ``N = prod n_k <= 16``.

The factors are packed per token into ``F (M, S)``, ``S = sum_k n_k^2`` (factor ``k``
row-major at offset ``off_k``), and ``T (K, N, N)`` holds ``T[k, i, j] = off_k + i_k n_k + j_k``
for the row-major digits ``(i_1..i_K)`` of ``i``, so ``H[m, i, j] = prod_k F[m, T[k, i, j]]``.
``H`` is formed in registers (entry by entry forward, row by row backward) and never
written to memory.

Backward (one token block per program, looping over ``C``, the HC mixing kernels' step):
``dx = H^T dy`` and ``dH[m, i, j] = sum_c dy[m, i, c] x[m, j, c]`` in registers, then
``dU_k[a, b] = sum_{i_k = a, j_k = b} dH[i, j] prod_{l != k} U_l[i_l, j_l]``
(``K <= 4``; the products over ``l != k`` are taken without division, so zero entries
are fine). Accumulation in ``ACC``.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows

from .hc_mixing import res_bwd_step, streams_tile

MAX_FACTORS = 4


@triton.jit
def _h_row(f_ptr, t_ptr, m, S, i, N: tl.constexpr, K: tl.constexpr, NP: tl.constexpr, ACC: tl.constexpr):
    """``H[m, i, :]`` as a ``(BLOCK_M, NP)`` tile (0 past column ``N``)."""
    j = tl.arange(0, NP)
    h = tl.full([1, NP], 1.0, ACC)
    for k in tl.static_range(K):
        t = tl.load(t_ptr + (k * N + i) * N + j, mask=j < N, other=0)
        h = h * tl.load(f_ptr + m[:, None] * S + t[None, :], mask=j[None, :] < N, other=0.0).to(ACC)
    return h


@triton.jit
def _h(f_ptr, t_ptr, m, S, i, j, N: tl.constexpr, K: tl.constexpr, ACC: tl.constexpr):
    """``H[m, i, j]`` for a block of (in-range) tokens ``m``."""
    h = tl.load(f_ptr + m * S + tl.load(t_ptr + i * N + j)).to(ACC)
    for k in tl.static_range(1, K):
        h *= tl.load(f_ptr + m * S + tl.load(t_ptr + (k * N + i) * N + j)).to(ACC)
    return h


@triton.jit
def kron_apply_fwd_kernel(x_ptr, f_ptr, t_ptr, y_ptr, M, C, S, N: tl.constexpr, K: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    # entry-wise like hc_post_res: 2-D (BLOCK_M, BLOCK_C) FMAs; on an H100 this ran ~6x
    # faster than one (BLOCK_M, N, BLOCK_C) tile reduced over N
    m = block_rows(tl.program_id(0), BLOCK_M)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (m[:, None] < M) & (c[None, :] < C)
    mc = tl.minimum(m, M - 1)                                # clamped rows: loads stay in bounds
    for i in tl.static_range(N):
        acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=ACC)
        for j in tl.static_range(N):
            xj = tl.load(x_ptr + (m[:, None] * N + j) * C + c[None, :], mask=mask, other=0.0).to(ACC)
            acc += _h(f_ptr, t_ptr, mc, S, i, j, N, K, ACC)[:, None] * xj
        tl.store(y_ptr + (m[:, None] * N + i) * C + c[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _factor_tile(f_ptr, t_ptr, m, S, k: tl.constexpr, K: tl.constexpr, N: tl.constexpr,
                 NP: tl.constexpr, BLOCK_M: tl.constexpr, ACC: tl.constexpr):
    """``U_k[m, i_k, j_k]`` as a ``(BLOCK_M, NP, NP)`` tile over ``(i, j)``; ones for ``k >= K``."""
    u = tl.full([BLOCK_M, NP, NP], 1.0, ACC)
    if k < K:
        r = tl.arange(0, NP)
        valid = (r[:, None] < N) & (r[None, :] < N)
        t = tl.load(t_ptr + (k * N + r[:, None]) * N + r[None, :], mask=valid, other=0)
        u = tl.load(f_ptr + m[:, None, None] * S + t[None, :, :], mask=valid[None, :, :], other=0.0).to(ACC)
    return u


@triton.jit
def kron_apply_bwd_kernel(x_ptr, f_ptr, t_ptr, o_ptr, dy_ptr, dx_ptr, df_ptr, M, C, S,
                          N: tl.constexpr, K: tl.constexpr, NP: tl.constexpr, BLOCK_M: tl.constexpr,
                          BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    m = block_rows(tl.program_id(0), BLOCK_M)
    mc = tl.minimum(m, M - 1)
    r = tl.arange(0, NP)
    dH = tl.zeros([BLOCK_M, NP, NP], dtype=ACC)                        # [m, i, j]
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = (m[:, None] < M) & (c[None, :] < C)
        X, offs, xmask = streams_tile(x_ptr, m, c, M, C, N, NP, ACC)
        dX = tl.zeros([BLOCK_M, NP, BLOCK_C], dtype=ACC)
        for i in tl.static_range(N):
            dyi = tl.load(dy_ptr + (m[:, None] * N + i) * C + c[None, :], mask=mask, other=0.0).to(ACC)
            dX, dH = res_bwd_step(X, dX, dH, dyi, _h_row(f_ptr, t_ptr, mc, S, i, N, K, NP, ACC), i, NP)
        tl.store(dx_ptr + offs, dX.to(dx_ptr.dtype.element_ty), mask=xmask)
    u0 = _factor_tile(f_ptr, t_ptr, mc, S, 0, K, N, NP, BLOCK_M, ACC)
    u1 = _factor_tile(f_ptr, t_ptr, mc, S, 1, K, N, NP, BLOCK_M, ACC)
    u2 = _factor_tile(f_ptr, t_ptr, mc, S, 2, K, N, NP, BLOCK_M, ACC)
    u3 = _factor_tile(f_ptr, t_ptr, mc, S, 3, K, N, NP, BLOCK_M, ACC)
    valid = (r[:, None] < N) & (r[None, :] < N)
    for k in tl.static_range(K):
        g = dH
        if k != 0:
            g = g * u0
        if k != 1:
            g = g * u1
        if k != 2:
            g = g * u2
        if k != 3:
            g = g * u3
        t = tl.load(t_ptr + (k * N + r[:, None]) * N + r[None, :], mask=valid, other=-1)
        for s in range(tl.load(o_ptr + k), tl.load(o_ptr + k + 1)):       # entries of U_k
            ds = tl.sum(tl.sum(tl.where(t[None, :, :] == s, g, 0.0), axis=2), axis=1)
            tl.store(df_ptr + m * S + s, ds.to(df_ptr.dtype.element_ty), mask=m < M)
