"""gpu.bvn_combine (Triton) against birkhoff.from_permutations and torch autograd."""

import numpy as np
import pytest
import torch

from birkhoff import all_permutations, cyclic_permutations, from_permutations
from gpu.ops import bvn_combine

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("perms", [all_permutations(2), all_permutations(3), all_permutations(4),
                                   cyclic_permutations(5), cyclic_permutations(8)])
@pytest.mark.parametrize("batch", [(1,), (9,), (2, 3)])
def test_matches_from_permutations(perms, batch):
    torch.manual_seed(len(perms))
    w = torch.softmax(torch.randn(*batch, len(perms)), -1).requires_grad_()
    H = bvn_combine(w, torch.tensor(perms))
    ref = torch.tensor(from_permutations(w.detach().double().cpu().numpy(), perms))
    torch.testing.assert_close(H.double(), ref, atol=1e-6, rtol=1e-6)
    assert torch.allclose(H.sum(-1), torch.ones(()), atol=1e-5)
    g = torch.randn_like(H)
    (H * g).sum().backward()
    onehot = torch.tensor(from_permutations(np.eye(len(perms)), perms))
    torch.testing.assert_close(w.grad.double(), torch.einsum("...ij,kij->...k", g.double(), onehot),
                               atol=1e-5, rtol=1e-5)


def test_gradcheck_and_errors(fast_mode):
    w = torch.rand(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: bvn_combine(w, torch.tensor(all_permutations(3))), (w,),
                                    fast_mode=fast_mode)
    with pytest.raises(ValueError):
        bvn_combine(torch.rand(2, 5), torch.tensor(all_permutations(3)))


def test_backward_uses_the_checked_permutations_not_the_callers_tensor():
    """The forward checks ``perms``; an int32 tensor was saved for the backward as is, so an edit
    between forward and backward (here: an index out of range) reached the kernel unchecked."""
    perms = torch.tensor(cyclic_permutations(4), dtype=torch.int32)
    w = torch.softmax(torch.randn(3, len(perms)), -1).requires_grad_()
    H = bvn_combine(w, perms)
    g = torch.randn_like(H)
    expected = torch.einsum("...ij,kij->...k", g.double(),
                            torch.tensor(from_permutations(np.eye(len(perms)), perms.numpy())))
    perms[0, 0] = 1000                                   # the caller reuses its tensor
    (H * g).sum().backward()
    torch.testing.assert_close(w.grad.double(), expected, atol=1e-5, rtol=1e-5)
