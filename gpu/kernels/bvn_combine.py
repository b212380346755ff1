"""``H[m] = sum_k w[m, k] P_k`` from permutation weights ``w (M, K)`` and ``perms (K, n)``.

``P_k[i, perms[k, i]] = 1``. Forward scatters each weight onto its permutation's ``n``
entries in a ``(BLOCK_M, NP, NP)`` register tile; backward gathers
``dw[m, k] = sum_i dH[m, i, perms[k, i]]``. ``K`` up to ``n!`` is a runtime loop.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows


@triton.jit
def bvn_combine_fwd_kernel(w_ptr, p_ptr, h_ptr, M, K, n, NP: tl.constexpr, BLOCK_M: tl.constexpr,
                           ACC: tl.constexpr):
    m = block_rows(tl.program_id(0), BLOCK_M)
    r = tl.arange(0, NP)
    acc = tl.zeros([BLOCK_M, NP, NP], dtype=ACC)
    for k in range(K):
        w = tl.load(w_ptr + m * K + k, mask=m < M, other=0.0).to(ACC)
        p = tl.load(p_ptr + k * n + r, mask=r < n, other=-1)              # perms[k, i]
        hit = (r[None, None, :] == p[None, :, None])                       # [i, j]: j == perms[k, i]
        acc += tl.where(hit, w[:, None, None], 0.0)
    mask = (m[:, None, None] < M) & (r[None, :, None] < n) & (r[None, None, :] < n)
    tl.store(h_ptr + (m[:, None, None] * n + r[None, :, None]) * n + r[None, None, :],
             acc.to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def bvn_combine_bwd_kernel(dh_ptr, p_ptr, dw_ptr, M, K, n, NP: tl.constexpr, BLOCK_M: tl.constexpr,
                           ACC: tl.constexpr):
    m = block_rows(tl.program_id(0), BLOCK_M)
    r = tl.arange(0, NP)
    mask = (m[:, None, None] < M) & (r[None, :, None] < n) & (r[None, None, :] < n)
    dh = tl.load(dh_ptr + (m[:, None, None] * n + r[None, :, None]) * n + r[None, None, :],
                 mask=mask, other=0.0).to(ACC)
    for k in range(K):
        p = tl.load(p_ptr + k * n + r, mask=r < n, other=-1)
        hit = (r[None, None, :] == p[None, :, None])
        dw = tl.sum(tl.sum(tl.where(hit, dh, 0.0), axis=2), axis=1)
        tl.store(dw_ptr + m * K + k, dw.to(dw_ptr.dtype.element_ty), mask=m < M)


def block_m(n: int) -> int:
    return max(1, 256 // (triton.next_power_of_2(n) ** 2))
