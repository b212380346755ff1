"""``python -m gpu.bench``: Triton kernels vs torch eager and ``torch.compile`` (GPU only).

DeepSeek-like shapes: tokens 4K-64K, ``n = 4`` streams, ``C`` 1024-7168, bf16. Times by
``triton.testing.do_bench`` (median ms); achieved GB/s counts the bytes each op must
move (inputs read once, outputs written once) and is compared with the device's peak
HBM bandwidth (``--peak-gbs``, default: H100 SXM 3350 GB/s). Sinkhorn is timed forward
+ backward on ``(tokens, 4, 4)`` logits with t = 20; ``kron_apply`` with per-token 2x2
factors; ``screen_batch`` on 2^20 and 2^23 fp32 ``n x n`` matrices; ``token_mix`` on one
sequence of ``tokens`` positions with the power-of-two shifts (bytes: ``x`` read once,
``y`` written once).

Targets (issue 8, H100): ``hc_post_res`` >= 70% of peak bandwidth and >= 3x eager;
``sinkhorn`` fwd+bwd >= 10x eager.

``--layer`` times one whole mHC layer instead, forward + backward, ``F`` a bias-free
``C x C`` linear map: coefficients (``hc_coeffs``), ``SK_20``, ``hc_pre``, ``F``,
``hc_post_res``, as ours (the Triton ops), torch eager (the twins), ``torch.compile`` of
the twins, Liger-Kernel's ``LigerMHC`` and hyper-connections' mHC module (when
installed; they fold the streams into the batch axis). The per-mixer overhead over a
plain residual in a transformer block is ``benchmarks/bench_mixers.py --device cuda``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from . import eager


def _bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def mhc_layer(ops_set, x: torch.Tensor, phi, gates, bias, W: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """One mHC layer on streams ``x (M, n, C)`` with ``F(y) = y W`` from an op set (:mod:`gpu.ops`
    or :mod:`gpu.eager`): ``H_res x + H_post^T F(H_pre x)``."""
    n = x.shape[-2]
    H_pre, H_post, logits = ops_set.hc_coeffs(x, phi, gates, bias)
    H_res = ops_set.sinkhorn(logits.reshape(*logits.shape[:-1], n, n).mT.contiguous(), iters).mT
    return ops_set.hc_post_res(x, ops_set.hc_pre(x, H_pre) @ W, H_res.contiguous(), H_post)


def layer_rows(M: int, C: int, n: int, dev: torch.device, dt: torch.dtype, timer, compile_twins: bool = True):
    """``(implementation, ms)`` for one mHC layer, forward + backward (see the module doc)."""
    from . import ops

    torch.manual_seed(0)
    R = 2 * n + n * n
    x = torch.randn(M, n, C, device=dev, dtype=dt, requires_grad=True)
    W = (torch.randn(C, C, device=dev) / C ** 0.5).to(dt).requires_grad_()
    phi = torch.zeros(n * C, R, device=dev, requires_grad=True)
    gates = torch.full((3,), 0.01, device=dev, requires_grad=True)
    bias = torch.zeros(R, device=dev, requires_grad=True)

    def fb(fn):
        return lambda: fn().float().sum().backward()

    impls = [("ours (Triton ops)", fb(lambda: mhc_layer(ops, x, phi, gates, bias, W))),
             ("torch eager (gpu.eager)", fb(lambda: mhc_layer(eager, x, phi, gates, bias, W)))]
    if compile_twins:
        compiled = torch.compile(lambda: mhc_layer(eager, x, phi, gates, bias, W))
        impls.append(("torch.compile (gpu.eager)", fb(compiled)))
    linear = torch.nn.Linear(C, C, bias=False, device=dev, dtype=dt)
    try:
        from liger_kernel.transformers.mhc import LigerMHC

        liger = LigerMHC(linear, hc=n, c=C, allow_fp32=dt == torch.float32).to(dev)
        impls.append(("Liger-Kernel LigerMHC", fb(lambda: liger(x))))
    except ImportError:
        pass
    try:
        import hyper_connections as hcp

        init, _, _ = hcp.mc_get_init_and_expand_reduce_stream_functions(n)
        theirs = init(dim=C, branch=linear, layer_index=0).to(dev, dt)
        folded = x.detach().transpose(0, 1).reshape(n * M, 1, C).requires_grad_()   # streams in the batch
        impls.append(("hyper-connections mHC", fb(lambda: theirs(folded))))
    except ImportError:
        pass
    return [(name, timer(fn)) for name, fn in impls]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpu.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--widths", type=int, nargs="+", default=[1024, 4096, 7168])
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--peak-gbs", type=float, default=3350.0)
    ap.add_argument("--layer", action="store_true", help="time one whole mHC layer (see the module doc)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu.bench needs a CUDA device (timings under the CPU interpreter mean nothing); "
              "run it on a GPU machine: python -m gpu.bench", file=sys.stderr)
        return 2
    import triton.testing

    from . import ops

    dev, dt, n = torch.device("cuda"), torch.bfloat16, args.streams
    if args.layer:
        print(f"device: {torch.cuda.get_device_name()}, bf16, n = {n}, one mHC layer, forward + backward\n")
        print("| tokens | C | implementation | ms | x ours |")
        print("|---:|---:|---|---:|---:|")
        for M in args.tokens:
            for C in args.widths:
                rows = layer_rows(M, C, n, dev, dt, triton.testing.do_bench)
                for name, ms in rows:
                    print(f"| {M} | {C} | {name} | {ms:.3f} | {ms / rows[0][1]:.2f} |", flush=True)
        return 0
    names = ("hc_coeffs", "hc_pre", "hc_post_res", "sinkhorn", "kron_apply", "screen_batch", "token_mix")
    compiled = {name: torch.compile(getattr(eager, name)) for name in names}
    print(f"device: {torch.cuda.get_device_name()}, bf16, n = {n}\n")
    print("| op | tokens | C | triton (ms) | GB/s | % peak | eager (ms) | x eager | compile (ms) | x compile |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(name, M, C, fn_t, fn_e, fn_c, moved):
        t = triton.testing.do_bench(fn_t)
        e = triton.testing.do_bench(fn_e)
        c = triton.testing.do_bench(fn_c)
        gbs = moved / t / 1e6
        print(f"| {name} | {M} | {C} | {t:.3f} | {gbs:.0f} | {100 * gbs / args.peak_gbs:.0f}% | "
              f"{e:.3f} | {e / t:.1f}x | {c:.3f} | {c / t:.1f}x |", flush=True)

    for M in args.tokens:
        for C in args.widths:
            x = torch.randn(M, n, C, device=dev, dtype=dt)
            f = torch.randn(M, C, device=dev, dtype=dt)
            H = torch.rand(M, n, n, device=dev, dtype=dt)
            hp = torch.rand(M, n, device=dev, dtype=dt)
            row("hc_pre", M, C, lambda: ops.hc_pre(x, hp), lambda: eager.hc_pre(x, hp),
                lambda: compiled["hc_pre"](x, hp), _bytes(x, hp, f))
            row("hc_post_res", M, C, lambda: ops.hc_post_res(x, f, H, hp),
                lambda: eager.hc_post_res(x, f, H, hp), lambda: compiled["hc_post_res"](x, f, H, hp),
                _bytes(x, f, H, hp, x))
            U = [torch.rand(M, 2, 2, device=dev, dtype=dt) for _ in range(n.bit_length() - 1)]
            if 2 ** len(U) == n:
                row("kron_apply", M, C, lambda: ops.kron_apply(U, x), lambda: eager.kron_apply(U, x),
                    lambda: compiled["kron_apply"](U, x), _bytes(x, *U, x))
            shifts = eager.power_of_two_shifts(M)
            seq = x[None, :, 0]                                             # (1, M, C)
            w = torch.softmax(torch.randn(len(shifts), C, device=dev), 0).to(dt)
            row("token_mix", M, C, lambda: ops.token_mix(seq, w, shifts), lambda: eager.token_mix(seq, w, shifts),
                lambda: compiled["token_mix"](seq, w, shifts), 2 * _bytes(seq))
            xg = x.detach().requires_grad_()
            phi = torch.randn(n * C, 2 * n + n * n, device=dev, requires_grad=True)
            gb = [torch.full((3,), 0.01, device=dev, requires_grad=True),
                  torch.zeros(2 * n + n * n, device=dev, requires_grad=True)]

            def coeffs(fn):
                return lambda: torch.autograd.backward([t.sum() for t in fn(xg, phi, *gb)])

            row("hc_coeffs fwd+bwd", M, C, coeffs(ops.hc_coeffs), coeffs(eager.hc_coeffs),
                coeffs(compiled["hc_coeffs"]), 3 * _bytes(x))
        L = torch.randn(M, n, n, device=dev, dtype=dt, requires_grad=True)
        g = torch.randn(M, n, n, device=dev, dtype=dt)

        def fb(fn):
            return lambda: torch.autograd.grad(fn(L, 20), L, g)

        row("sinkhorn fwd+bwd", M, n, fb(ops.sinkhorn), fb(eager.sinkhorn),
            fb(compiled["sinkhorn"]), 3 * _bytes(L))
    for B in (1 << 20, 1 << 23):                      # millions of fp32 n x n matrices
        Ms = torch.rand(B, n, n, device=dev)
        row("screen_batch", B, n, lambda: ops.screen_batch(Ms), lambda: eager.screen_batch(Ms),
            lambda: compiled["screen_batch"](Ms), _bytes(Ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
