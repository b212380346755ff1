"""gpu.ops.screen_batch (float screening) against birkhoff.certify_batch (rigorous)."""

import numpy as np
import pytest
import torch

from birkhoff import certify_batch as certify_batch_ref
from birkhoff import sinkhorn_logits
from gpu import ops
from gpu.ops import screen_batch

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 16, 33])
@pytest.mark.parametrize("batch", [(1,), (5,), (2, 3)])
def test_matches_birkhoff(n, batch):
    rng = np.random.default_rng(n)
    M = sinkhorn_logits(rng.standard_normal((*batch, n, n)), 2) + 1e-3 * rng.standard_normal((*batch, n, n))
    got = screen_batch(torch.tensor(M))                    # float64 in, float64 sums
    ref = certify_batch_ref(M)
    tol = 4 * n * np.finfo(float).eps * (1 + np.abs(M).sum(-1).max())
    for g, r in [(got.row_residual, ref.row_residual), (got.col_residual, ref.col_residual),
                 (got.min_entry, M.min(axis=(-2, -1)))]:
        assert g.shape == batch
        np.testing.assert_allclose(g.cpu().numpy(), r, atol=tol, rtol=0)
    for g, iv in [(got.gain_forward, ref.gain_forward), (got.gain_backward, ref.gain_backward)]:
        g = g.cpu().numpy()
        assert np.all(g >= iv[..., 0] - tol) and np.all(g <= iv[..., 1] + tol)
    assert bool(got.finite.all())


def test_exactly_ds_and_flags():
    P = torch.eye(4)[[2, 0, 3, 1]]
    M = torch.stack([P, 0.25 * torch.ones(4, 4), -P, torch.full((4, 4), float("nan")),
                     torch.full((4, 4), float("inf"))])
    st = screen_batch(M)
    assert st.row_residual[:2].tolist() == [0.0, 0.0] and st.col_residual[:2].tolist() == [0.0, 0.0]
    assert st.row_residual[2] == 2.0 and st.min_entry[2] == -1.0
    assert st.gain_forward[:3].tolist() == [1.0, 1.0, 1.0] and st.gain_backward[:3].tolist() == [1.0, 1.0, 1.0]
    assert st.finite.tolist() == [True, True, True, False, False]
    assert st.row_residual.dtype == torch.float32


def test_bf16_input_exact_upcast():
    M = torch.rand(9, 5, 5).bfloat16()
    st = screen_batch(M)
    ref = certify_batch_ref(M.double().cpu().numpy())
    np.testing.assert_allclose(st.row_residual.cpu().numpy(), ref.row_residual, atol=2e-6)
    assert torch.equal(st.min_entry, M.float().amin((-2, -1)))


def test_bad_input():
    with pytest.raises(ValueError):
        screen_batch(torch.rand(3, 2, 3))
    with pytest.raises(TypeError):
        screen_batch(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError):
        screen_batch(torch.rand(1, 65, 65))
    assert screen_batch(torch.rand(0, 3, 3)).row_residual.shape == (0,)


def test_the_design_name_is_the_screen():
    """``gpu.ops.certify_batch``, the design's name for the op, is the float screen itself, not another op."""
    assert ops.certify_batch is ops.screen_batch and "certify_batch" in ops.__all__
