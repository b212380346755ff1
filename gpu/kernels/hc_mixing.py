"""Fused stream mixing of one HC layer over ``x (M, N, C)`` (M tokens, N <= 16 streams).

``hc_pre``:       ``y[m, c] = sum_n H_pre[m, n] x[m, n, c]``
``hc_post_res``:  ``out[m, i, c] = sum_j H_res[m, i, j] x[m, j, c] + H_post[m, i] f[m, c]``

Forward kernels tile ``(BLOCK_M tokens, BLOCK_C channels)``; backward kernels take one
token block and loop over ``C``, so the reductions over ``C`` (gradients of the
coefficients) stay in registers and ``x`` is read once, as one ``(BLOCK_M, n, BLOCK_C)``
tile; the static loop runs over the ``n`` output streams only, so the code (and the
compile time) grows like ``n``, not ``n^2``. Accumulation in ``ACC``: fp32
(fp64 for fp64 inputs, for gradient checks).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows


@triton.jit
def _tile(pid_m, c0, M, C, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    m = block_rows(pid_m, BLOCK_M)
    c = c0 + tl.arange(0, BLOCK_C)
    return m, c, (m[:, None] < M) & (c[None, :] < C)


@triton.jit
def hc_pre_fwd_kernel(x_ptr, h_ptr, y_ptr, M, C, N: tl.constexpr, BLOCK_M: tl.constexpr,
                      BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    m, c, mask = _tile(tl.program_id(0), tl.program_id(1) * BLOCK_C, M, C, BLOCK_M, BLOCK_C)
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=ACC)
    for j in tl.static_range(N):
        hj = tl.load(h_ptr + m * N + j, mask=m < M, other=0.0).to(ACC)
        xj = tl.load(x_ptr + (m[:, None] * N + j) * C + c[None, :], mask=mask, other=0.0).to(ACC)
        acc += hj[:, None] * xj
    tl.store(y_ptr + m[:, None] * C + c[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def hc_pre_bwd_kernel(x_ptr, h_ptr, dy_ptr, dx_ptr, dh_ptr, M, C, N: tl.constexpr,
                      NP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    streams = tl.arange(0, NP)
    dh = tl.zeros([BLOCK_M, NP], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        m, c, mask = _tile(tl.program_id(0), c0, M, C, BLOCK_M, BLOCK_C)
        dy = tl.load(dy_ptr + m[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        for j in tl.static_range(N):
            hj = tl.load(h_ptr + m * N + j, mask=m < M, other=0.0).to(ACC)
            xj = tl.load(x_ptr + (m[:, None] * N + j) * C + c[None, :], mask=mask, other=0.0).to(ACC)
            tl.store(dx_ptr + (m[:, None] * N + j) * C + c[None, :],
                     (hj[:, None] * dy).to(dx_ptr.dtype.element_ty), mask=mask)
            dh += tl.where(streams[None, :] == j, tl.sum(xj * dy, axis=1)[:, None], 0.0)
    m = block_rows(tl.program_id(0), BLOCK_M)
    tl.store(dh_ptr + m[:, None] * N + streams[None, :], dh.to(dh_ptr.dtype.element_ty),
             mask=(m[:, None] < M) & (streams[None, :] < N))


@triton.jit
def hc_post_res_fwd_kernel(x_ptr, f_ptr, hr_ptr, hp_ptr, out_ptr, M, C, N: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    m, c, mask = _tile(tl.program_id(0), tl.program_id(1) * BLOCK_C, M, C, BLOCK_M, BLOCK_C)
    f = tl.load(f_ptr + m[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
    for i in tl.static_range(N):
        hp = tl.load(hp_ptr + m * N + i, mask=m < M, other=0.0).to(ACC)
        acc = hp[:, None] * f
        for j in tl.static_range(N):
            hij = tl.load(hr_ptr + (m * N + i) * N + j, mask=m < M, other=0.0).to(ACC)
            xj = tl.load(x_ptr + (m[:, None] * N + j) * C + c[None, :], mask=mask, other=0.0).to(ACC)
            acc += hij[:, None] * xj
        tl.store(out_ptr + (m[:, None] * N + i) * C + c[None, :], acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def streams_tile(ptr, m, c, M, C, N: tl.constexpr, NP: tl.constexpr, ACC: tl.constexpr):
    """``ptr[m, j, c]`` as a ``(BLOCK_M, NP, BLOCK_C)`` tile (zeros outside), its offsets and mask."""
    r = tl.arange(0, NP)
    offs = (m[:, None, None] * N + r[None, :, None]) * C + c[None, None, :]
    mask = (m[:, None, None] < M) & (r[None, :, None] < N) & (c[None, None, :] < C)
    return tl.load(ptr + offs, mask=mask, other=0.0).to(ACC), offs, mask


@triton.jit
def res_bwd_step(X, dX, dH, do_i, h_i, i, NP: tl.constexpr):
    """Stream ``i``'s share of the backward of ``out_i = sum_j H[i, j] x_j`` on one C tile.

    ``X, dX (BLOCK_M, NP, BLOCK_C)``, ``dH (BLOCK_M, NP, NP)``, ``do_i (BLOCK_M, BLOCK_C)``,
    ``h_i = H[:, i, :] (BLOCK_M, NP)``: ``dX_j += H[i, j] do_i``, ``dH[i, j] += <do_i, x_j>``.
    """
    r = tl.arange(0, NP)
    dX += h_i[:, :, None] * do_i[:, None, :]
    dH += tl.where(r[None, :, None] == i, tl.sum(do_i[:, None, :] * X, axis=2)[:, None, :], 0.0)
    return dX, dH


@triton.jit
def hc_post_res_bwd_kernel(x_ptr, f_ptr, hr_ptr, hp_ptr, do_ptr, dx_ptr, df_ptr, dhr_ptr, dhp_ptr,
                           M, C, N: tl.constexpr, NP: tl.constexpr, BLOCK_M: tl.constexpr,
                           BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    m = block_rows(tl.program_id(0), BLOCK_M)
    r = tl.arange(0, NP)
    dhr = tl.zeros([BLOCK_M, NP, NP], dtype=ACC)        # [m, i, j]
    dhp = tl.zeros([BLOCK_M, NP], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        mask = (m[:, None] < M) & (c[None, :] < C)
        X, offs, xmask = streams_tile(x_ptr, m, c, M, C, N, NP, ACC)
        f = tl.load(f_ptr + m[:, None] * C + c[None, :], mask=mask, other=0.0).to(ACC)
        dX = tl.zeros([BLOCK_M, NP, BLOCK_C], dtype=ACC)
        df = tl.zeros([BLOCK_M, BLOCK_C], dtype=ACC)
        for i in tl.static_range(N):
            doi = tl.load(do_ptr + (m[:, None] * N + i) * C + c[None, :], mask=mask, other=0.0).to(ACC)
            h_i = tl.load(hr_ptr + (m[:, None] * N + i) * N + r[None, :],
                          mask=(m[:, None] < M) & (r[None, :] < N), other=0.0).to(ACC)
            dX, dhr = res_bwd_step(X, dX, dhr, doi, h_i, i, NP)
            hp = tl.load(hp_ptr + m * N + i, mask=m < M, other=0.0).to(ACC)
            df += hp[:, None] * doi
            dhp += tl.where(r[None, :] == i, tl.sum(doi * f, axis=1)[:, None], 0.0)
        tl.store(dx_ptr + offs, dX.to(dx_ptr.dtype.element_ty), mask=xmask)
        tl.store(df_ptr + m[:, None] * C + c[None, :], df.to(df_ptr.dtype.element_ty), mask=mask)
    valid = (m[:, None] < M) & (r[None, :] < N)
    tl.store(dhp_ptr + m[:, None] * N + r[None, :], dhp.to(dhp_ptr.dtype.element_ty), mask=valid)
    tl.store(dhr_ptr + (m[:, None, None] * N + r[None, :, None]) * N + r[None, None, :],
             dhr.to(dhr_ptr.dtype.element_ty), mask=valid[:, :, None] & (r[None, None, :] < N))


def blocks(C: int, n: int = 1) -> tuple[int, int]:
    """``(BLOCK_M, BLOCK_C)``; backward kernels pass ``n`` to keep ``(BLOCK_M, n, BLOCK_C)`` tiles small."""
    return 4, min(128, 512 // triton.next_power_of_2(n), triton.next_power_of_2(max(C, 1)))
