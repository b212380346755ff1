"""Stability study: the largest learning rate each mixer trains at, versus depth.

    python -m reference.studies.stability --preset cpu --out runs/stability    # 2-core CPU, ~20 min
    python -m reference.studies.stability --preset gpu --out runs/stability    # the GPU command

The mHC paper's claim is about stability, not about the loss at one setting: HC's
composite gain explodes and costs stability, while doubly stochastic mixing keeps gain 1.
So this study varies what hides the effect in the depth sweep. For every mixer x depth
x learning rate it trains the causal transformer with **no gradient clipping** (the
trainer's default of 1.0 hides blow-ups) and classifies the run:

* **diverged**: a non-finite loss, gradient or optimizer step (the trainer's exit 3);
* **loss spike**: a step whose loss exceeds the median of the 10 steps before it by
  more than ``--spike-nats`` (default 0.5 nats);
* **gradient spike**: a step whose total gradient norm exceeds 10x the median of the
  10 steps before it;
* **stable**: not diverged, no loss spike, and a validation loss below the unigram baseline.

The report gives the largest stable learning rate per mixer and depth. Its plots are:
validation loss vs learning rate for each depth, the largest stable learning rate vs
depth, and the composite forward gain of ``prod H_res`` over training for each mixer at
the deepest depth and the largest learning rate. Every run also reports whether the
streams are used (``stream_spread``, ``h_res_ablation`` in its summary). Runs live in
``OUT/runs/<mixer>_L<depth>_lr<lr>/``; finished runs of the same configuration are
reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ..mixers import INITS, MIXERS, SK_ORDERS  # noqa: E402
from ..runs import Config, finished, read_metrics  # noqa: E402
from ..train import DTYPES, run  # noqa: E402
from .markdown import USAGE_HEADER, fmt, usage_cells, write_report  # noqa: E402

WINDOW = 10
GRAD_SPIKE = 10.0
PRESETS = {
    "smoke": dict(mixers=["residual", "kromhc"], depths=[2], lrs=[1e-2, 1e3],
                  base=Config(model="transformer", width=8, heads=2, steps=12, batch_size=4, seq_len=8,
                              task="markov", grad_clip=0.0, eval_batches=1)),
    "cpu": dict(mixers=list(MIXERS), depths=[8, 32], lrs=[1e-2, 3e-2, 1e-1, 3e-1],
                base=Config(model="transformer", width=16, heads=2, steps=150, batch_size=8, seq_len=32,
                            grad_clip=0.0, eval_batches=4)),
    "gpu": dict(mixers=list(MIXERS), depths=[16, 64, 256, 1000], lrs=[3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
                base=Config(model="transformer", width=256, heads=4, steps=3000, batch_size=32, seq_len=256,
                            grad_clip=0.0, dtype="bfloat16", backend="triton", eval_batches=16)),
}


def run_dir(out: Path, mixer: str, depth: int, lr: float) -> Path:
    return out / "runs" / f"{mixer}_L{depth}_lr{lr:g}"


def spikes(values: list[float | None], above) -> int:
    """Steps whose value is ``above(value, median of the WINDOW values before it)``."""
    count = 0
    for t in range(WINDOW, len(values)):
        window = [v for v in values[t - WINDOW:t] if v is not None]
        if values[t] is not None and window and above(values[t], median(window)):
            count += 1
    return count


def classify(summary: dict, records: list[dict], spike_nats: float) -> dict:
    """The stability verdict of one run (see the module doc)."""
    losses = [r["loss"] for r in records]
    grads = [r.get("grad_norm_total") for r in records]
    loss_spikes = spikes(losses, lambda v, m: v > m + spike_nats)
    grad_spikes = spikes(grads, lambda v, m: v > GRAD_SPIKE * m)
    learned = summary["val_loss"] is not None and summary["val_loss"] < summary["unigram_loss"]
    return {"diverged": summary["diverged"], "loss_spikes": loss_spikes, "grad_spikes": grad_spikes,
            "stable": not summary["diverged"] and loss_spikes == 0 and learned}


def study(out: Path, mixers: list[str], depths: list[int], lrs: list[float], base: Config,
          spike_nats: float) -> list[dict]:
    """Train (or reuse) every grid point; one row per run, also appended to ``out/results.jsonl``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("")
    rows = []
    grid = [(d, lr, m) for d in depths for lr in lrs for m in mixers]
    for depth, lr, mixer in tqdm(grid, desc="stability", disable=not base.progress):
        cfg = replace(base, mixer=mixer, depth=depth, lr=lr, out=str(run_dir(out, mixer, depth, lr)))
        summary = finished(cfg) or run(cfg)
        records = read_metrics(cfg.out)
        row = {"mixer": mixer, "depth": depth, "lr": lr, "final_loss": summary["final_loss"],
               "val_loss": summary["val_loss"], "unigram_loss": summary["unigram_loss"],
               "gain_forward": summary["gain_forward"], "stream_spread": summary.get("stream_spread"),
               "h_res_ablation": summary.get("h_res_ablation"), "divergence": summary.get("divergence"),
               **classify(summary, records, spike_nats)}
        rows.append(row)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    return rows


