"""``python -m gpu.check --peers``: the peers' mHC kernels (Liger-Kernel, hyper-connections)
checked like ours, under the Triton interpreter on CPU. Both peers are in the ``[peers]``
extra, which ``[dev]`` includes, so ``make test`` always has them."""

import os
import re

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


def _peers_step(make_gpu_quick) -> tuple[dict[str, float], list[str]]:
    """The ``peers`` step's table (row -> max abs error) and its findings, one line per peer and ours after it."""
    text = make_gpu_quick["text"]["peers"]
    errors = {m[1]: float(m[2]) for m in re.finditer(r"^\| (\S.*?) \| \(.*?\) \| (\S+) \|", text, re.M)}
    return errors, [line[2:] for line in text.splitlines() if line.startswith("- ")]


def _interval(line: str, label: str) -> tuple[float, float]:
    m = re.search(label + r" in \[(\S+), (\S+)\]", line)
    return float(m[1]), float(m[2])


@pytest.mark.xdist_group("make_gpu")
def test_liger_eps_bias_is_certified(make_gpu_quick):
    """Liger's Sinkhorn divides by ``sum + 1e-6``: its column sums are below 1 (rigorously), and
    a 1000-layer chain of its H_res loses gain that ours keeps (read off the ``peers`` step)."""
    errors, findings = _peers_step(make_gpu_quick)
    theirs, ours = findings[0], findings[1]
    assert theirs.startswith("liger:") and ours.startswith("ours")
    assert float(re.search(r"smallest column sum (\S+)\)", theirs)[1]) < 1 - 5e-7
    assert _interval(theirs, "bwd")[1] < 0.9995 < _interval(ours, "bwd")[0]
    assert errors["liger_mhc_coeffs fwd"] < 1e-5 and errors["liger_mhc_pre fwd"] < 1e-5


@pytest.mark.xdist_group("make_gpu")
def test_hyper_connections_backward_uses_the_converged_matrix(make_gpu_quick):
    """Their forward is SK_20 to fp32 rounding; their backward reuses the final matrix for every
    unrolled step, so it differs from the exact gradient of 20 sweeps by far more than rounding."""
    errors, _ = _peers_step(make_gpu_quick)
    assert errors["hyper_connections triton_sinkhorn fwd"] < 1e-6
    assert errors["hyper_connections triton_sinkhorn bwd"] > 1e-4


def test_absent_peer_is_reported(monkeypatch):
    monkeypatch.setattr(peers, "available", lambda peer: False)
    lines = peers.report(torch.device("cpu"), quick=True)
    assert sum("not installed (pip install -e '.[peers]')" in line for line in lines) == 2
