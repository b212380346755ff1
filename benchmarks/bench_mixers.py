"""Mixer step time and peak memory: ours vs the `hyper-connections` package, and overhead over residual.

Same model for everyone: a stack of ``--depth`` pre-norm blocks of width ``C``, each
sublayer wrapped by the mixer: ``--block mlp`` (``reference.models.MLPBlock``) or
``--block transformer`` (attention + MLP, two mixed sublayers per layer, as in HC/mHC);
one training step = forward + cross-entropy-free ``sum`` loss + backward on
``batch x seq`` tokens. Each configuration runs in its own process, forked from this one after
torch is imported (a child starts in milliseconds), so that peak RSS (``ru_maxrss``) is its
own. ``--device cuda`` times on the GPU (synchronised; peak memory is then
``torch.cuda.max_memory_allocated``), with ``--backend triton`` for our kernels and
``--dtype bfloat16`` autocast; the overhead column is each mixer's step time
over the plain residual's (DeepSeek report 6.7 % for mHC at n = 4).
Peers: ``hyper_connections`` HC (``get_init_and_expand_reduce_stream_functions``) and
mHC (``mc_get_init_and_expand_reduce_stream_functions``, log-domain Sinkhorn, 20 its).
Note: the peer's mHC is a lighter variant than DeepSeek's (its dynamic part is not
the ``nC x (n^2 + 2n)`` projection), so its parameter count per layer is far smaller.

    python benchmarks/bench_mixers.py            # depth 16, C 256, n 4, 8 x 64 tokens
    python benchmarks/bench_mixers.py --quick
    python benchmarks/bench_mixers.py --device cuda --backend triton --dtype bfloat16 --block transformer \
        --depth 8 --width 1024 --batch 8 --seq 2048            # the GPU overhead table
"""

from __future__ import annotations

import argparse
import resource
import time

from _isolated import isolated

PEERS = ["peer:HC", "peer:mHC"]


def worker(impl: str, depth: int, C: int, n: int, batch: int, seq: int, steps: int, device: str = "cpu",
           backend: str = "torch", block: str = "mlp", dtype: str = "float32") -> dict:
    import torch
    import torch.nn as nn

    from reference.hyper import stream_functions
    from reference.models import AttentionBlock, MLPBlock

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dev = torch.device(device)
    per_layer = [lambda: AttentionBlock(C, max(1, C // 64)), lambda: MLPBlock(C)] if block == "transformer" \
        else [lambda: MLPBlock(C)]
    blocks = nn.ModuleList([make() for _ in range(depth) for make in per_layer]).to(dev)
    x = torch.randn(batch, seq, C, device=dev)
    if impl.startswith("peer:"):
        import hyper_connections as hcp
        factory = (hcp.get_init_and_expand_reduce_stream_functions if impl == "peer:HC"
                   else hcp.mc_get_init_and_expand_reduce_stream_functions)
        kwargs = {} if impl == "peer:HC" else {"log_domain_sinkhorn": True}
        init, expand, reduce = factory(n)
        layers = nn.ModuleList([init(dim=C, branch=b, layer_index=i, **kwargs) for i, b in enumerate(blocks)])
    else:                                   # ours through the same (init, expand, reduce) shape
        init, expand, reduce = stream_functions(impl, n, C, backend=backend)
        layers = nn.ModuleList([init(b, i) for i, b in enumerate(blocks)])
    layers.to(dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            r = expand(x)
            for layer in layers:
                r = layer(r)
            loss = reduce(r).float().sum()
        loss.backward()
    params = sum(p.numel() for p in layers.parameters()) - sum(p.numel() for p in blocks.parameters())
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"impl": impl, "step_ms": 1e3 * times[len(times) // 2], "peak_rss_mb": peak,
            "mixing_params": params // depth}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--backend", choices=["torch", "triton"], default="torch", help="our mixers' ops")
    ap.add_argument("--block", choices=["mlp", "transformer"], default="mlp")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args()
    if args.quick:
        args.depth, args.width, args.batch, args.seq, args.steps = 4, 32, 2, 16, 3
    shape = (args.depth, args.width, args.streams, args.batch, args.seq, args.steps)
    setting = {"device": args.device, "backend": args.backend, "block": args.block, "dtype": args.dtype}
    from reference.mixers import MIXERS             # imports torch: every child inherits it

    rows = [isolated(worker, impl, *shape, **setting)
            for impl in [*MIXERS, *PEERS]]          # residual first: the baseline of the overhead column
    base = rows[0]["step_ms"]
    print(f"depth {args.depth} ({args.block} blocks), C = {args.width}, n = {args.streams}, {args.batch} x {args.seq} "
          f"tokens, {args.device} ({'1 thread' if args.device == 'cpu' else 'synchronised'}), {args.dtype}, "
          f"our backend {args.backend}, median of {args.steps} steps (forward + backward)\n")
    memory = "peak RSS (MB)" if args.device == "cpu" else "peak CUDA memory (MiB)"
    print(f"| implementation | step (ms) | overhead vs residual | {memory} | mixing params / layer |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['impl']} | {r['step_ms']:.1f} | {100 * (r['step_ms'] / base - 1):+.1f}% | "
              f"{r['peak_rss_mb']:.0f} | {r['mixing_params']} |")


if __name__ == "__main__":
    main()
