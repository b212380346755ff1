"""python -m gpu.check --quick passes (every kernel vs the reference); gpu.bench refuses a CPU."""

import pytest
import torch

pytestmark = pytest.mark.cuda


@pytest.mark.xdist_group("make_gpu")            # one worker runs them, after one make gpu --quick
def test_gpu_check_quick_all_pass(make_gpu_quick):
    """``python -m gpu.check --quick``, run as the ``check`` step of ``make gpu --quick``."""
    text = make_gpu_quick["text"]["check"]
    assert "`gpu.check --quick`: exit 0" in text.replace("python -m ", ""), text[-3000:]
    assert "all PASS" in text
    for kernel in ("sinkhorn fwd", "sinkhorn bwd", "hc_coeffs fwd", "hc_coeffs bwd", "hc_pre fwd", "hc_pre bwd",
                   "hc_post_res fwd", "hc_post_res bwd", "kron_apply fwd", "kron_apply bwd",
                   "bvn_combine fwd", "bvn_combine bwd", "screen_batch", "token_mix fwd", "token_mix bwd"):
        for dtype in ("float32", "bfloat16"):          # every kernel in both dtypes, each row a PASS
            rows = [line for line in text.splitlines() if line.startswith(kernel) and f" {dtype} " in line]
            assert rows and all(line.endswith("PASS") for line in rows), (kernel, dtype)


@pytest.mark.xdist_group("make_gpu")            # one worker runs them, after one make gpu --quick
def test_make_gpu_runs_every_step_it_can(make_gpu_quick):
    """``make gpu`` (``benchmarks/gpu_all.py``) runs to completion without a GPU: every step that can
    run here exits 0 and writes its table; the CUDA-only ones are listed as skipped with the reason."""
    assert make_gpu_quick["rc"] == 0, make_gpu_quick["stdout"][-3000:]
    text = make_gpu_quick["text"]
    summary = text["summary"]
    cuda = torch.cuda.is_available()
    ran = ("check", "peers", "overhead") + (("study",) if cuda else ())
    for step in ran:
        assert f"| {step} | [{step}.md]({step}.md) | 0 |" in summary, summary
    assert "| kromhc |" in text["overhead"] and "overhead vs residual" in text["overhead"]
    if cuda:
        assert "exit 0" in text["study"] and (make_gpu_quick["out"] / "study" / "report.md").exists()
    else:
        for step in ("tests", "bench", "layer", "study"):
            assert f"| {step} | skipped: needs CUDA" in summary


def test_gpu_bench_needs_cuda(capsys):
    from gpu.bench import main

    code = main(["--tokens", "4096", "--widths", "1024"])
    if torch.cuda.is_available():
        assert code == 0
    else:
        assert code == 2 and "CUDA" in capsys.readouterr().err


def test_gpu_bench_layer_rows_run_on_cpu():
    """The whole-layer rows of ``gpu.bench --layer`` run every implementation (the CPU interpreter
    here: a smoke test, the timings mean nothing), and ours equals the eager twin."""
    import os
    import time

    os.environ.setdefault("TRITON_INTERPRET", "1")
    from gpu import eager, ops
    from gpu.bench import layer_rows, mhc_layer

    def timer(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    rows = layer_rows(6, 8, 4, torch.device("cpu"), torch.float32, timer, compile_twins=False)
    assert [name for name, _ in rows] == ["ours (Triton ops)", "torch eager (gpu.eager)", "Liger-Kernel LigerMHC",
                                          "hyper-connections mHC"]
    torch.manual_seed(1)
    x, W = torch.randn(5, 4, 8), torch.randn(8, 8)
    phi, gates, bias = torch.randn(32, 24) / 6, torch.rand(3), torch.randn(24)
    torch.testing.assert_close(mhc_layer(ops, x, phi, gates, bias, W), mhc_layer(eager, x, phi, gates, bias, W),
                               atol=1e-5, rtol=1e-5)
