"""python -m gpu.check --quick passes (every kernel vs the reference); gpu.bench refuses a CPU."""

import subprocess
import sys

import torch


def test_gpu_check_quick_all_pass():
    out = subprocess.run([sys.executable, "-m", "gpu.check", "--quick"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "all PASS" in out.stdout and out.stdout.count("PASS") > 100
    for kernel in ("sinkhorn fwd", "sinkhorn bwd", "hc_pre fwd", "hc_pre bwd",
                   "hc_post_res fwd", "hc_post_res bwd", "kron_apply fwd", "kron_apply bwd",
                   "bvn_combine fwd", "bvn_combine bwd", "certify_batch"):
        assert kernel in out.stdout


def test_gpu_bench_needs_cuda():
    out = subprocess.run([sys.executable, "-m", "gpu.bench", "--tokens", "4096", "--widths", "1024"],
                         capture_output=True, text=True, timeout=600)
    if torch.cuda.is_available():
        assert out.returncode == 0
    else:
        assert out.returncode == 2 and "CUDA" in out.stderr
