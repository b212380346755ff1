"""Stability study: the largest learning rate each mixer trains at, versus depth, over seeds.

    python -m reference.lab.studies.stability --preset cpu --out runs/stability-cpu   # 2-core CPU, hours
    python -m reference.lab.studies.stability --preset gpu --out runs/stability-gpu   # the GPU command

The mHC paper's claim is about stability, not about the loss at one setting: HC's
composite gain explodes and costs stability, while doubly stochastic mixing keeps gain 1.
So this study varies what hides the effect in the depth sweep. For every mixer x depth
x learning rate x seed it trains with **no gradient clipping** and a constant learning
rate (the trainer's clip of 1.0 hides blow-ups; the papers' schedule is for the quality
comparisons of the sweep) and classifies each run:

* **diverged**: a non-finite loss, gradient, update or validation loss (the trainer's exit 3);
* **loss spike**: a step whose *excess loss* exceeds the median of the 10 steps before it
  by more than the spike threshold (0.5 nats; the report repeats the verdicts at 1 nat).
  The excess loss is the batch's loss minus the same batch's cross-entropy under the
  unigram model: a batch of unusual text (a table of hex codes in the docstrings) is hard
  for every model at every learning rate, so its raw loss jumps by more than 0.5 nats
  whatever the mixer (measured: the same step of the same seed in every run), while its
  excess loss does not;
* **gradient spike**: a step whose total gradient norm exceeds 10x the median of the
  10 steps before it (reported, not part of the verdict);
* **stable**: not diverged, no loss spike, and a validation loss below the unigram baseline.

A learning rate is stable for a mixer and setting when at least 2 of its 3 seeds are
(:mod:`reference.lab.studies.seeds`). A grid either *searches* the largest stable learning
rate (:func:`reference.lab.studies.brackets.bracket`: a factor-3 walk from ``start``, then
bisection in log lr to within a factor of 1.5, once per spike threshold, reusing runs),
reported as an interval ``[stable, unstable)``, or runs fixed learning rates.

A preset is a list of named grids (``--grids`` runs some of them). ``cpu``: ``main``
(every mixer, depths 8 and 32, searched), ``bf16`` (depth 32 in bfloat16 autocast, lr
0.03 and 0.1), ``no-norm`` (depth 8 without the sublayers' pre-norm, lr 0.01 and 0.03),
``deep`` (residual, ReZero and BE-HC at 1000 layers of the MLP stack, 200 steps, lr 0.003
and 0.01: the BE-HC abstract's claim) and ``deep-no-norm`` (ReZero at 1000 layers without
pre-norm, as in the ReZero paper). Every run also reports whether the streams are used
(``stream_spread``, ``h_res_ablation``, ``h_res_off_identity``). Runs live in
``OUT/runs/<mixer>_L<depth>_lr<lr>[_<variant>]_s<seed>/``; finished runs of the same
configuration are reused (unfinished ones continue from their checkpoint), so grids can
run in separate processes and a last full command collects them; a folder that holds a
run of other settings stops the study unless ``--overwrite`` is given.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from functools import lru_cache
from statistics import median
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from birkhoff.cli import OneLineParser  # noqa: E402

from ...mixers import FAVOURED, INITS, MIXER_NORMS, MIXERS, RES_BOUNDS, SK_ORDERS  # noqa: E402
from ...norms import NORMS  # noqa: E402
from ..data import batch_unigram_loss, make_task  # noqa: E402
from ..runs import DTYPES, Config, read_metrics  # noqa: E402
from ..schedule import SCHEDULES  # noqa: E402
from ..train import run_once  # noqa: E402
from .brackets import Bracket, bracket  # noqa: E402
from .markdown import USAGE_HEADER, fmt, save_figure, usage_cells, write_report  # noqa: E402
from .seeds import RULE, differs, fmt_spread, majority, spread  # noqa: E402

WINDOW = 10
GRAD_SPIKE = 10.0
THRESHOLDS = (0.5, 1.0)                   # nats: the verdict's spike threshold, and the second look
SEARCH = dict(start=0.03, low=1e-3, high=1.0)
SMOKE = Config(kind="transformer", width=8, heads=2, steps=30, batch_size=4, seq_len=8, task="markov",
               grad_clip=0.0, eval_batches=1, plots=False)           # the smoke test: the study's plots only
CPU = Config(kind="transformer", width=16, heads=2, steps=150, batch_size=8, seq_len=32, grad_clip=0.0,
             eval_batches=4)
DEEP = replace(CPU, kind="mlp", steps=200)
GPU = Config(kind="transformer", width=256, heads=4, steps=3000, batch_size=32, seq_len=256, grad_clip=0.0,
             dtype="bfloat16", backend="triton", eval_batches=16)
# A preset is a list of grids; a grid is mixers x depths x (a searched or a fixed list of) lrs x seeds.
PRESETS = {
    "smoke": [dict(name="main", mixers=["residual", "kromhc"], depths=[2], seeds=2, base=SMOKE,
                   search=dict(start=0.03, low=1e-3, high=1e3, factor=1e3, ratio=40)),
              dict(name="bf16", mixers=["kromhc"], depths=[2], lrs=[1e-2], seeds=1,
                   base=replace(SMOKE, dtype="bfloat16")),
              dict(name="no-norm", mixers=["kromhc"], depths=[2], lrs=[1e-2], seeds=1,
                   base=replace(SMOKE, norm="none"))],
    "cpu": [dict(name="main", mixers=list(MIXERS), depths=[8, 32], search=SEARCH, seeds=3, base=CPU),
            dict(name="bf16", mixers=list(MIXERS), depths=[32], lrs=[3e-2, 1e-1], seeds=3,
                 base=replace(CPU, dtype="bfloat16")),
            dict(name="no-norm", mixers=list(MIXERS), depths=[8], lrs=[1e-2, 3e-2], seeds=3,
                 base=replace(CPU, norm="none")),
            dict(name="deep", mixers=["residual", "rezero", "behc"], depths=[1000], lrs=[3e-3, 1e-2], seeds=3,
                 base=DEEP),
            dict(name="deep-no-norm", mixers=["rezero"], depths=[1000], lrs=[3e-3, 1e-2], seeds=3,
                 base=replace(DEEP, norm="none"))],
    "gpu": [dict(name="main", mixers=list(MIXERS), depths=[16, 64, 256], search=dict(start=0.01, low=1e-4, high=1.0),
                 seeds=3, base=GPU),
            dict(name="fp32", mixers=list(MIXERS), depths=[64], lrs=[1e-2, 3e-2, 1e-1], seeds=3,
                 base=replace(GPU, dtype="float32"))],
}


def variant(dtype: str, norm: str, model: str = "transformer") -> str:
    """How a setting differs from the fp32 pre-norm transformer: ``""``, ``"bfloat16"``, ``"no norm mlp"``..."""
    return " ".join(([] if dtype == "float32" else [dtype]) + ([] if norm == "pre" else ["no norm"])
                    + ([] if model == "transformer" else [model]))


def run_dir(out: Path, mixer: str, depth: int, lr: float, seed: int, kind: str = "") -> Path:
    """Where a study in ``out`` keeps one run; ``kind`` is its :func:`variant`."""
    suffix = kind.replace(" ", "_")
    return out / "runs" / f"{mixer}_L{depth}_lr{lr:g}{'_' + suffix if suffix else ''}_s{seed}"


def spikes(values: list[float | None], above) -> int:
    """Steps whose value is ``above(value, median of the WINDOW values before it)``."""
    count = 0
    for t in range(WINDOW, len(values)):
        window = [v for v in values[t - WINDOW:t] if v is not None]
        if values[t] is not None and window and above(values[t], median(window)):
            count += 1
    return count


def excess_losses(records: list[dict], baselines: list[float] | None) -> list[float | None]:
    """Each step's loss minus its batch's unigram cross-entropy (the loss itself without baselines)."""
    if baselines is None:
        return [r["loss"] for r in records]
    return [None if r["loss"] is None else r["loss"] - b for r, b in zip(records, baselines)]


def batch_baselines(cfg: Config, steps: int) -> list[float]:
    """The unigram cross-entropy of each of the first ``steps`` training batches of ``cfg``."""
    task = _task(cfg.task, cfg.seq_len)
    return [batch_unigram_loss(task, task.batch(cfg.seed, t, cfg.batch_size)[1]) for t in range(steps)]


@lru_cache(maxsize=8)
def _task(name: str, seq_len: int):
    return make_task(name, seq_len)


def classify(summary: dict, records: list[dict], spike_nats: float, baselines: list[float] | None = None) -> dict:
    """The stability verdict of one run (see the module doc); ``baselines`` are the batches' unigram
    cross-entropies (:func:`batch_baselines`), for the excess loss."""
    losses = excess_losses(records, baselines)
    grads = [r.get("grad_norm_total") for r in records]
    loss_spikes = spikes(losses, lambda v, m: v > m + spike_nats)
    grad_spikes = spikes(grads, lambda v, m: v > GRAD_SPIKE * m)
    learned = summary["val_loss"] is not None and summary["val_loss"] < summary["unigram_loss"]
    return {"diverged": summary["diverged"], "loss_spikes": loss_spikes, "grad_spikes": grad_spikes,
            "stable": not summary["diverged"] and loss_spikes == 0 and learned}


class Runner:
    """Trains (or reuses) one run per (grid, mixer, depth, lr, seed) and keeps its row."""

    def __init__(self, out: Path, progress: bool, overwrite: bool) -> None:
        self.out, self.progress, self.overwrite = out, progress, overwrite
        self.rows: dict[tuple, dict] = {}
        self.bar = tqdm(desc="stability runs", disable=not progress, unit="run")

    def row(self, grid: dict, mixer: str, depth: int, lr: float, seed: int) -> dict:
        key = (grid["name"], mixer, depth, lr, seed)
        if key not in self.rows:
            base = replace(grid["base"], progress=self.progress, overwrite=self.overwrite)
            kind = variant(base.dtype, base.norm, base.kind)
            cfg = replace(base, mixer=mixer, depth=depth, lr=lr, seed=seed,
                          out=str(run_dir(self.out, mixer, depth, lr, seed, kind)))
            summary = run_once(cfg)
            records = read_metrics(cfg.out)
            baselines = batch_baselines(cfg, len(records))
            row = {"grid": grid["name"], "mixer": mixer, "depth": depth, "lr": lr, "seed": seed,
                   "dtype": base.dtype, "norm": base.norm, "model": base.kind,
                   **{k: summary.get(k) for k in ("final_loss", "val_loss", "unigram_loss", "gain_forward",
                                                  "gain_backward", "stream_spread", "h_res_ablation",
                                                  "h_res_off_identity", "divergence", "diverged")}}
            verdicts = {nats: classify(summary, records, nats, baselines) for nats in THRESHOLDS}
            for nats, verdict in verdicts.items():
                row[f"stable@{nats:g}"] = verdict["stable"]
                row[f"loss_spikes@{nats:g}"] = verdict["loss_spikes"]
            row["grad_spikes"] = verdicts[THRESHOLDS[0]]["grad_spikes"]
            self.rows[key] = row
            self.bar.update()
        return self.rows[key]

    def stable(self, grid: dict, mixer: str, depth: int, nats: float) -> Callable[[float], bool]:
        """``lr -> `` at least 2/3 of the grid's seeds stable at ``nats``."""
        return lambda lr: majority(self.row(grid, mixer, depth, lr, s)[f"stable@{nats:g}"]
                                   for s in seeds(grid))


