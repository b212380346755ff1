"""gpu.hc_pre / gpu.hc_post_res (Triton) against torch einsum, forward and backward.

Batch shapes include non-multiples of the block size; on CPU under TRITON_INTERPRET=1.
"""

import pytest
import torch

from gpu.ops import hc_post_res, hc_pre

pytestmark = pytest.mark.cuda


def reference(x, f, H, hp, h):
    return (torch.einsum("...n,...nc->...c", h, x),
            torch.einsum("...ij,...jc->...ic", H, x) + hp[..., :, None] * f[..., None, :])


@pytest.mark.parametrize("n, C", [(1, 5), (2, 16), (4, 37), (8, 9), (16, 3)])
@pytest.mark.parametrize("batch", [(1,), (7,), (2, 3)])
def test_forward_backward(n, C, batch):
    torch.manual_seed(n * C)
    req = dict(requires_grad=True)
    x, f = torch.randn(*batch, n, C, **req), torch.randn(*batch, C, **req)
    H, hp, h = torch.rand(*batch, n, n, **req), torch.rand(*batch, n, **req), torch.rand(*batch, n, **req)
    y, o = hc_pre(x, h), hc_post_res(x, f, H, hp)
    yr, orf = reference(x, f, H, hp, h)
    torch.testing.assert_close(y, yr, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o, orf, atol=1e-5, rtol=1e-5)
    gy, go = torch.randn_like(y), torch.randn_like(o)
    ours = torch.autograd.grad((y * gy).sum() + (o * go).sum(), (x, f, H, hp, h))
    ref = torch.autograd.grad((yr * gy).sum() + (orf * go).sum(), (x, f, H, hp, h))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


def test_gradcheck_float64(fast_mode):
    d = dict(dtype=torch.float64, requires_grad=True)
    x, f = torch.randn(2, 3, 5, **d), torch.randn(2, 5, **d)
    H, hp, h = torch.rand(2, 3, 3, **d), torch.rand(2, 3, **d), torch.rand(2, 3, **d)
    assert torch.autograd.gradcheck(hc_post_res, (x, f, H, hp), fast_mode=fast_mode)
    assert torch.autograd.gradcheck(hc_pre, (x, h), fast_mode=fast_mode)


def test_bf16_inputs_fp32_accumulation():
    torch.manual_seed(0)
    x, f = torch.randn(6, 4, 64), torch.randn(6, 64)
    H, hp, h = torch.rand(6, 4, 4), torch.rand(6, 4), torch.rand(6, 4)
    o = hc_post_res(*(t.bfloat16() for t in (x, f, H, hp)))
    _, orf = reference(*(t.bfloat16().float() for t in (x, f, H, hp, h)))
    assert o.dtype == torch.bfloat16
    torch.testing.assert_close(o.float(), orf, atol=3e-2, rtol=1e-2)   # bf16 output rounding


def test_bad_streams():
    with pytest.raises(ValueError):
        hc_pre(torch.randn(2, 17, 4), torch.rand(2, 17))
