"""gpu.sinkhorn (Triton, forward + backward by recomputation) against the torch reference.

On CPU this runs under TRITON_INTERPRET=1 (see conftest), so shapes stay small.
"""

import pytest
import torch

from gpu.ops import sinkhorn
from gpu import eager

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("batch", [(1,), (5,), (2, 3)])
def test_forward_backward_match_reference(n, batch):
    torch.manual_seed(n)
    L = (2 * torch.randn(*batch, n, n)).requires_grad_()
    Lr = L.detach().clone().requires_grad_()
    P, ref = sinkhorn(L, iters=4), eager.sinkhorn(Lr, iters=4)
    assert P.shape == L.shape
    torch.testing.assert_close(P, ref, atol=1e-6, rtol=1e-5)
    g = torch.randn_like(P)
    (P * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(L.grad, Lr.grad, atol=2e-6, rtol=1e-5)


def test_gradcheck_float64(fast_mode):
    L = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sinkhorn(x, iters=3), (L,), fast_mode=fast_mode)


def test_bf16_input_fp32_math():
    L = torch.randn(4, 4, 4)
    P = sinkhorn(L.bfloat16(), iters=5)
    assert P.dtype == torch.bfloat16
    torch.testing.assert_close(P.float(), eager.sinkhorn(L.bfloat16().float(), 5), atol=4e-3, rtol=0)


def test_bad_shapes():
    with pytest.raises(ValueError):
        sinkhorn(torch.randn(3, 4))
    with pytest.raises(ValueError):
        sinkhorn(torch.randn(1, 17, 17))
