"""``python -m gpu.check --peers``: the peers' mHC kernels (Liger-Kernel, hyper-connections)
checked like ours, under the Triton interpreter on CPU. Both peers are in the ``[peers]``
extra, which ``[dev]`` includes, so ``make test`` always has them."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gpu import peers  # noqa: E402

pytestmark = pytest.mark.cuda


@pytest.mark.xdist_group("make_gpu")            # one worker runs them, after one make gpu --quick
def test_peers_check_runs_and_reports_what_it_finds(make_gpu_quick):
    """``python -m gpu.check --peers --quick``, run as the ``peers`` step of ``make gpu --quick``."""
    text = make_gpu_quick["text"]["peers"]
    assert "--peers --quick`: exit 0" in text, text[-3000:]
    for row in ("liger_mhc_coeffs fwd", "liger_mhc_coeffs bwd", "liger_mhc_pre fwd", "liger_mhc_post_res bwd",
                "liger H_res vs exact mHC", "hyper_connections triton_sinkhorn fwd",
                "hyper_connections triton_sinkhorn bwd"):
        assert f"| {row}" in text
    assert text.count("1000-layer product") == 4


def test_liger_eps_bias_is_certified():
    """Liger's Sinkhorn divides by ``sum + 1e-6``: its column sums are below 1 (rigorously), and
    a 1000-layer chain of its H_res loses gain that ours keeps."""
    rows = list(peers.check_liger(torch.device("cpu"), quick=True))
    theirs, ours = rows[-1][1], rows[-1][2]
    assert theirs["col_sum_min"] < 1 - 5e-7 and theirs["col_residual"] > 5e-7
    assert theirs["gain_backward"][1] < 0.9995 < ours["gain_backward"][0]
    errors = {name: abs_err for name, _, abs_err, _ in rows[:-1]}
    assert errors["liger_mhc_coeffs fwd"] < 1e-5 and errors["liger_mhc_pre fwd"] < 1e-5


def test_hyper_connections_backward_uses_the_converged_matrix():
    """Their forward is SK_20 to fp32 rounding; their backward reuses the final matrix for every
    unrolled step, so it differs from the exact gradient of 20 sweeps by far more than rounding."""
    rows = {r[0]: r[2] for r in peers.check_hyper_connections(torch.device("cpu"), quick=True) if r[0] != "findings"}
    assert rows["hyper_connections triton_sinkhorn fwd"] < 1e-6
    assert rows["hyper_connections triton_sinkhorn bwd"] > 1e-4


def test_absent_peer_is_reported(monkeypatch):
    monkeypatch.setattr(peers, "available", lambda peer: False)
    lines = peers.report(torch.device("cpu"), quick=True)
    assert sum("not installed (pip install -e '.[peers]')" in line for line in lines) == 2