def seeds(grid: dict) -> range:
    """The grid's seeds, ``first_seed .. first_seed + seeds - 1`` (``first_seed`` 0 unless given)."""
    first = grid.get("first_seed", 0)
    return range(first, first + grid["seeds"])


def study(out: Path, grids: list[dict], progress: bool = True, overwrite: bool = False
          ) -> tuple[list[dict], dict[tuple, dict[float, Bracket]]]:
    """Train (or reuse) every run of every grid; returns the rows (also ``out/results.jsonl``) and, for
    searched grids, the bracket per (grid, mixer, depth) and threshold (``out/brackets.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, progress, overwrite)
    brackets: dict[tuple, dict[float, Bracket]] = {}
    for grid in grids:
        for depth in grid["depths"]:
            for mixer in grid["mixers"]:
                if "search" in grid:
                    brackets[grid["name"], mixer, depth] = {nats: bracket(runner.stable(grid, mixer, depth, nats),
                                                                          **grid["search"]) for nats in THRESHOLDS}
                else:
                    for lr in grid["lrs"]:
                        for seed in seeds(grid):
                            runner.row(grid, mixer, depth, lr, seed)
    runner.bar.close()
    rows = list(runner.rows.values())
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "brackets.json").write_text(json.dumps([
        {"grid": g, "mixer": m, "depth": d, **{f"{nats:g}": {"lo": b.lo, "hi": b.hi, "tried": list(b.tried.items())}
                                                for nats, b in by.items()}}
        for (g, m, d), by in brackets.items()], indent=1))
    return rows, brackets


def setting(row: dict) -> tuple[int, str]:
    """A row's (depth, variant): what a column of the report holds."""
    return row["depth"], variant(row["dtype"], row["norm"], row.get("model", "transformer"))


