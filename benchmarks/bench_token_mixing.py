"""Long-context training throughput and peak memory: BE-HC token mixing vs attention.

    .venv/bin/python benchmarks/bench_token_mixing.py              # N = 1K .. 16K
    .venv/bin/python benchmarks/bench_token_mixing.py --quick      # N = 256 (smoke test)

Three models, identical except the token-mixing sublayer (``reference.models.Model``,
same width, depth, heads, batch, stream mixer, MLPs, embeddings):

* ``behc``: ``kind="tokenmix"``, ``sum_k w_k P_k`` over causal power-of-two shifts, ``O(K N d)``;
* ``sdpa``: ``kind="transformer"``, ``F.scaled_dot_product_attention(is_causal=True)`` with
  PyTorch's default backend choice (flash / memory-efficient kernels: ``O(N d)`` memory);
* ``sdpa-math``: the same call forced to the MATH backend, which materialises the
  ``N x N`` scores, as attention without a fused kernel does (e.g. on a V100 without
  FlashAttention).

One training step = forward, backward, AdamW step on random tokens; throughput is
``batch * N / best step time`` over ``--repeat`` steps after one warm-up. Every
``(model, N)`` runs in its own process, so peak memory is its own: CUDA
``max_memory_allocated``, or on CPU the growth of peak RSS over the process after
building the model. On CPU an address-space limit of ``--mem-limit-gb`` over that
baseline stands in for a device's memory: an allocation beyond it is reported as OOM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from _isolated import ChildFailed, isolated

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {"behc": ("tokenmix", None), "sdpa": ("transformer", None), "sdpa-math": ("transformer", "MATH")}


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def child(args: argparse.Namespace) -> dict:
    """One (model, N) measurement in this process; returns the result row."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from reference.models import Model, ModelConfig

    kind, backend = MODELS[args.model]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = Model(ModelConfig(vocab=256, width=args.width, depth=args.depth, mixer=args.mixer,
                              n_streams=args.streams, kind=kind, heads=args.heads, max_len=args.seq_len,
                              backend=args.backend)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = torch.randint(0, 256, (args.batch, args.seq_len), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

    def step():
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(idx).float().flatten(0, 1), idx.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    row = {"model": args.model, "N": args.seq_len, "device": device.type}
    with torch.no_grad():                               # start thread pools before the baseline
        model(idx[:, :16])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        limit = _vm_bytes() + int(args.mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    ctx = sdpa_kernel(SDPBackend.MATH) if backend == "MATH" else contextlib.nullcontext()
    try:
        with ctx:
            step()
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
    except (torch.OutOfMemoryError, RuntimeError, MemoryError) as exc:
        if "memory" not in str(exc).lower() and not isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            raise
        return {**row, "oom": True}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {**row, "oom": False, "tokens_per_s": args.batch * args.seq_len / min(times),
            "step_s": min(times), "peak_bytes": peak}


def _device_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"


def run_one(args: argparse.Namespace, model: str, N: int) -> dict:
    """:func:`child` in a forked process (its own memory limit and peak); a kill or a memory error is OOM."""
    try:
        return isolated(child, argparse.Namespace(**{**vars(args), "model": model, "seq_len": N}))
    except ChildFailed as exc:
        oom = exc.exitcode < 0 or "memory" in str(exc).lower()
        return {"model": model, "N": N, "oom": oom, "error": None if oom else str(exc)}


def _fmt(r: dict) -> tuple[str, str]:
    if r.get("error"):
        return "error", "error"
    if r["oom"]:
        return "OOM", "OOM"
    return f"{r['tokens_per_s']:,.0f}", f"{r['peak_bytes'] / 2**20:,.0f}"


def table(rows: list[dict], lengths: list[int], models: list[str]) -> str:
    by = {(r["model"], r["N"]): r for r in rows}
    head = ("| N | " + " | ".join(f"{m} tok/s | {m} MiB" for m in models)
            + " | behc / sdpa tok/s | behc / sdpa-math tok/s | behc MiB / N (KiB) |")
    lines = [head, "|" + "---|" * (1 + 2 * len(models) + 3)]
    for N in lengths:
        cells = [c for m in models for c in _fmt(by[(m, N)])]
        b = by[("behc", N)]
        ratios = []
        for peer in ("sdpa", "sdpa-math"):
            p = by.get((peer, N))
            ok = p and not p["oom"] and not p.get("error") and not b["oom"]
            ratios.append(f"{b['tokens_per_s'] / p['tokens_per_s']:.2f}x" if ok else
                          ("attention OOM" if p and p["oom"] else "-"))
        per_token = f"{b['peak_bytes'] / N / 1024:.1f}" if not b["oom"] and not b.get("error") else "-"
        lines.append(f"| {N} | " + " | ".join(cells) + f" | {' | '.join(ratios)} | {per_token} |")
    return "\n".join(lines)


def plot(rows: list[dict], models: list[str], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m in models:
        ok = sorted((r["N"], r) for r in rows if r["model"] == m and not r["oom"] and not r.get("error"))
        if not ok:
            continue
        Ns = [n for n, _ in ok]
        axes[0].plot(Ns, [r["tokens_per_s"] for _, r in ok], "o-", label=m)
        axes[1].plot(Ns, [r["peak_bytes"] / 2**20 for _, r in ok], "o-", label=m)
        for N in sorted({r["N"] for r in rows if r["model"] == m and r["oom"]}):
            axes[1].axvline(N, ls=":", color=axes[1].lines[-1].get_color())
    for ax, label in zip(axes, ("training tokens / s", "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[1].set_title("dotted: OOM at that N")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["behc", "sdpa", "sdpa-math"])
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--mixer", default="behc", help="stream mixer of every layer (reference.mixers)")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--mem-limit-gb", type=float, default=8.0, help="CPU only: stands in for device memory")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--backend", choices=["torch", "triton"], default="torch",
                    help="triton: mixers and token mixing on the gpu kernels (CUDA)")
    ap.add_argument("--quick", action="store_true", help="N = 256, width 32 (smoke test)")
    ap.add_argument("--plot", type=Path, help="write throughput and memory vs N here (PNG)")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args(argv)
    if args.quick:
        args.lengths, args.width, args.repeat = [256], 32, 1
    device = isolated(_device_name)                 # asked in a child: CUDA must not start before the forks
    print(f"device: {device}; width {args.width}, depth {args.depth}, heads {args.heads}, batch {args.batch}, "
          f"stream mixer {args.mixer} (n = {args.streams}), {args.dtype}, torch {torch.__version__}\n")
    rows = []
    for N in args.lengths:
        for m in args.models:
            rows.append(run_one(args, m, N))
            print(json.dumps(rows[-1]), file=sys.stderr)
    if "behc" in args.models:
        print(table(rows, args.lengths, args.models))
    if args.plot:
        plot(rows, args.models, args.plot, f"{device}: width {args.width}, depth {args.depth}, batch {args.batch}")
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
