"""Stability study: the largest learning rate each mixer trains at, versus depth.

    python -m reference.studies.stability --preset cpu --out runs/stability    # 2-core CPU, ~1 h
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

A preset is a list of named grids (``--grids`` runs some of them). The ``cpu`` preset:
``main`` (every mixer, depths 8 and 32, four learning rates), ``bf16`` (the same at
depth 32 in bfloat16 autocast), ``no-norm`` (depth 8 without the sublayers' pre-norm,
the other thing that hides instability), ``deep`` (ReZero and plain residual at 1000
layers, the BE-HC paper's claim) and ``deep-behc`` (BE-HC at 1000 layers, one lr).

The report gives the largest stable learning rate per mixer and setting. Its plots are:
validation loss vs learning rate per setting, the largest stable learning rate vs depth,
and the composite forward gain of ``prod H_res`` over training for each mixer at the
main grid's deepest depth and largest learning rate. Every run also reports whether the
streams are used (``stream_spread``, ``h_res_ablation``, ``h_res_off_identity``). Runs
live in ``OUT/runs/<mixer>_L<depth>_lr<lr>[_<variant>]/``; finished runs of the same
configuration are reused (unfinished ones continue from their checkpoint), so grids can
run in separate processes and a last full command collects them; a folder that holds a
run of other settings stops the study unless ``--overwrite`` is given.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from birkhoff.cli import OneLineParser  # noqa: E402

from ..mixers import INITS, MIXERS, SK_ORDERS  # noqa: E402
from ..norms import NORMS  # noqa: E402
from ..runs import Config, read_metrics  # noqa: E402
from ..train import DTYPES, run_once  # noqa: E402
from .markdown import USAGE_HEADER, fmt, save_figure, usage_cells, write_report  # noqa: E402

WINDOW = 10
GRAD_SPIKE = 10.0
SMOKE = Config(model="transformer", width=8, heads=2, steps=12, batch_size=4, seq_len=8, task="markov",
               grad_clip=0.0, eval_batches=1)
CPU = Config(model="transformer", width=16, heads=2, steps=150, batch_size=8, seq_len=32, grad_clip=0.0,
             eval_batches=4)
GPU = Config(model="transformer", width=256, heads=4, steps=3000, batch_size=32, seq_len=256, grad_clip=0.0,
             dtype="bfloat16", backend="triton", eval_batches=16)
# A preset is a list of grids; a grid is mixers x depths x learning rates on one base config.
PRESETS = {
    "smoke": [dict(name="main", mixers=["residual", "kromhc"], depths=[2], lrs=[1e-2, 1e3], base=SMOKE),
              dict(name="bf16", mixers=["kromhc"], depths=[2], lrs=[1e-2], base=replace(SMOKE, dtype="bfloat16")),
              dict(name="no-norm", mixers=["kromhc"], depths=[2], lrs=[1e-2], base=replace(SMOKE, norm="none"))],
    "cpu": [dict(name="main", mixers=list(MIXERS), depths=[8, 32], lrs=[1e-2, 3e-2, 1e-1, 3e-1], base=CPU),
            dict(name="bf16", mixers=list(MIXERS), depths=[32], lrs=[3e-2, 1e-1], base=replace(CPU, dtype="bfloat16")),
            dict(name="no-norm", mixers=list(MIXERS), depths=[8], lrs=[1e-2, 3e-2, 1e-1],
                 base=replace(CPU, norm="none")),
            dict(name="deep", mixers=["residual", "rezero"], depths=[1000], lrs=[3e-3, 1e-2, 3e-2], base=CPU),
            dict(name="deep-behc", mixers=["behc"], depths=[1000], lrs=[1e-2], base=CPU)],
    "gpu": [dict(name="main", mixers=list(MIXERS), depths=[16, 64, 256, 1000], lrs=[3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
                 base=GPU),
            dict(name="fp32", mixers=list(MIXERS), depths=[64], lrs=[1e-2, 3e-2, 1e-1],
                 base=replace(GPU, dtype="float32"))],
}


def variant(dtype: str, norm: str) -> str:
    """How a setting differs from the fp32 pre-norm default: ``""``, ``"bfloat16"``, ``"no norm"``..."""
    return " ".join(([] if dtype == "float32" else [dtype]) + ([] if norm == "pre" else ["no norm"]))


def run_dir(out: Path, mixer: str, depth: int, lr: float, dtype: str = "float32", norm: str = "pre") -> Path:
    suffix = variant(dtype, norm).replace(" ", "_")
    return out / "runs" / f"{mixer}_L{depth}_lr{lr:g}{'_' + suffix if suffix else ''}"


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


def study(out: Path, grids: list[dict], spike_nats: float, progress: bool = True,
          overwrite: bool = False) -> list[dict]:
    """Train (or reuse) every point of every grid; one row per run, also written to ``out/results.jsonl``."""
    out.mkdir(parents=True, exist_ok=True)
    points = [(g, d, lr, m) for g in grids for d in g["depths"] for lr in g["lrs"] for m in g["mixers"]]
    rows = []
    for grid, depth, lr, mixer in tqdm(points, desc="stability", disable=not progress):
        base = replace(grid["base"], progress=progress, overwrite=overwrite)
        cfg = replace(base, mixer=mixer, depth=depth, lr=lr, out=str(run_dir(out, mixer, depth, lr, base.dtype, base.norm)))
        summary = run_once(cfg)
        row = {"grid": grid["name"], "mixer": mixer, "depth": depth, "lr": lr, "dtype": base.dtype,
               "norm": base.norm,                "final_loss": summary["final_loss"], "val_loss": summary["val_loss"],
               "unigram_loss": summary["unigram_loss"], "gain_forward": summary["gain_forward"],
               "stream_spread": summary.get("stream_spread"), "h_res_ablation": summary.get("h_res_ablation"),
               "h_res_off_identity": summary.get("h_res_off_identity"), "divergence": summary.get("divergence"),
               **classify(summary, read_metrics(cfg.out), spike_nats)}
        rows.append(row)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def setting(row: dict) -> tuple[int, str]:
    """A row's (depth, variant): what a column of the report holds."""
    return row["depth"], variant(row["dtype"], row["norm"])


