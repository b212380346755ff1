"""gpu.token_mix (Triton) against its torch twin gpu.eager.token_mix (torch autograd)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu.ops import token_mix
from reference.models import Model, ModelConfig
from gpu import eager
from gpu.eager import power_of_two_shifts

pytestmark = pytest.mark.cuda


def _inputs(B, N, d, K, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, d, generator=g, dtype=torch.float64).to(dtype)
    w = torch.softmax(2 * torch.randn(K, d, generator=g, dtype=torch.float64), 0).to(dtype)
    return x, w


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 3), N=st.integers(1, 300), d=st.integers(1, 140), seed=st.integers(0, 2**16),
       extra=st.sets(st.integers(1, 320), max_size=3))
def test_matches_reference_forward_backward(B, N, d, seed, extra):
    shifts = tuple(sorted(set(power_of_two_shifts(N)) | extra))      # includes shifts >= N
    x, w = _inputs(B, N, d, len(shifts), seed)
    x.requires_grad_()
    w.requires_grad_()
    y, ref = token_mix(x, w, shifts), eager.token_mix(x, w, shifts)
    torch.testing.assert_close(y, ref, atol=1e-13, rtol=1e-13)
    dy = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    g = torch.autograd.grad((y * dy).sum(), (x, w))
    gr = torch.autograd.grad((ref * dy).sum(), (x, w))
    torch.testing.assert_close(g[0], gr[0], atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(g[1], gr[1], atol=1e-11 * (1 + B * N), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_inputs_fp32_accumulation(dtype):
    shifts = power_of_two_shifts(200)
    x, w = _inputs(2, 200, 96, len(shifts), 3, dtype)
    y = token_mix(x, w, shifts)
    assert y.dtype == dtype
    ref = eager.token_mix(x.double(), w.double(), shifts)
    unit = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -20
    assert float((y.double() - ref).abs().max()) <= unit * (1 + float(ref.abs().max()))


def test_gradcheck_float64(fast_mode):
    x, w = _inputs(2, 9, 3, 4, 0)
    x.requires_grad_()
    w.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: token_mix(x, w, (0, 1, 2, 4)), (x, w), fast_mode=fast_mode)


def test_model_backend_triton_matches_torch():
    torch.manual_seed(0)
    idx = torch.randint(0, 12, (2, 40))
    losses = []
    for backend in ("torch", "triton"):
        torch.manual_seed(1)
        model = Model(ModelConfig(vocab=12, width=16, depth=2, mixer="residual", kind="tokenmix", max_len=40,
                                  backend=backend))
        loss = model(idx).logsumexp(-1).mean()
        loss.backward()
        losses.append((loss.item(), model.layers[0].sublayers[0].layer.logits.grad.clone()))
    assert abs(losses[0][0] - losses[1][0]) < 1e-5
    torch.testing.assert_close(losses[0][1], losses[1][1], atol=1e-6, rtol=1e-4)


def test_bad_input():
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError):
        token_mix(x, torch.ones(3, 3), (0, 1))
    with pytest.raises(ValueError):
        token_mix(x, torch.ones(2, 3), (0, -1))
    with pytest.raises(ValueError):
        token_mix(x[0], torch.ones(2, 3), (0, 1))
