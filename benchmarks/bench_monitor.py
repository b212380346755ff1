"""The health monitor's cost in forward passes, on birkhoff's numpy path and on its compiled kernels.

    python benchmarks/bench_monitor.py            # mHC and KromHC stacks, L = 32 and 128
    python benchmarks/bench_monitor.py --quick    # L = 8, 2 x 16 tokens

``reference.monitor(model, x)`` runs the model once, each hyper-connected layer once more with
``H_res = 0``, and certifies the composite ``H_res`` products (``birkhoff.certify_product``) at
depths 1, 2, 4, ... (every depth up to 32). Model: the README's stack of pre-norm MLPs (width 32,
n = 4 streams), input (8, 64) tokens; time: the best of 4 monitor calls (the first warms up), against the
best of 5 forward passes without gradients and of 3 training steps (forward, backward, AdamW). The last
three columns are the training hook as the trainer runs it: a training step inside
``reference.Monitor.observe`` (which reads the step's own passes instead of running one), what that adds
to the step, in forward passes, and its share of training time at the default interval (one observed
step per 200). ``BIRKHOFF_COMPILED=0`` / ``1`` picks birkhoff's path.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn

from _timing import best_time, on_both_paths, warm
from reference import HyperConnected, Monitor, expand_streams, monitor


def stack(mixer: str, L: int, C: int = 32, n: int = 4) -> nn.Module:
    def mlp() -> nn.Module:
        return nn.Sequential(nn.LayerNorm(C), nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))
    return nn.Sequential(*(HyperConnected(mlp(), mixer, n, C, layer_index=i) for i in range(L)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    warm("certify")
    print("| mixer | L | forward (ms) | training step (ms) | monitor, numpy path (ms) | in forwards | monitor, compiled (ms) "
          "| in forwards | step in `Monitor.observe` (ms) | added, in forwards | observed every 200 steps: share of "
          "training time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mixer, L in ([("mhc", 8)] if args.quick else [("mhc", 32), ("kromhc", 32), ("mhc", 128)]):
        model = stack(mixer, L)
        x = expand_streams(torch.randn(*((2, 16) if args.quick else (8, 64)), 32), 4)
        with torch.no_grad():
            t_fwd, _ = best_time(lambda: model(x), 5)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        hook = Monitor(model, every=1)

        def observed() -> None:
            with hook.observe(0):
                step()
        t_step, _ = best_time(step, 3)
        times = [t for t, _ in on_both_paths(lambda: monitor(model, x), 4)]
        t_obs, _ = best_time(observed, 4)
        added = max(t_obs - t_step, 0.0)
        cells = [f"{t * 1e3:.0f} | {t / t_fwd:.1f}" for t in times]
        share = added / (added + 200 * t_step)            # one observed step per 200
        print(f"| {mixer} | {L} | {t_fwd * 1e3:.1f} | {t_step * 1e3:.1f} | " + " | ".join(cells)
              + f" | {t_obs * 1e3:.1f} | {added / t_fwd:.1f} | {share:.2%} |")


if __name__ == "__main__":
    main()
