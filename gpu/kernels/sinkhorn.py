"""Batched log-domain Sinkhorn ``SK_t(exp(L))`` for ``(B, n, n)`` logits, ``n <= 16``.

One program handles ``BLOCK_B`` matrices, padded to ``BLOCK_N = next_pow2(n)`` with
``-inf`` logits. fp32 math for fp32/bf16 inputs; fp64 inputs (gradient checks) in fp64.

Forward: ``t`` sweeps ``Y <- Y - lse_rows(Y)``, ``Y <- Y - lse_cols(Y)``; ``P = exp(Y)``.
Backward by recomputation (as DeepSeek do; autograd saves nothing but the logits): a
half-step ``y = x - lse_axis(x)`` has ``dx = dy - exp(y) * sum_axis(dy)``. The kernel
reruns the ``2t`` forward half-steps, keeping only their normalisers ``lse`` (``n`` numbers
each, in a transient ``(B, 2t, n)`` scratch, never an ``n x n`` iterate), then walks back:
``x = y + lse`` restores each half-step's input. ``O(t)`` half-steps per matrix.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows

MAX_N = 16


@triton.jit
def _lse(Y, AXIS: tl.constexpr):
    """``logsumexp(Y, AXIS)``; 0 on all-padding lines."""
    m = tl.max(Y, axis=AXIS)
    m = tl.where(m == float("-inf"), 0.0, m)
    s = tl.sum(tl.exp(Y - tl.expand_dims(m, AXIS)), axis=AXIS)
    return m + tl.log(tl.where(s > 0, s, 1.0))


@triton.jit
def _half_step(Y, mask, AXIS: tl.constexpr):
    """``Y - logsumexp(Y, AXIS)`` on valid entries; ``-inf`` stays on padding."""
    return tl.where(mask, Y - tl.expand_dims(_lse(Y, AXIS), AXIS), float("-inf"))


@triton.jit
def _load(L_ptr, B, n, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, FP64: tl.constexpr):
    b = block_rows(tl.program_id(0), BLOCK_B)
    r = tl.arange(0, BLOCK_N)
    offs = b[:, None, None] * n * n + r[None, :, None] * n + r[None, None, :]
    mask = (b[:, None, None] < B) & (r[None, :, None] < n) & (r[None, None, :] < n)
    Y = tl.load(L_ptr + offs, mask=mask, other=float("-inf"))
    Y = Y.to(tl.float64) if FP64 else Y.to(tl.float32)
    return Y, offs, mask


@triton.jit
def sinkhorn_fwd_kernel(L_ptr, P_ptr, B, n, iters, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                        FP64: tl.constexpr):
    Y, offs, mask = _load(L_ptr, B, n, BLOCK_B, BLOCK_N, FP64)
    for _ in tl.range(0, iters):
        Y = _half_step(Y, mask, 2)
        Y = _half_step(Y, mask, 1)
    tl.store(P_ptr + offs, tl.exp(Y).to(P_ptr.dtype.element_ty), mask=mask)


@triton.jit
def sinkhorn_bwd_kernel(L_ptr, dP_ptr, dL_ptr, S_ptr, B, n, iters, BLOCK_B: tl.constexpr,
                        BLOCK_N: tl.constexpr, FP64: tl.constexpr):
    Y, offs, mask = _load(L_ptr, B, n, BLOCK_B, BLOCK_N, FP64)
    b = block_rows(tl.program_id(0), BLOCK_B)
    s_offs = b[:, None] * (2 * iters * BLOCK_N) + tl.arange(0, BLOCK_N)[None, :]
    s_mask = b[:, None] < B
    for k in tl.range(0, iters):                             # recompute, keep the normalisers
        r = _lse(Y, 2)
        tl.store(S_ptr + s_offs + (2 * k) * BLOCK_N, r, mask=s_mask)
        Y = tl.where(mask, Y - tl.expand_dims(r, 2), float("-inf"))
        c = _lse(Y, 1)
        tl.store(S_ptr + s_offs + (2 * k + 1) * BLOCK_N, c, mask=s_mask)
        Y = tl.where(mask, Y - tl.expand_dims(c, 1), float("-inf"))
    tl.debug_barrier()
    dP = tl.load(dP_ptr + offs, mask=mask, other=0.0).to(Y.dtype)
    G = tl.where(mask, dP * tl.exp(Y), 0.0)                  # dLoss / dY_final
    for back in tl.range(0, iters):
        k = iters - 1 - back
        # column half-step 2k+1: Y is its output; then Y becomes its input
        G = G - tl.exp(Y) * tl.expand_dims(tl.sum(G, axis=1), 1)
        c = tl.load(S_ptr + s_offs + (2 * k + 1) * BLOCK_N, mask=s_mask, other=0.0)
        Y = tl.where(mask, Y + tl.expand_dims(c, 1), float("-inf"))
        # row half-step 2k
        G = G - tl.exp(Y) * tl.expand_dims(tl.sum(G, axis=2), 2)
        r = tl.load(S_ptr + s_offs + (2 * k) * BLOCK_N, mask=s_mask, other=0.0)
        Y = tl.where(mask, Y + tl.expand_dims(r, 2), float("-inf"))
        G = tl.where(mask, G, 0.0)
    tl.store(dL_ptr + offs, G.to(dL_ptr.dtype.element_ty), mask=mask)


def block_sizes(n: int) -> tuple[int, int, int]:
    """``(BLOCK_B, BLOCK_N, num_warps)``: 256 padded entries on 4 warps up to ``n = 8``, two
    16 x 16 matrices on one warp above (fastest fwd+bwd of 32-512 entries x 1/2/4 warps
    on an H100 at 4K and 64K matrices, bf16, t = 20)."""
    if not 1 <= n <= MAX_N:
        raise ValueError(f"gpu.sinkhorn handles 1 <= n <= {MAX_N}, got n = {n}")
    bn = triton.next_power_of_2(n)
    entries, warps = (256, 4) if bn <= 8 else (512, 1)
    return max(1, entries // (bn * bn)), bn, warps
