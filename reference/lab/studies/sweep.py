"""Depth x mixer sweep over seeds: ``results.jsonl``, PNG plots and ``report.md``.

    python -m reference.lab.studies.sweep --preset demo --out runs/demo         # a few minutes on 2 cores
    python -m reference.lab.studies.sweep --preset paper --out runs/paper       # depths 16, 64, 256; 3 seeds
    python -m reference.lab.studies.sweep --preset quality --out runs/quality   # the papers' schedule, L = 8, 3 seeds
    python -m reference.lab.studies.sweep --preset gpu --out runs/gpu           # mHC-lite's small nanoGPT run (GPU)
    python -m reference.lab.studies.sweep --preset gpu-smoke --out runs/gpu-smoke   # the GPU path in minutes

Every grid point is one ``reference.lab.train.run`` per seed in
``OUT/runs/<mixer>_L<depth>_s<seed>/``; a table cell is ``mean +- spread`` over the
seeds, and two mixers are said to differ only when each has two or more seeds and their
seed ranges do not overlap (:mod:`reference.lab.studies.seeds`). Plots: final loss vs depth per mixer (with the
unigram baseline; bars: the seed range), composite forward gain of ``prod H_res`` vs
depth (log scale), and loss curves at the deepest depth (seed 0).

Presets: ``demo`` and ``paper`` are clipped constant-lr runs of the pre-norm MLP stack
(the depth question); ``quality`` and ``gpu`` use the papers' schedule
(:mod:`reference.lab.schedule`: warmup, cosine to lr/10, weight decay 0.1, clip 1.0,
``beta2`` 0.95) for the quality comparisons. ``gpu`` mirrors mHC-lite's smallest public
run (github FFTYYY/mhc-lite, ``config/small_model.py`` + ``config/train_fineweb_edu.py``:
6 layers x 512, 8 heads, context 1024, lr 1e-3, 10 000 steps, 200 warmup, bf16) with
every mixer and 3 seeds, on the bundled character corpus instead of FineWeb-Edu and
with one batch of 16 sequences per step instead of their 8 GPUs x 8 accumulation steps.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from birkhoff.cli import OneLineParser  # noqa: E402

from ..._gpu import BACKENDS  # noqa: E402
from ...mixers import INITS, MIXERS, stream_mixers  # noqa: E402
from ...models import KINDS  # noqa: E402
from ..runs import DTYPES, Config, read_metrics  # noqa: E402
from ..train import run_once  # noqa: E402
from .markdown import USAGE_HEADER, fmt, save_figure, usage_cells, write_report  # noqa: E402
from .seeds import RULE, differs, fmt_spread, spread  # noqa: E402
MLP = Config(width=16, n_streams=4, steps=150, batch_size=4, seq_len=16, lr=3e-3)
QUALITY = Config(kind="transformer", width=16, heads=2, steps=2000, batch_size=8, seq_len=32, lr=1e-2,
                 schedule="paper", eval_batches=8)
GPU = Config(kind="transformer", width=512, heads=8, steps=10_000, batch_size=16, seq_len=1024, lr=1e-3,
             schedule="paper", dtype="bfloat16", backend="triton", eval_batches=16, ckpt_every=1000)
PRESETS = {
    "demo": dict(depths=[2, 8, 32], seeds=1, base=Config(width=32, n_streams=4, steps=80, batch_size=8,
                                                           seq_len=32, lr=3e-3)),
    "paper": dict(depths=[16, 64, 256], seeds=3, base=MLP),
    "quality": dict(depths=[8], seeds=3, base=QUALITY),
    "gpu": dict(depths=[6], seeds=3, base=GPU),
    "gpu-smoke": dict(depths=[6], seeds=1, base=replace(GPU, width=128, heads=4, seq_len=256, batch_size=8,
                                                        eval_batches=2, ckpt_every=0, plots=False).with_steps(40)),
    "tiny": dict(depths=[2, 4], seeds=1, base=Config(width=8, n_streams=4, steps=6, batch_size=4,
                                                     seq_len=8, task="markov", eval_batches=1, plots=False)),
}   # the smoke presets (gpu-smoke, tiny) draw the study's plots, not each run's curves.png


def sweep(out: Path, mixers: list[str], depths: list[int], base: Config, seeds: int = 1) -> list[dict]:
    """Run the grid (every mixer x depth x seed), write each summary to ``out/results.jsonl``; returns them.

    A grid point whose run folder holds the same configuration finished is read back,
    unfinished it continues from its checkpoint (:func:`reference.lab.train.run_once`).
    """
    out.mkdir(parents=True, exist_ok=True)
    results = []
    (out / "results.jsonl").write_text("")
    grid = [(d, m, s) for d in depths for m in mixers for s in range(seeds)]
    for depth, mixer, seed in tqdm(grid, desc="sweep", disable=not base.progress):
        cfg = replace(base, mixer=mixer, depth=depth, seed=seed, out=str(run_dir(out, mixer, depth, seed)))
        summary = {**run_once(cfg), "seed": seed}
        results.append(summary)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(summary) + "\n")
    return results


def run_dir(out: Path, mixer: str, depth: int, seed: int = 0) -> Path:
    """Where the sweep in ``out`` keeps the run of ``mixer`` at ``depth`` with ``seed``."""
    return out / "runs" / f"{mixer}_L{depth}_s{seed}"


def points(results: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """The summaries of each (mixer, depth), one per seed."""
    out: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        out.setdefault((r["mixer"], r["depth"]), []).append(r)
    return out


def _curve(out: Path, mixer: str, depth: int) -> tuple[list[int], list[float]]:
    steps = [(r["step"], r["loss"]) for r in read_metrics(run_dir(out, mixer, depth)) if r["loss"] is not None]
    return [p[0] for p in steps], [p[1] for p in steps]


def plot(out: Path, results: list[dict]) -> list[str]:
    """Write the three PNGs; returns their file names."""
    mixers = list(dict.fromkeys(r["mixer"] for r in results))
    depths = sorted({r["depth"] for r in results})
    by = points(results)
    names = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in mixers:
        pts = [(d, spread(r["final_loss"] for r in by[m, d] if not r["diverged"])) for d in depths if (m, d) in by]
        pts = [(d, s) for d, s in pts if s is not None]
        if pts:
            ax.errorbar([d for d, _ in pts], [s.mean for _, s in pts], marker="o", capsize=2, label=m,
                        yerr=[[s.mean - s.lo for _, s in pts], [s.hi - s.mean for _, s in pts]])
    ax.axhline(results[0]["unigram_loss"], color="k", ls="--", lw=1, label="unigram baseline")
    ax.set(xscale="log", xlabel="depth (layers)", ylabel="final train loss (nats), seed range",
           title="Final loss vs depth")
    ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "loss_vs_depth.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in mixers:
        pts = [(d, spread(r["gain_forward"] for r in by[m, d])) for d in depths if (m, d) in by]
        pts = [(d, s) for d, s in pts if s is not None]
        if pts:
            ax.errorbar([d for d, _ in pts], [s.mean for _, s in pts], marker="o", capsize=2, label=m,
                        yerr=[[s.mean - s.lo for _, s in pts], [s.hi - s.mean for _, s in pts]])
    ax.set(xscale="log", yscale="log", xlabel="depth (layers)",
           ylabel="composite forward gain of prod H_res", title="Composite Amax gain vs depth")
    ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "gain_vs_depth.png"))

    deepest = depths[-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in mixers:
        if (m, deepest) in by:
            ax.plot(*_curve(out, m, deepest), label=m, lw=1)
    ax.axhline(results[0]["unigram_loss"], color="k", ls="--", lw=1, label="unigram baseline")
    ax.set(xlabel="step", ylabel="train loss (nats)", title=f"Loss curves at depth {deepest} (seed 0)")
    ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "loss_curves.png"))
    return names


USED = 1e-3        # nats: an ablation that moves the validation loss less than this changes nothing


def _usage(results: list[dict]) -> str:
    """What the constrained mixers use at this scale: their streams (the ``J/n`` ablation), a learned
    ``H_res`` (the ``I`` ablation), and whether their validation losses differ beyond the seed spread."""
    rows = [r for r in results if r["mixer"] in stream_mixers() and r["mixer"] != "hc" and r["h_res_ablation"]]
    if not rows:
        return "No constrained mixer finished with an ablation."
    averaging = max(abs(r["h_res_ablation"]["average"]) for r in rows)
    identity = max(abs(r["h_res_ablation"]["identity"]) for r in rows)
    by = {key: spread(r["val_loss"] for r in rs) for key, rs in points(rows).items()}
    depths = sorted({d for _, d in by})
    gap = {d: max(s.mean for (m, dd), s in by.items() if dd == d and s) - min(s.mean for (m, dd), s in by.items()
                                                                          if dd == d and s) for d in depths}
    seeds = min(s.n for s in by.values() if s)
    apart = [(d, a, b) for d in depths for (a, da), sa in by.items() for (b, db), sb in by.items()
             if da == db == d and a < b and differs(sa, sb)]
    streams = (f"Averaging the streams (every H_res = J/n) costs up to {averaging:.1e} nats, so the streams "
               + ("carry different information" if averaging >= USED else "are not used") + "; ")
    h_res = (f"setting every H_res = I changes the loss by at most {identity:.1e} nats, so H_res "
             + ("has moved away from the identity" if identity >= USED else "has stayed at the identity") + ". ")
    gaps = ", ".join(f"{v:.1e} at L = {d}" for d, v in gap.items())
    if averaging < USED and identity < USED:
        verdict = (f"The constrained mixers' mean validation losses differ by {gaps}; with H_res unused those "
                   "differences are not an effect of their H_res, so they cannot be told apart at this scale: "
                   "the learning-rate x depth stability study is where they should separate.")
    elif seeds < 2:
        verdict = (f"The constrained mixers' validation losses differ by {gaps}, from one seed per point: "
                   "whether that exceeds the seed spread is not known (run --seeds 3).")
    elif apart:
        pairs = "; ".join(f"{a} vs {b} at L = {d}" for d, a, b in apart)
        verdict = (f"The constrained mixers' mean validation losses differ by {gaps}; beyond the seed spread "
                   f"({seeds} seeds, ranges that do not overlap) they can be told apart: {pairs}.")
    else:
        verdict = (f"The constrained mixers' mean validation losses differ by {gaps}, within the seed spread "
                   f"({seeds} seeds: every pair of ranges overlaps): they cannot be told apart.")
    return streams + h_res + verdict


def report(out: Path, results: list[dict], plots: list[str], command: str) -> Path:
    """``report.md``: the table, stream usage, the certificates of the composite maps and the plots."""
    r0 = results[0]
    seeds = max(r.get("seed", 0) for r in results) + 1
    lines = [
        "# Depth sweep", "",
        f"Command: `{command}`", "",
        f"Task `{r0['task']}`, model `{r0['model']}`, width {r0['width']}, {r0['steps']} steps, seeds 0..{seeds - 1}; "
        f"unigram baseline {r0['unigram_loss']:.4f} nats. {RULE} Gains are those of the composite map "
        "`prod_l H_res^(l)` over all layers (max over probe tokens, float64; the range over seeds); the "
        "certified interval is `birkhoff.certify_product` on probe token 0's chain, seed 0. Stream usage "
        "(seed 0): spread = max over layers of `||x - mean_j x_j|| / ||x||`; the ablation columns are the "
        "change of validation loss with every `H_res` replaced by `I` or by `J/n`.", "",
        _usage(results), "",
        "| mixer | depth | final loss | val loss | gain fwd | gain bwd | max DS residual "
        f"| certified gain fwd | exact DS | {USAGE_HEADER} | mixing params / layer | diverged |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for (mixer, depth), rs in points(results).items():
        r = rs[0]
        c = r["certificate"]
        certified = f"[{fmt(c['gain_forward'][0], '.9g')}, {fmt(c['gain_forward'][1], '.9g')}]" if c else "-"
        gains = [spread(x[k] for x in rs) for k in ("gain_forward", "gain_backward")]
        lines.append(
            f"| {mixer} | {depth} | {fmt_spread(spread(x['final_loss'] for x in rs))} | "
            f"{fmt_spread(spread(x['val_loss'] for x in rs))} | "
            + " | ".join("-" if g is None else f"{g.lo:.4g}" if f"{g.lo:.4g}" == f"{g.hi:.4g}"
                         else f"{g.lo:.4g}..{g.hi:.4g}" for g in gains)
            + f" | {fmt(max((x['ds_residual'] for x in rs if x['ds_residual'] is not None), default=None), '.2e')} | "
            f"{certified} | {'yes' if c and c['exact'] else 'no'} | {usage_cells(r)} | "
            f"{r['mixing_params_per_layer']} | {sum(x['diverged'] for x in rs)}/{len(rs)} |")
    return write_report(out, lines, plots)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.lab.studies.sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--out", default=None, help="default runs/<preset>")
    ap.add_argument("--mixers", nargs="+", choices=list(MIXERS), default=list(MIXERS))
    ap.add_argument("--depths", nargs="+", type=int, help="override the preset's depths")
    ap.add_argument("--seeds", type=int, help="override the preset's number of seeds")
    ap.add_argument("--steps", type=int, help="override the preset's steps")
    ap.add_argument("--lr", type=float, help="override the preset's (peak) learning rate")
    ap.add_argument("--task", choices=["charlm", "markov"], help="override the preset's task")
    ap.add_argument("--model", dest="kind", choices=KINDS, help="override the preset's model")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="override the preset's dtype")
    ap.add_argument("--init", choices=INITS, help="override the mixers' initialisation (default reference)")
    ap.add_argument("--backend", choices=BACKENDS, help="override the preset's backend")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace grid points whose run folder holds a run of other settings")
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.seeds is not None and args.seeds < 1:
        ap.error("--seeds must be >= 1")
    out = Path(args.out or f"runs/{args.preset}")
    try:                                # a bad value is refused by Config, as the trainer's
        base = replace(preset["base"], progress=args.progress, overwrite=args.overwrite)
        if args.steps is not None:
            base = base.with_steps(args.steps)
        base = replace(base, **{name: getattr(args, name) for name in ("lr", "task", "kind", "dtype", "backend", "init")
                                if getattr(args, name) is not None})
        results = sweep(out, args.mixers, args.depths or preset["depths"], base, args.seeds or preset["seeds"])
    except (ValueError, OSError) as exc:
        print(f"reference.lab.studies.sweep: error: {exc}", file=sys.stderr)
        return 2
    path = report(out, results, plot(out, results),
                  "python -m reference.lab.studies.sweep " + " ".join(argv if argv is not None else sys.argv[1:]))
    pngs = ", ".join(str(out / p) for p in ("loss_vs_depth.png", "gain_vs_depth.png", "loss_curves.png"))
    print(f"report: {path}\nplots:  {pngs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