def max_stable(rows: list[dict]) -> dict[tuple[str, int], float | None]:
    """Largest learning rate at which (mixer, depth) trained stably; None when none did."""
    best: dict[tuple[str, int], float | None] = {}
    for r in rows:
        key = (r["mixer"], r["depth"])
        best.setdefault(key, None)
        if r["stable"] and (best[key] is None or r["lr"] > best[key]):
            best[key] = r["lr"]
    return best


def plot(out: Path, rows: list[dict]) -> list[str]:
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    names = []
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 4), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for m in mixers:
            pts = sorted((r["lr"], r["val_loss"]) for r in rows
                         if r["mixer"] == m and r["depth"] == depth and r["val_loss"] is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m)
        ax.axhline(rows[0]["unigram_loss"], color="k", ls="--", lw=1, label="unigram")
        ax.set(xscale="log", xlabel="learning rate", ylabel="validation loss (nats)", title=f"depth {depth}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_vs_lr.png", dpi=120)
    plt.close(fig)
    names.append("loss_vs_lr.png")

    best = max_stable(rows)
    floor = min(r["lr"] for r in rows) / 2                  # where "no stable lr in the grid" is drawn
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(mixers):
        shift = 1 + 0.04 * (i - len(mixers) / 2)              # side by side: equal values stay visible
        pts = [(d * shift, best[m, d] or floor) for d in depths]
        ax.plot(*zip(*pts), marker="o", label=m, color=f"C{i}", lw=1)
        ax.scatter([d for d, v in pts if v == floor], [floor] * sum(v == floor for _, v in pts), marker="x",
                   s=80, color=f"C{i}")
    ax.axhline(floor, color="k", lw=0.5, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="depth (layers)", ylabel="largest stable learning rate",
           title=f"Stability vs depth (x on the dotted line: none stable, lr >= {2 * floor:g})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "max_stable_lr.png", dpi=120)
    plt.close(fig)
    names.append("max_stable_lr.png")

    deepest, top = depths[-1], max(r["lr"] for r in rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in mixers:
        recs = read_metrics(run_dir(out, m, deepest, top))
        pts = [(r["step"], r["gain_forward"]) for r in recs if r.get("gain_forward")]
        if pts:
            ax.plot(*zip(*pts), label=m, lw=1)
    ax.set(yscale="log", xlabel="step", ylabel="composite forward gain of prod H_res",
           title=f"Gain over training, depth {deepest}, lr {top:g}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gain_over_training.png", dpi=120)
    plt.close(fig)
    names.append("gain_over_training.png")
    return names


def report(out: Path, rows: list[dict], plots: list[str], command: str, spike_nats: float) -> Path:
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    best = max_stable(rows)
    lines = ["# Stability study", "", f"Command: `{command}`", "",
             f"No gradient clipping. Stable = no divergence, no loss spike (> {spike_nats:g} nats above the "
             f"median of the previous {WINDOW} steps), validation loss below unigram ({rows[0]['unigram_loss']:.4f}).",
             "", "## Largest stable learning rate", "",
             "| mixer | " + " | ".join(f"L = {d}" for d in depths) + " |",
             "|---|" + "---:|" * len(depths)]
    for m in mixers:
        lines.append(f"| {m} | " + " | ".join(fmt(best.get((m, d)), "g") for d in depths) + " |")
    lines += ["", "## Every run", "",
              f"| mixer | depth | lr | val loss | gain fwd | loss spikes | grad spikes | diverged | stable "
              f"| {USAGE_HEADER} |",
              "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mixer']} | {r['depth']} | {r['lr']:g} | {fmt(r['val_loss'])} | "
                     f"{fmt(r['gain_forward'], '.3g')} | {r['loss_spikes']} | {r['grad_spikes']} | "
                     f"{'**yes**' if r['diverged'] else 'no'} | {'yes' if r['stable'] else 'no'} | "
                     f"{usage_cells(r)} |")
    return write_report(out, lines, plots)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reference.studies.stability", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default=None, help="default runs/stability-<preset>")
    ap.add_argument("--mixers", nargs="+", choices=list(MIXERS), help="override the preset's mixers")
    ap.add_argument("--depths", nargs="+", type=int, help="override the preset's depths")
    ap.add_argument("--lrs", nargs="+", type=float, help="override the preset's learning rates")
    ap.add_argument("--steps", type=int, help="override the preset's steps")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="override the preset's dtype")
    ap.add_argument("--init", choices=INITS, help="override the mixers' initialisation (default reference)")
    ap.add_argument("--sk-order", choices=SK_ORDERS, help="override mhc's Sinkhorn order (default cols_rows)")
    ap.add_argument("--spike-nats", type=float, default=0.5)
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset]
    base = replace(preset["base"], progress=args.progress)
    for name in ("steps", "dtype", "init", "sk_order"):
        if getattr(args, name) is not None:
            base = replace(base, **{name: getattr(args, name)})
    out = Path(args.out or f"runs/stability-{args.preset}")
    rows = study(out, args.mixers or preset["mixers"], args.depths or preset["depths"],
                 args.lrs or preset["lrs"], base, args.spike_nats)
    command = "python -m reference.studies.stability " + " ".join(argv if argv is not None else sys.argv[1:])
    path = report(out, rows, plot(out, rows), command, args.spike_nats)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
