"""Float screening of ``(B, n, n)`` matrices, ``n <= 64``: one row of statistics per matrix.

``out[b] = (max_i |sum_j M_ij - 1|, max_j |sum_i M_ij - 1|, min_ij M_ij,
||M||_inf = max_i sum_j |M_ij|, ||M||_1 = max_j sum_i |M_ij|, all entries finite)``.
One program handles ``BLOCK_B`` matrices padded to ``BLOCK_N = next_pow2(n)``; sums in
``ACC`` (fp32, fp64 for fp64 input). These are float values with rounding error about
``n u max|M|``; the rigorous enclosures stay in ``birkhoff.certify_batch``.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._index import block_rows

MAX_N = 64
FIELDS = ("row_residual", "col_residual", "min_entry", "gain_forward", "gain_backward",
          "finite")                                 # the kernel writes them in this order


@triton.jit
def screen_batch_kernel(M_ptr, out_ptr, B, n, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
                         ACC: tl.constexpr):
    b = block_rows(tl.program_id(0), BLOCK_B)
    r = tl.arange(0, BLOCK_N)
    line = r[None, :] < n
    mask = (b[:, None, None] < B) & (r[None, :, None] < n) & (r[None, None, :] < n)
    M = tl.load(M_ptr + (b[:, None, None] * n + r[None, :, None]) * n + r[None, None, :],
                mask=mask, other=0.0).to(ACC)
    A = tl.abs(M)
    row_res = tl.max(tl.where(line, tl.abs(tl.sum(M, axis=2) - 1.0), 0.0), axis=1)
    col_res = tl.max(tl.where(line, tl.abs(tl.sum(M, axis=1) - 1.0), 0.0), axis=1)
    min_entry = tl.min(tl.min(tl.where(mask, M, float("inf")), axis=2), axis=1)
    gain_f = tl.max(tl.sum(A, axis=2), axis=1)
    gain_b = tl.max(tl.sum(A, axis=1), axis=1)
    finite = tl.min(tl.min(tl.where(A < float("inf"), 1.0, 0.0), axis=2), axis=1)  # NaN: 0
    o = out_ptr + b * 6
    ok = b < B
    tl.store(o + 0, row_res, mask=ok)
    tl.store(o + 1, col_res, mask=ok)
    tl.store(o + 2, min_entry, mask=ok)
    tl.store(o + 3, gain_f, mask=ok)
    tl.store(o + 4, gain_b, mask=ok)
    tl.store(o + 5, finite, mask=ok)


def block_sizes(n: int) -> tuple[int, int]:
    """``(BLOCK_B, BLOCK_N)``: about 1024 padded entries per program."""
    if not 1 <= n <= MAX_N:
        raise ValueError(f"gpu.ops.screen_batch handles 1 <= n <= {MAX_N}, got n = {n}")
    bn = triton.next_power_of_2(n)
    return max(1, 1024 // (bn * bn)), bn
