"""gpu.hc_coeffs (the fused RMS scale + x @ phi + gates + sigmoid kernel) against its torch twin.

fp64 inputs run in fp64, so the kernel equals the twin to rounding and passes gradcheck;
fp32 and bf16 accumulate in fp32. On CPU under TRITON_INTERPRET=1.
"""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from gpu import eager
from gpu.ops import hc_coeffs

pytestmark = pytest.mark.cuda


def inputs(batch, n, C, R, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    M = 2 * n + R
    x = torch.randn(*batch, n, C, generator=g).to(dtype)
    phi = (torch.randn(n * C, M, generator=g) / (n * C) ** 0.5).to(dtype)
    gates, bias = torch.randn(3, generator=g).to(dtype), torch.randn(M, generator=g).to(dtype)
    return [t.requires_grad_() for t in (x, phi, gates, bias)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=2), st.integers(1, 8), st.integers(1, 40),
       st.integers(1, 30), st.integers(0, 2 ** 31))
def test_float64_equals_the_twin(batch, n, C, R, seed):
    ours = inputs(batch, n, C, R, torch.float64, seed)
    twin = [t.detach().clone().requires_grad_() for t in ours]
    out, ref = hc_coeffs(*ours), eager.hc_coeffs(*twin)
    weights = [torch.randn_like(r) for r in ref]
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, atol=1e-13, rtol=1e-12)
    grads = torch.autograd.grad(sum((o * w).sum() for o, w in zip(out, weights)), ours)
    ref_grads = torch.autograd.grad(sum((r * w).sum() for r, w in zip(ref, weights)), twin)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-11)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.bfloat16, 2e-2)])
def test_low_precision_accumulates_in_fp32(dtype, tol):
    ours = inputs((7,), 4, 37, 16, dtype, 0)
    twin = [t.detach().double().requires_grad_() for t in ours]
    out = hc_coeffs(*ours)
    ref = eager.hc_coeffs(*twin, eps=torch.finfo(dtype).eps)       # same eps, exact arithmetic
    assert all(o.dtype == torch.float32 for o in out)
    for o, r in zip(out, ref):
        torch.testing.assert_close(o.double(), r, atol=tol, rtol=tol)
    w = [torch.randn_like(r) for r in ref]
    grads = torch.autograd.grad(sum((o * v.float()).sum() for o, v in zip(out, w)), ours)
    ref_grads = torch.autograd.grad(sum((r * v).sum() for r, v in zip(ref, w)), twin)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=5 * tol, rtol=5 * tol)


def test_gradcheck_float64(fast_mode):
    assert torch.autograd.gradcheck(lambda *a: hc_coeffs(*a), tuple(inputs((3,), 3, 4, 5, torch.float64, 1)),
                                    fast_mode=fast_mode)


def test_bad_inputs():
    x, phi, gates, bias = (t.detach() for t in inputs((2,), 4, 8, 16, torch.float32, 2))
    with pytest.raises(ValueError, match="phi"):
        hc_coeffs(x, phi[:-1], gates, bias)
    with pytest.raises(ValueError, match="gates"):
        hc_coeffs(x, phi, gates[:2], bias)
    with pytest.raises(ValueError, match="bias"):
        hc_coeffs(x, phi, gates, bias[:-1])
    with pytest.raises(TypeError, match="x"):
        hc_coeffs(x.long(), phi, gates, bias)