def points(rows: list[dict]) -> dict[tuple, list[dict]]:
    """The rows of each (grid, mixer, depth, variant, lr) point, one per seed."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["grid"], r["mixer"], *setting(r), r["lr"]), []).append(r)
    return out


def plot(out: Path, rows: list[dict], brackets: dict) -> list[str]:
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    by_point = points(rows)
    settings = sorted({(g, d, v) for g, _, d, v, _ in by_point}, key=lambda s: (s[2], s[1]))
    names = []
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 4), squeeze=False)
    for ax, (grid, depth, kind) in zip(axes[0], settings):
        for i, m in enumerate(mixers):
            pts = sorted((lr, spread(r["val_loss"] for r in rs)) for (g, mm, d, v, lr), rs in by_point.items()
                         if (g, mm, d, v) == (grid, m, depth, kind))
            pts = [(lr, s) for lr, s in pts if s is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts],
                            yerr=[[p[1].mean - p[1].lo for p in pts], [p[1].hi - p[1].mean for p in pts]],
                            marker="o", ms=3, capsize=2, label=m, color=f"C{i}")
        ax.axhline(rows[0]["unigram_loss"], color="k", ls="--", lw=1, label="unigram")
        ax.set(xscale="log", xlabel="learning rate", ylabel="validation loss (nats), seed range",
               title=f"depth {depth} {kind or 'fp32'}")
        ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "loss_vs_lr.png"))

    if brackets:
        fig, ax = plt.subplots(figsize=(6, 4))
        depths = sorted({d for _, _, d in brackets})
        for i, m in enumerate(mixers):
            shift = 1 + 0.05 * (i - len(mixers) / 2)
            for d in depths:
                b = brackets.get(("main", m, d), {}).get(THRESHOLDS[0])
                if b is None:
                    continue
                lo = b.lo if b.lo is not None else min(b.tried) / 3
                hi = b.hi if b.hi is not None else max(b.tried) * 3
                ax.plot([d * shift] * 2, [lo, hi], color=f"C{i}", lw=3, label=m if d == depths[0] else None)
                if b.lo is None:
                    ax.scatter([d * shift], [hi], marker="x", color=f"C{i}")
        ax.set(xscale="log", yscale="log", xlabel="depth (layers)", ylabel="largest stable lr: [stable, unstable)",
               title=f"Stability vs depth (spike {THRESHOLDS[0]:g} nats; x: none stable)")
        ax.legend(fontsize=7)
        names.append(save_figure(fig, out, "max_stable_lr.png"))

    first = min(r["seed"] for r in rows)
    main = [r for r in rows if r["grid"] == rows[0]["grid"] and r["seed"] == first]
    deepest = max(r["depth"] for r in main)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(mixers):
        candidates = [r for r in main if (r["mixer"], r["depth"]) == (m, deepest)]
        if not candidates:
            continue
        top = max(candidates, key=lambda r: r["lr"])
        recs = read_metrics(run_dir(out, m, deepest, top["lr"], first, setting(top)[1]))
        pts = [(r["step"], r["gain_forward"]) for r in recs if r.get("gain_forward")]
        if pts:
            ax.plot(*zip(*pts), label=f"{m} (lr {top['lr']:g})", lw=1, color=f"C{i}")
    ax.set(yscale="log", xlabel="step", ylabel="composite forward gain of prod H_res",
           title=f"Gain over training, depth {deepest}, largest lr run, seed {first}")
    ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "gain_over_training.png"))
    return names


def why_unstable(row: dict, nats: float = THRESHOLDS[0]) -> str:
    """``"diverged"``, ``"spiked"``, ``"no lower than unigram"`` or ``"stable"``: the first rule a run breaks."""
    if row["diverged"]:
        return "diverged"
    if row[f"loss_spikes@{nats:g}"]:
        return "spiked"
    return "stable" if row[f"stable@{nats:g}"] else "no lower than unigram"


def edge_causes(rows: list[dict], brackets: dict) -> list[str]:
    """What breaks at the unstable end of each bracket (spike threshold ``THRESHOLDS[0]``): a stability
    failure (diverged, spiked) or a run that does not learn in its budget."""
    by_point = points(rows)
    lines = ["", "## What sets the upper end of each bracket", "",
             f"The seeds at the bracket's unstable end `b` (spike {THRESHOLDS[0]:g} nats), by the first rule "
             "each breaks.", "", "| mixer | depth | bracket | diverged | spiked | no lower than unigram | stable |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for (grid, mixer, depth), by in brackets.items():
        b = by[THRESHOLDS[0]]
        rs = [] if b.hi is None else next((v for (g, m, d, _, lr), v in by_point.items()
                                           if (g, m, d, lr) == (grid, mixer, depth, b.hi)), [])
        causes = [why_unstable(r) for r in rs]
        lines.append(f"| {mixer} | {depth} | {b} | " + " | ".join(
            str(causes.count(c)) for c in ("diverged", "spiked", "no lower than unigram", "stable")) + " |")
    return lines


def common_lrs(rows: list[dict]) -> list[str]:
    """Validation loss of every mixer at each learning rate that all of them ran (per grid, depth and
    variant), with the pairs that differ beyond the seed spread."""
    by_point = points(rows)
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    lines = ["", "## Validation loss at the learning rates every mixer ran", "", RULE, ""]
    for grid, depth, kind in sorted({(g, d, v) for g, _, d, v, _ in by_point}):
        lrs = sorted({lr for g, _, d, v, lr in by_point if (g, d, v) == (grid, depth, kind)})
        for lr in lrs:
            cells = {m: by_point.get((grid, m, depth, kind, lr)) for m in mixers}
            if any(c is None for c in cells.values()):
                continue
            losses = {m: spread(r["val_loss"] for r in rs) for m, rs in cells.items()}
            apart = [f"{a}/{b}" for i, a in enumerate(mixers) for b in mixers[i + 1:] if differs(losses[a], losses[b])]
            lines.append(f"- {grid}, L = {depth} {kind or 'fp32'}, lr {lr:g}: "
                         + ", ".join(f"{m} {fmt_spread(v)}" for m, v in losses.items())
                         + f"; differ: {', '.join(apart) or 'none'}")
    return lines


def report(out: Path, rows: list[dict], brackets: dict, plots: list[str], command: str) -> Path:
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    first, last = min(r["seed"] for r in rows), max(r["seed"] for r in rows)
    lines = ["# Stability study", "", f"Command: `{command}`", "",
             f"No gradient clipping, constant learning rate, seeds {first}..{last}. Stable = no divergence, no loss "
             f"spike (an excess loss, the batch's loss minus its unigram cross-entropy, > threshold nats above "
             f"the median of the previous {WINDOW} steps), validation loss below "
             f"unigram ({rows[0]['unigram_loss']:.4f}). {RULE} A learning rate is stable when at least 2/3 of "
             "its seeds are.", ""]
    if brackets:
        depths = sorted({d for _, _, d in brackets})
        lines += ["## Largest stable learning rate", "",
                  "`[a, b)`: stable (2/3 of the seeds) at `a`, not at `b`, searched to within a factor of 1.5; "
                  "`< b`: not stable at the lowest lr tried; `>= a`: stable up to the highest.", "",
                  "| mixer | " + " | ".join(f"L = {d}, spike {nats:g}" for d in depths for nats in THRESHOLDS) + " |",
                  "|---|" + "---:|" * (len(depths) * len(THRESHOLDS))]
        for m in mixers:
            cells = [str(brackets[("main", m, d)][nats]) if ("main", m, d) in brackets else ""
                     for d in depths for nats in THRESHOLDS]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if brackets:
        lines += edge_causes(rows, brackets)
    lines += common_lrs(rows)
    lines += ["", "## Every point (mean +- spread over seeds)", "",
              f"| grid | mixer | depth | variant | lr | val loss | stable seeds @{THRESHOLDS[0]:g} "
              f"| @{THRESHOLDS[1]:g} | diverged | gain fwd (max) | off-identity | {USAGE_HEADER} |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = sorted(points(rows).items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1], kv[0][4]))
    for (grid, m, depth, kind, lr), rs in order:
        stable = [sum(r[f"stable@{nats:g}"] for r in rs) for nats in THRESHOLDS]
        gains = [r["gain_forward"] for r in rs if r["gain_forward"] is not None]
        lines.append(f"| {grid} | {m} | {depth} | {kind or 'fp32'} | {lr:g} | "
                     f"{fmt_spread(spread(r['val_loss'] for r in rs))} | {stable[0]}/{len(rs)} | "
                     f"{stable[1]}/{len(rs)} | {sum(r['diverged'] for r in rs)}/{len(rs)} | "
                     f"{fmt(max(gains) if gains else None, '.3g')} | "
                     f"{fmt_spread(spread(r.get('h_res_off_identity') for r in rs))} | {usage_cells(rs[0])} |")
    lines += ["", f"(Stream-usage columns: seed {first}.)"]
    return write_report(out, lines, plots)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.lab.studies.stability", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--grids", nargs="+", help="run only these grids of the preset (default: all of them)")
    ap.add_argument("--out", default=None, help="default runs/stability-<preset>")
    ap.add_argument("--mixers", nargs="+", choices=list(MIXERS), help="override every grid's mixers")
    ap.add_argument("--depths", nargs="+", type=int, help="override every grid's depths")
    ap.add_argument("--lrs", nargs="+", type=float, help="fixed learning rates instead of the grids' own or search")
    ap.add_argument("--seeds", type=int, help="override every grid's number of seeds")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="run seeds FIRST_SEED.. (to add seeds to a point whose first ones ran elsewhere)")
    ap.add_argument("--steps", type=int, help="override the preset's steps")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="override every grid's dtype")
    ap.add_argument("--init", choices=INITS, help="override the mixers' initialisation (default reference)")
    ap.add_argument("--sk-order", choices=SK_ORDERS, help="override mhc's Sinkhorn order (default cols_rows)")
    ap.add_argument("--favoured", choices=FAVOURED, help="override the favoured stream rule (default source)")
    ap.add_argument("--mixer-norm", choices=MIXER_NORMS, help="override the coefficient norm (default source)")
    ap.add_argument("--res-bound", choices=RES_BOUNDS,
                    help="hc's causal arm (norm: H_res's gains bounded by 1); use its own --out")
    ap.add_argument("--norm", choices=NORMS, help="override every grid's sublayer norm")
    ap.add_argument("--schedule", choices=SCHEDULES,
                    help="paper: the papers' protocol (warmup, cosine, clip 1.0, weight decay 0.1, beta2 0.95) "
                         "instead of the grids' constant lr without clipping; use its own --out")
    ap.add_argument("--overwrite", action="store_true", help="replace runs in --out that have other settings")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    grids = PRESETS[args.preset]
    names = [g["name"] for g in grids]
    if unknown := set(args.grids or []) - set(names):
        ap.error(f"unknown grid {sorted(unknown)[0]!r} for preset {args.preset} (its grids: {', '.join(names)})")
    if args.seeds is not None and args.seeds < 1:
        ap.error("--seeds must be >= 1")
    if args.first_seed < 0:
        ap.error("--first-seed must be >= 0")
    grids = [g for g in grids if args.grids is None or g["name"] in args.grids]
    overrides = {k: getattr(args, k) for k in ("mixers", "depths", "seeds", "first_seed")
                 if getattr(args, k) is not None}
    config = {k: getattr(args, k) for k in ("dtype", "init", "sk_order", "favoured", "mixer_norm", "res_bound", "norm")
              if getattr(args, k) is not None}

    def base(grid: dict) -> Config:
        # made for the grid's first mixer: a setting that only some mixers take (hc's --res-bound) is
        # checked against the mixers the grid runs, not the base's default
        mixers = overrides.get("mixers", grid["mixers"])
        cfg = replace(grid["base"], mixer=mixers[0], **config)
        if args.schedule is not None:   # the optimiser settings the schedule brings, not the grid's own
            cfg = replace(cfg, schedule=args.schedule, warmup=None, weight_decay=None, grad_clip=None, beta2=None)
        return cfg.with_steps(args.steps) if args.steps is not None else cfg

    out = Path(args.out or f"runs/stability-{args.preset}")
    try:                                # a bad value is refused by Config, as the trainer's
        grids = [{**{k: v for k, v in g.items() if not (args.lrs and k == "search")}, **overrides,
                  **({"lrs": args.lrs} if args.lrs else {}), "base": base(g)} for g in grids]
        rows, brackets = study(out, grids, args.progress, args.overwrite)
    except (ValueError, OSError) as exc:
        print(f"reference.lab.studies.stability: error: {exc}", file=sys.stderr)
        return 2
    command = "python -m reference.lab.studies.stability " + " ".join(argv if argv is not None else sys.argv[1:])
    path = report(out, rows, brackets, plot(out, rows, brackets), command)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
