"""gpu.kron_apply (Triton) against birkhoff.kron_apply and torch autograd through gpu.eager.kron."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birkhoff import kron_apply as kron_apply_ref
from birkhoff import kromhc_factor
from gpu.ops import kron_apply
from gpu.eager import kron

pytestmark = pytest.mark.cuda


def _reference(factors, x):
    """float64 ``kron(factors) x`` with autograd."""
    return torch.einsum("...ij,...jc->...ic", kron(factors), x)


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4).filter(lambda s: np.prod(s) <= 16),
       tokens=st.integers(1, 6), C=st.integers(1, 40), shared=st.lists(st.booleans(), min_size=4, max_size=4),
       seed=st.integers(0, 2**16))
def test_matches_reference_forward_backward(sizes, tokens, C, shared, seed):
    g = torch.Generator().manual_seed(seed)
    n = int(np.prod(sizes))
    x = torch.randn(tokens, n, C, generator=g, dtype=torch.float64).requires_grad_()
    U = [torch.rand(*(() if shared[k] else (tokens,)), m, m, generator=g, dtype=torch.float64).requires_grad_()
         for k, m in enumerate(sizes)]
    y = kron_apply(U, x)
    xr = x.detach().clone().requires_grad_()
    Ur = [u.detach().clone().requires_grad_() for u in U]
    ref = _reference([u.expand(tokens, *u.shape[-2:]) for u in Ur], xr)
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=1e-12)
    dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (y * dy).sum().backward()
    (ref * dy).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, atol=1e-12, rtol=1e-12)
    for u, ur in zip(U, Ur):
        assert u.grad.shape == u.shape
        torch.testing.assert_close(u.grad, ur.grad, atol=1e-12, rtol=1e-12)


def test_birkhoff_reference_and_ds_closure():
    """Shared KromHC factors: equals birkhoff.kron_apply; DS factors keep the stream sum."""
    U = [torch.tensor(kromhc_factor(a)) for a in (0.3, 0.9, 1.0)]   # 1.0: identity factor, zeros
    x = torch.randn(5, 8, 33, dtype=torch.float64)
    y = kron_apply(U, x)
    ref = np.stack([kron_apply_ref([u.numpy() for u in U], x[t].numpy()) for t in range(5)])
    np.testing.assert_allclose(y.cpu().numpy(), ref, atol=1e-14)
    torch.testing.assert_close(y.sum(-2), x.sum(-2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_inputs_fp32_accumulation(dtype):
    x = torch.randn(3, 4, 70).to(dtype)
    U = [torch.rand(3, 2, 2).to(dtype), torch.rand(3, 2, 2).to(dtype)]
    y = kron_apply(U, x)
    assert y.dtype == dtype
    ref = _reference([u.double() for u in U], x.double())
    unit = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -20
    assert float((y.double() - ref).abs().max()) <= unit * (1 + float(ref.abs().max()))


def test_gradcheck_float64(fast_mode):
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    a, b = (torch.rand(2, 2, 2, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda x, a, b: kron_apply([a, b], x), (x, a, b), fast_mode=fast_mode)


def test_bad_input():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError):
        kron_apply([torch.rand(3, 3)], x)                        # sizes do not multiply to 4
    with pytest.raises(ValueError):
        kron_apply([torch.rand(5, 2, 2), torch.rand(2, 2)], x)   # token dims do not match x
    with pytest.raises(ValueError):
        kron_apply([torch.rand(2, 3)], x)                        # not square
    with pytest.raises(ValueError):
        kron_apply([torch.rand(1, 1)] * 5, torch.randn(2, 1, 3))  # more than 4 factors
