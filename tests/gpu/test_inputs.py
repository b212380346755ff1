"""Every ``gpu.ops`` entry checks its inputs first: a clear TypeError / ValueError, never a wrong result."""

import os

import numpy as np
import pytest
import torch

from birkhoff import all_permutations
from gpu import ops

pytestmark = pytest.mark.cuda

X = torch.randn(3, 4, 8)             # (tokens, n, C)
P3 = torch.tensor(all_permutations(3))


@pytest.mark.parametrize("call, error, needle", [
    (lambda: ops.hc_pre(X, torch.rand(3, 5)), ValueError, "H_pre"),
    (lambda: ops.hc_pre(X, torch.rand(4)), ValueError, "H_pre"),
    (lambda: ops.hc_pre(X.numpy(), torch.rand(3, 4)), TypeError, "torch.Tensor"),
    (lambda: ops.hc_pre(X.to(torch.int64), torch.rand(3, 4)), TypeError, "float32"),
    (lambda: ops.hc_pre(X.to(torch.complex64), torch.rand(3, 4)), TypeError, "float32"),
    (lambda: ops.hc_pre(torch.randn(3, 17, 8), torch.rand(3, 17)), ValueError, "n <= 16"),
    (lambda: ops.hc_post_res(X, torch.randn(3, 7), torch.rand(3, 4, 4), torch.rand(3, 4)), ValueError, "f_out"),
    (lambda: ops.hc_post_res(X, torch.randn(3, 8), torch.rand(3, 4, 3), torch.rand(3, 4)), ValueError, "H_res"),
    (lambda: ops.hc_post_res(X, torch.randn(3, 8), torch.rand(3, 4, 4), torch.rand(4)), ValueError, "H_post"),
    (lambda: ops.sinkhorn(torch.randint(0, 3, (2, 4, 4)), 20), TypeError, "float32"),
    (lambda: ops.sinkhorn(torch.randn(2, 4, 3), 20), ValueError, "(..., n, n)"),
    (lambda: ops.sinkhorn(torch.randn(2, 4, 4), True), ValueError, "iters"),
    (lambda: ops.sinkhorn(torch.randn(2, 4, 4), -1), ValueError, "iters"),
    (lambda: ops.bvn_combine(torch.rand(2, 6), torch.tensor([[0, 1, 3]] * 6)), ValueError, "not a permutation"),
    (lambda: ops.bvn_combine(torch.rand(2, 6), torch.tensor([[0, 0, 1]] * 6)), ValueError, "not a permutation"),
    (lambda: ops.bvn_combine(torch.rand(2, 6), torch.tensor([[-1, 0, 1]] * 6)), ValueError, "not a permutation"),
    (lambda: ops.bvn_combine(torch.rand(2, 6), P3.double()), TypeError, "integer"),
    (lambda: ops.bvn_combine(torch.rand(2, 5), P3), ValueError, "do not match"),
    (lambda: ops.bvn_combine(np.ones((2, 6)), P3), TypeError, "torch.Tensor"),
    (lambda: ops.kron_apply([torch.rand(2, 2), torch.rand(3, 3)], X), ValueError, "x must have shape"),
    (lambda: ops.kron_apply([torch.rand(2, 2).numpy()], X), TypeError, "torch.Tensor"),
    (lambda: ops.kron_apply([torch.rand(2, 3)], torch.randn(3, 2, 8)), ValueError, "factor 0"),
    (lambda: ops.screen_batch(torch.ones(2, 3, 3, dtype=torch.int32)), TypeError, "float32"),
    (lambda: ops.token_mix(torch.randn(1, 5, 3), torch.ones(2, 3), (0, 1.5)), ValueError, "shifts"),
    (lambda: ops.token_mix(torch.randn(1, 5, 3), torch.ones(2, 3, dtype=torch.int64), (0, 1)), TypeError, "w"),
])
def test_bad_inputs_raise_clear_errors(call, error, needle):
    with pytest.raises(error, match=needle.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call()


def test_perms_are_checked_on_every_call_whatever_changed_them():
    """Edits that do not bump the tensor version (a shared numpy array, ``.data``) are seen too."""
    w = torch.softmax(torch.randn(2, 6), -1)
    shared = P3.numpy().copy()
    perms = torch.from_numpy(shared)
    ops.bvn_combine(w, perms)
    shared[0, :] = [2, 2, 0]                                    # through numpy: no version bump
    with pytest.raises(ValueError, match="not a permutation"):
        ops.bvn_combine(w, perms)
    perms = P3.clone()
    ops.bvn_combine(w, perms)
    perms.data[1, 2] = 7                                        # through .data: out of range
    with pytest.raises(ValueError, match="not a permutation"):
        ops.bvn_combine(w, perms)


@pytest.mark.parametrize("call, error, needle", [
    (lambda: ops.bvn_combine(torch.rand(2, 0), torch.zeros(0, 3, dtype=torch.int64)), ValueError, "K >= 1"),
    (lambda: ops.token_mix(torch.randn(1, 5, 3), torch.ones(2, 3), (0, 2 ** 31)), ValueError, "shifts"),
    (lambda: ops.hc_coeffs(torch.randn(2, 4, 8), torch.zeros(32, 24), torch.ones(3), torch.zeros(24), eps=float("nan")),
     ValueError, "eps"),
    (lambda: ops.hc_coeffs(torch.randn(2, 4, 8), torch.zeros(32, 24), torch.ones(3), torch.zeros(24), eps=0.0),
     ValueError, "eps"),
    (lambda: ops.hc_pre(X.to_sparse(), torch.rand(3, 4)), TypeError, "dense"),
    (lambda: ops.hc_pre(X.to("meta"), torch.rand(3, 4).to("meta")), ValueError, "device"),
    (lambda: ops.sinkhorn(torch.randn(2, 4, 4).to(torch.float8_e4m3fn), 20), TypeError, "float32"),
])
def test_edge_inputs_raise_the_promised_errors(call, error, needle):
    with pytest.raises(error, match=needle):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path: CUDA tensors need no interpreter")
def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setitem(os.environ, "TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        ops.hc_pre(X, torch.rand(3, 4))
