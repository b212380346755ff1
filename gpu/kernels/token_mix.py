"""BE-HC token mixing over ``x (B, N, d)`` with ``K`` causal shifts, ``N x N`` never formed.

``shift_mix_kernel``:  ``y[b, t, c] = sum_k w[k, c] x[b, t - s_k, c]`` (zero for ``t - s_k < 0``);
with ``REVERSE`` it applies the transpose, ``dx[b, t, c] = sum_k w[k, c] dy[b, t + s_k, c]``
(zero for ``t + s_k >= N``), which is the input gradient.
``shift_mix_dw_kernel``: per token chunk, ``dw[k, c] = sum_t dy[b, t, c] x[b, t - s_k, c]``;
the host sums the chunks.

Tiles are ``(BLOCK_T tokens, BLOCK_C channels)``; each shifted load is a contiguous
``BLOCK_T x BLOCK_C`` slab, so the kernel streams ``x`` ``K`` times from cache and writes
``y`` once. Accumulation in ``ACC`` (fp32; fp64 for fp64 inputs).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows


@triton.jit
def shift_mix_kernel(x_ptr, w_ptr, s_ptr, y_ptr, N, D, K, REVERSE: tl.constexpr,
                     BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    tiles = tl.cdiv(N, BLOCK_T)
    b = tl.program_id(0) // tiles
    t = block_rows(tl.program_id(0) % tiles, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    base = b.to(tl.int64) * N * D
    acc = tl.zeros([BLOCK_T, BLOCK_C], dtype=ACC)
    for k in range(K):
        s = tl.load(s_ptr + k)
        src = t + s if REVERSE else t - s
        wk = tl.load(w_ptr + k * D + c, mask=c < D, other=0.0).to(ACC)
        xs = tl.load(x_ptr + base + src[:, None] * D + c[None, :],
                     mask=(src[:, None] >= 0) & (src[:, None] < N) & (c[None, :] < D), other=0.0)
        acc += wk[None, :] * xs.to(ACC)
    tl.store(y_ptr + base + t[:, None] * D + c[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=(t[:, None] < N) & (c[None, :] < D))


@triton.jit
def shift_mix_dw_kernel(x_ptr, dy_ptr, s_ptr, part_ptr, N, D, K, CHUNK, KP: tl.constexpr,
                        BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    chunks = tl.cdiv(N, CHUNK)
    b = tl.program_id(0) // chunks
    t0 = (tl.program_id(0) % chunks) * CHUNK
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    base = b.to(tl.int64) * N * D
    ks = tl.arange(0, KP)
    acc = tl.zeros([KP, BLOCK_C], dtype=ACC)
    for tb in range(t0, t0 + CHUNK, BLOCK_T):
        t = (tb + tl.arange(0, BLOCK_T)).to(tl.int64)          # positions, int64 like block_rows
        valid = (t[:, None] < N) & (t[:, None] < t0 + CHUNK) & (c[None, :] < D)
        dy = tl.load(dy_ptr + base + t[:, None] * D + c[None, :], mask=valid, other=0.0).to(ACC)
        for k in range(K):
            s = tl.load(s_ptr + k)
            xs = tl.load(x_ptr + base + (t[:, None] - s) * D + c[None, :],
                         mask=valid & (t[:, None] >= s), other=0.0).to(ACC)
            acc += tl.where(ks[:, None] == k, tl.sum(dy * xs, axis=0)[None, :], 0.0)
    tl.store(part_ptr + (tl.program_id(0).to(tl.int64) * K + ks[:, None]) * D + c[None, :], acc,
             mask=(ks[:, None] < K) & (c[None, :] < D))


def blocks(D: int) -> tuple[int, int]:
    """``(BLOCK_T, BLOCK_C)``: 4K-entry tiles, channels contiguous."""
    bc = min(128, triton.next_power_of_2(max(D, 1)))
    return max(16, 4096 // bc), bc