def columns(rows: list[dict]) -> list[tuple[int, str]]:
    """The settings of ``rows``: the fp32 pre-norm ones first, by depth."""
    return sorted({setting(r) for r in rows}, key=lambda c: (c[1], c[0]))


def max_stable(rows: list[dict]) -> dict[tuple[str, int, str], float | None]:
    """Largest learning rate at which (mixer, depth, variant) trained stably; None when none did."""
    best: dict[tuple[str, int, str], float | None] = {}
    for r in rows:
        key = (r["mixer"], *setting(r))
        best.setdefault(key, None)
        if r["stable"] and (best[key] is None or r["lr"] > best[key]):
            best[key] = r["lr"]
    return best


def plot(out: Path, rows: list[dict]) -> list[str]:
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    settings = columns(rows)
    names = []
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 4), squeeze=False)
    for ax, (depth, kind) in zip(axes[0], settings):
        for i, m in enumerate(mixers):
            pts = sorted((r["lr"], r["val_loss"]) for r in rows
                         if (r["mixer"], *setting(r)) == (m, depth, kind) and r["val_loss"] is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=m, color=f"C{i}")
        ax.axhline(rows[0]["unigram_loss"], color="k", ls="--", lw=1, label="unigram")
        ax.set(xscale="log", xlabel="learning rate", ylabel="validation loss (nats)",
               title=f"depth {depth} {kind or 'fp32'}")
        ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "loss_vs_lr.png"))

    best = max_stable(rows)
    floor = min(r["lr"] for r in rows) / 2                  # where "no stable lr in the grid" is drawn
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(mixers):
        shift = 1 + 0.04 * (i - len(mixers) / 2)              # side by side: equal values stay visible
        for kinds, style in ((("",), dict(marker="o", lw=1, label=m)),
                             ({k for _, k in settings} - {""}, dict(marker="s", lw=0, mfc="none"))):
            pts = [(d * shift, best[m, d, k] or floor) for d, k in settings if k in kinds and (m, d, k) in best]
            if not pts:
                continue
            ax.plot(*zip(*pts), color=f"C{i}", **style)
            ax.scatter([d for d, v in pts if v == floor], [floor] * sum(v == floor for _, v in pts), marker="x",
                       s=80, color=f"C{i}")
    ax.axhline(floor, color="k", lw=0.5, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="depth (layers)", ylabel="largest stable learning rate",
           title="Stability vs depth (squares: bf16 / no norm; x: none stable)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "max_stable_lr.png"))

    main = [r for r in rows if r["grid"] == rows[0]["grid"]]
    deepest, top = max(r["depth"] for r in main), max(r["lr"] for r in main)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in mixers:
        recs = read_metrics(run_dir(out, m, deepest, top, main[0]["dtype"], main[0]["norm"])) if any(
            (r["mixer"], r["depth"], r["lr"]) == (m, deepest, top) for r in main) else []
        pts = [(r["step"], r["gain_forward"]) for r in recs if r.get("gain_forward")]
        if pts:
            ax.plot(*zip(*pts), label=m, lw=1)
    ax.set(yscale="log", xlabel="step", ylabel="composite forward gain of prod H_res",
           title=f"Gain over training, depth {deepest}, lr {top:g}")
    ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "gain_over_training.png"))
    return names


