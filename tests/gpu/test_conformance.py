"""``gpu.conformance``: the peers' checks as a public API for anyone's kernel. Our own Triton kernels pass
(under the interpreter on CPU), a deliberately biased kernel is caught, and the orders are told apart."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpu import conformance, eager, ops  # noqa: E402

pytestmark = pytest.mark.cuda
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_our_kernels_conform():
    """gpu.ops.sinkhorn sweeps rows then columns (birkhoff's order); hc_pre and hc_post_res against eager."""
    s = conformance.check_sinkhorn(ops.sinkhorn, order="rows_cols", batch=32, device=DEVICE)
    assert s.within(1e-5) and s.findings["col_residual"] < 1e-6          # SK_20 ends on columns here
    assert s.findings["row_residual"] > 1e-4                              # ... and is not DS on rows after 20
    assert [row[0] for row in s.rows] == ["sinkhorn fwd", "sinkhorn bwd", "sinkhorn vs exact SK_20 (float64)"]
    assert conformance.check_pre(ops.hc_pre, batch=16, device=DEVICE).within(1e-5)
    assert conformance.check_post_res(ops.hc_post_res, batch=16, device=DEVICE).within(1e-5)
    assert "| sinkhorn fwd |" in s.markdown() and "1000-layer product" in s.markdown()


def test_a_biased_kernel_and_a_wrong_order_are_caught():
    """An eps in the divisions (Liger's bias) passes against its own algorithm's float64 twin only if the
    reference is that algorithm: against SK_20 it shows, and the certified column sums fall below 1; the
    wrong order shows as a forward error."""
    def eps_sinkhorn(L):
        H = torch.softmax(L, dim=-2)
        for _ in range(20):
            H = H / (H.sum(-1, keepdim=True) + 1e-4)
            H = H / (H.sum(-2, keepdim=True) + 1e-4)
        return H

    biased = conformance.check_sinkhorn(eps_sinkhorn, batch=16, dtype=torch.float64)
    assert not biased.within(1e-5) and biased.findings["col_residual"] > 1e-5
    wrong = conformance.check_sinkhorn(lambda L: eager.sinkhorn(L, 20), order="cols_rows", batch=16,
                                       dtype=torch.float64)
    assert not wrong.within(1e-6, against="fwd")
    with pytest.raises(ValueError, match="order must be one of"):
        conformance.check_sinkhorn(ops.sinkhorn, order="diagonal")
