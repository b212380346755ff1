"""Kernel offsets are int64: the arithmetic every kernel uses stays exact past 2^31 elements."""

import ast
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl

from gpu import eager, ops
from gpu.kernels._index import block_rows

pytestmark = pytest.mark.cuda

KERNELS = Path(__file__).resolve().parents[2] / "gpu" / "kernels"
N, C = 4, 7168                              # DeepSeek-like streams and width


@triton.jit
def _offsets_kernel(out_ptr, block, N: tl.constexpr, C, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    """Flat offset ``(m * N + N - 1) * C + C - 1`` of the last entry of each row of one block."""
    if WIDE:
        m = block_rows(block, BLOCK)
    else:                                   # what the kernels did before: int32 row indices
        m = block * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + tl.arange(0, BLOCK), (m * N + N - 1) * C + C - 1)


def _offsets(block: int, wide: bool, BLOCK: int = 4) -> list[int]:
    out = torch.zeros(BLOCK, dtype=torch.int64)
    _offsets_kernel[(1,)](out, block, N=N, C=C, BLOCK=BLOCK, WIDE=wide)
    return out.tolist()


@pytest.mark.parametrize("tokens", [2 ** 17, 2 ** 20, 2 ** 28])           # 128K tokens x 4 x 7168 = 3.8e9
def test_block_rows_offsets_do_not_wrap(tokens):
    block = tokens // 4 - 1                                                  # the last block of rows
    exact = [((m * N + N - 1) * C + C - 1) for m in range(block * 4, block * 4 + 4)]
    assert max(exact) > 2 ** 31
    assert _offsets(block, wide=True) == exact
    assert _offsets(block, wide=False) != exact          # int32 indices wrap: the test can see a regression


@pytest.mark.parametrize("path", sorted(p for p in KERNELS.glob("*.py") if not p.name.startswith("_")),
                         ids=lambda p: p.name)
def test_every_kernel_takes_its_rows_from_block_rows(path):
    """Each kernel gets its rows through block_rows (or casts its row indices to int64 itself)."""
    tree = ast.parse(path.read_text())
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_kernel")):
        src = ast.get_source_segment(path.read_text(), fn)
        calls = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        helpers = {"_tile", "_load"}                                         # row helpers built on block_rows
        assert "block_rows" in calls or calls & helpers or ".to(tl.int64)" in src, \
            f"{path.name}:{fn.name} builds int32 row indices"
        assert "program_id(0) * BLOCK" not in src, f"{path.name}:{fn.name}"


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_properties(0).total_memory < 40e9,
                    reason="a real > 2^31-element launch needs a CUDA device with >= 40 GB")
def test_hc_post_res_past_2_31_elements_on_gpu():
    M = 2 ** 31 // (N * C) + 64                                              # tokens x n x C > 2^31
    x = torch.randn(M, N, C, device="cuda", dtype=torch.bfloat16)
    f = torch.randn(M, C, device="cuda", dtype=torch.bfloat16)
    H = torch.rand(M, N, N, device="cuda", dtype=torch.bfloat16)
    hp = torch.rand(M, N, device="cuda", dtype=torch.bfloat16)
    out = ops.hc_post_res(x, f, H, hp)
    tail = slice(M - 64, M)
    ref = eager.hc_post_res(x[tail].float(), f[tail].float(), H[tail].float(), hp[tail].float())
    torch.testing.assert_close(out[tail].float(), ref, atol=0.1, rtol=2 ** -7)
