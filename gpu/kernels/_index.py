"""Index arithmetic shared by every kernel: row indices in int64.

A flat offset such as ``(m * n + j) * C + c`` exceeds ``2^31`` once tokens x n x C
does (128K tokens x 4 streams x 7168 channels is 3.8e9): computed in int32 it wraps and
the kernel reads or writes the wrong memory. Every kernel takes its block of rows
(tokens, matrices, sequence positions) from :func:`block_rows`, so all offsets built
from it are int64. ``tests/gpu/test_offsets.py`` checks the arithmetic past ``2^31``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def block_rows(block, BLOCK: tl.constexpr):
    """``block * BLOCK + arange(BLOCK)`` as int64: the rows of one program's block."""
    return block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
