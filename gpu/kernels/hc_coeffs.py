"""The dynamic coefficients of an mHC-style layer, fused: RMS scale, ``x @ phi``, gates, biases,
sigmoid / ``2 sigmoid``, for ``T`` tokens of ``x (T, K = n C)`` and ``phi (K, M = 2n + R)``.

``z = rsqrt(mean(x^2) + eps) (x @ phi)``; ``a = g_group(m) z + b``; the output holds
``H_pre = sigmoid(a[:n])``, ``H_post = 2 sigmoid(a[n:2n])`` and the residual logits
``a[2n:]`` (the ``H_res`` map, e.g. mHC's Sinkhorn, is the next launch: its ``n x n``
layout per token does not fit this kernel's ``(tokens, M)`` tile).

Forward: one program per ``BLOCK_T`` tokens reads its rows of ``x`` once, in ``BLOCK_K``
chunks, accumulating ``x @ phi`` and ``sum x^2`` together (fp32; fp64 for fp64 inputs),
and writes the coefficients plus ``z`` and the RMS scale for the backward.
Backward: with ``dm = r g da`` (the small ``(T, M)`` part, done by the caller) one program
per token block computes ``dx = dm phi^T + c x`` (``c = -r^2 sum(dz z) / K``, the RMS
term) and adds its share of ``dphi = x^T dm`` atomically, reading ``x`` once more.
The products are broadcast sums, not ``tl.dot``: ``M`` is small (24 at ``n = 4``), fp32
stays IEEE (no TF32) and fp64 works for gradient checks.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows


@triton.jit
def hc_coeffs_fwd_kernel(x_ptr, phi_ptr, g_ptr, b_ptr, out_ptr, z_ptr, r_ptr, T, K, eps,
                         N: tl.constexpr, M: tl.constexpr, MP: tl.constexpr, BLOCK_T: tl.constexpr,
                         BLOCK_K: tl.constexpr, ACC: tl.constexpr):
    t = block_rows(tl.program_id(0), BLOCK_T)
    cols = tl.arange(0, MP)
    acc = tl.zeros([BLOCK_T, MP], dtype=ACC)
    sq = tl.zeros([BLOCK_T], dtype=ACC)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        xk = tl.load(x_ptr + t[:, None] * K + k[None, :], mask=(t[:, None] < T) & (k[None, :] < K),
                     other=0.0).to(ACC)
        pk = tl.load(phi_ptr + k[:, None] * M + cols[None, :], mask=(k[:, None] < K) & (cols[None, :] < M),
                     other=0.0).to(ACC)
        acc += tl.sum(xk[:, :, None] * pk[None, :, :], axis=1)
        sq += tl.sum(xk * xk, axis=1)
    r = 1.0 / tl.sqrt(sq / K + eps)
    z = acc * r[:, None]
    group = tl.where(cols < N, 0, tl.where(cols < 2 * N, 1, 2))
    g = tl.load(g_ptr + group).to(ACC)
    b = tl.load(b_ptr + cols, mask=cols < M, other=0.0).to(ACC)
    a = g[None, :] * z + b[None, :]
    s = 1.0 / (1.0 + tl.exp(-a))
    out = tl.where(cols[None, :] < N, s, tl.where(cols[None, :] < 2 * N, 2.0 * s, a))
    mask = (t[:, None] < T) & (cols[None, :] < M)
    tl.store(out_ptr + t[:, None] * M + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(z_ptr + t[:, None] * M + cols[None, :], z.to(z_ptr.dtype.element_ty), mask=mask)
    tl.store(r_ptr + t, r.to(r_ptr.dtype.element_ty), mask=t < T)


@triton.jit
def hc_coeffs_bwd_kernel(x_ptr, phi_ptr, dm_ptr, c_ptr, dx_ptr, dphi_ptr, T, K, M: tl.constexpr,
                         MP: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr):
    t = block_rows(tl.program_id(0), BLOCK_T)
    cols = tl.arange(0, MP)
    dm = tl.load(dm_ptr + t[:, None] * M + cols[None, :], mask=(t[:, None] < T) & (cols[None, :] < M),
                 other=0.0).to(ACC)
    c = tl.load(c_ptr + t, mask=t < T, other=0.0).to(ACC)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        xmask = (t[:, None] < T) & (k[None, :] < K)
        xk = tl.load(x_ptr + t[:, None] * K + k[None, :], mask=xmask, other=0.0).to(ACC)
        pmask = (k[:, None] < K) & (cols[None, :] < M)
        pk = tl.load(phi_ptr + k[:, None] * M + cols[None, :], mask=pmask, other=0.0).to(ACC)
        dxk = tl.sum(dm[:, None, :] * pk[None, :, :], axis=2) + c[:, None] * xk
        tl.store(dx_ptr + t[:, None] * K + k[None, :], dxk.to(dx_ptr.dtype.element_ty), mask=xmask)
        tl.atomic_add(dphi_ptr + k[:, None] * M + cols[None, :], tl.sum(xk[:, :, None] * dm[:, None, :], axis=0),
                      mask=pmask)


def block_sizes(K: int, M: int) -> tuple[int, int, int]:
    """``(BLOCK_T, BLOCK_K, MP)``: the padded ``M`` and tiles whose broadcast product
    ``BLOCK_T x BLOCK_K x MP`` stays at 8192 elements."""
    MP = triton.next_power_of_2(M)
    block_k = max(1, min(triton.next_power_of_2(K), 8192 // (16 * MP)))
    return 16, block_k, MP