def report(out: Path, rows: list[dict], plots: list[str], command: str, spike_nats: float) -> Path:
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    settings = columns(rows)
    best = max_stable(rows)
    cell = {None: "none"}
    lines = ["# Stability study", "", f"Command: `{command}`", "",
             f"No gradient clipping. Stable = no divergence, no loss spike (> {spike_nats:g} nats above the "
             f"median of the previous {WINDOW} steps), validation loss below unigram ({rows[0]['unigram_loss']:.4f}).",
             "", "## Largest stable learning rate", "",
             "`none`: no learning rate of the grid was stable; blank: not in the grid.", "",
             "| mixer | " + " | ".join(f"L = {d} {k}".rstrip() for d, k in settings) + " |",
             "|---|" + "---:|" * len(settings)]
    for m in mixers:
        lines.append(f"| {m} | " + " | ".join(
            (cell.get(best[m, d, k]) or format(best[m, d, k], "g")) if (m, d, k) in best else ""
            for d, k in settings) + " |")
    lines += ["", "## Every run", "",
              f"| mixer | depth | variant | lr | val loss | gain fwd | loss spikes | grad spikes | diverged | stable "
              f"| off-identity | {USAGE_HEADER} |",
              "|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mixer']} | {r['depth']} | {setting(r)[1] or 'fp32'} | {r['lr']:g} | {fmt(r['val_loss'])} | "
                     f"{fmt(r['gain_forward'], '.3g')} | {r['loss_spikes']} | {r['grad_spikes']} | "
                     f"{'**yes**' if r['diverged'] else 'no'} | {'yes' if r['stable'] else 'no'} | "
                     f"{fmt(r.get('h_res_off_identity'), '.3f')} | {usage_cells(r)} |")
    return write_report(out, lines, plots)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.studies.stability", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--grids", nargs="+", help="run only these grids of the preset (default: all of them)")
    ap.add_argument("--out", default=None, help="default runs/stability-<preset>")
    ap.add_argument("--mixers", nargs="+", choices=list(MIXERS), help="override every grid's mixers")
    ap.add_argument("--depths", nargs="+", type=int, help="override every grid's depths")
    ap.add_argument("--lrs", nargs="+", type=float, help="override every grid's learning rates")
    ap.add_argument("--steps", type=int, help="override the preset's steps")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="override every grid's dtype")
    ap.add_argument("--init", choices=INITS, help="override the mixers' initialisation (default reference)")
    ap.add_argument("--sk-order", choices=SK_ORDERS, help="override mhc's Sinkhorn order (default cols_rows)")
    ap.add_argument("--norm", choices=NORMS, help="override every grid's sublayer norm")
    ap.add_argument("--spike-nats", type=float, default=0.5)
    ap.add_argument("--overwrite", action="store_true", help="replace runs in --out that have other settings")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    grids = PRESETS[args.preset]
    names = [g["name"] for g in grids]
    if unknown := set(args.grids or []) - set(names):
        ap.error(f"unknown grid {sorted(unknown)[0]!r} for preset {args.preset} (its grids: {', '.join(names)})")
    grids = [g for g in grids if args.grids is None or g["name"] in args.grids]
    overrides = {k: getattr(args, k) for k in ("mixers", "depths", "lrs") if getattr(args, k) is not None}
    config = {k: getattr(args, k) for k in ("steps", "dtype", "init", "sk_order", "norm") if getattr(args, k) is not None}
    grids = [{**g, **overrides, "base": replace(g["base"], **config)} for g in grids]
    out = Path(args.out or f"runs/stability-{args.preset}")
    try:
        rows = study(out, grids, args.spike_nats, args.progress, args.overwrite)
    except (ValueError, OSError) as exc:
        print(f"reference.studies.stability: error: {exc}", file=sys.stderr)
        return 2
    command = "python -m reference.studies.stability " + " ".join(argv if argv is not None else sys.argv[1:])
    path = report(out, rows, plot(out, rows), command, args.spike_nats)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
