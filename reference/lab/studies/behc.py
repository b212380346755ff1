"""BE-HC claims, measured: long-context quality and INT8 retention (docs/BEHC.md).

    python -m reference.lab.studies.behc tokens  --out runs/behc     # token mixing vs attention
    python -m reference.lab.studies.behc streams --runs runs/paper/runs --out runs/behc

``tokens``: for each task (``recall``: long-range recall; ``charlm``: the bundled corpus)
and sequence length ``N``, trains the BE-HC token-mixing model and the same model with
attention (``reference.train``, identical config but ``--model``), then evaluates
validation loss and accuracy in float and post-training INT8: weights (W8), weights and
activations (W8A8; per row / per token, or per tensor), and for BE-HC its token-mixing weights rounded exactly DS
(``birkhoff.quantize``) or naively. The stream mixers' ``H_res`` (the same in both
models) stay float here; ``streams`` studies them. Retention = quantized accuracy / float accuracy.

``streams``: loads the deepest checkpoints of a depth sweep (``reference.lab.studies.sweep``) and
evaluates each stream mixer with ``H_res`` rounded to ``Q / 127`` exactly DS
(``birkhoff.quantize``) or naively, with and without W8 weights; the composite gain of
probe token 0's ``prod Q_l / 127`` over all layers is computed in exact integer arithmetic.

Each writes ``OUT/<name>.jsonl``, ``OUT/<name>.md`` (the tables) and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from birkhoff.cli import OneLineParser  # noqa: E402

from ...mixers import stream_mixers  # noqa: E402
from ..data import make_task  # noqa: E402
from ..quantization import MixingRounding, exact_composite_gains, quantized  # noqa: E402
from ..runs import CONFIG, Config, evaluate, load_model, read_config  # noqa: E402
from ..train import run_once  # noqa: E402
from .markdown import save_figure  # noqa: E402

LABELS = {"tokenmix": "BE-HC token mixing", "transformer": "attention (SDPA)"}
# name -> (quantized() keywords, MixingRounding keywords)
FLOAT = (dict(weights=False), {})
TOKEN_MODES = {
    "float": FLOAT,
    "W8": (dict(weights=True), {}),
    "W8A8": (dict(weights=True, activations=True), {}),
    "W8A8 per-tensor": (dict(weights=True, activations=True, per_tensor=True), {}),
    "W8 + DS mix": (dict(weights=True), dict(token_mixing="ds")),
    "W8 + naive mix": (dict(weights=True), dict(token_mixing="naive")),
    "W8A8 + DS mix": (dict(weights=True, activations=True), dict(token_mixing="ds")),
    "W8A8 per-tensor + DS mix": (dict(weights=True, activations=True, per_tensor=True), dict(token_mixing="ds")),
}
STREAM_MODES = {
    "float": FLOAT,
    "H_res DS": (dict(weights=False), dict(stream_mixing="ds")),
    "H_res naive": (dict(weights=False), dict(stream_mixing="naive")),
    "W8 + H_res DS": (dict(weights=True), dict(stream_mixing="ds")),
    "W8 + H_res naive": (dict(weights=True), dict(stream_mixing="naive")),
}


def _measure(model, task, cfg: Config, mode: tuple[dict, dict], batches: int) -> dict:
    """Validation loss and accuracy of ``model`` quantized as ``mode``; exact composite gains when
    ``H_res`` is rounded (probe token 0 of the last batch, over all layers)."""
    weight_kw, mixing_kw = mode
    rounding = MixingRounding(**mixing_kw)
    with quantized(model, **weight_kw):
        loss, acc = evaluate(model, task, cfg.seed, cfg.batch_size, batches, tap=rounding)
    row = {"loss": loss, "accuracy": acc}
    if rounding.probe:
        row["gain_forward"], row["gain_backward"] = exact_composite_gains(rounding.probe)
        row["max_input_residual"] = rounding.max_residual
        row["rebalanced"] = rounding.rebalanced / max(1, rounding.seen)
    return row


# ----------------------------------------------------------------------------- tokens

def tokens(args: argparse.Namespace) -> list[dict]:
    base = Config(mixer=args.mixer, n_streams=args.n_streams, width=args.width, depth=args.depth,
                  heads=args.heads, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                  eval_batches=2, progress=args.progress, overwrite=args.overwrite)
    rows = []
    for task_name in args.tasks:
        for N in args.lengths:
            task = make_task(task_name, N)
            for kind in args.kinds:
                cfg = replace(base, task=task_name, seq_len=N, kind=kind,
                              out=str(args.out / "runs" / f"{task_name}_{kind}_N{N}"))
                summary = run_once(cfg)
                model = load_model(cfg.out)[0]
                for name, mode in TOKEN_MODES.items():
                    if "token_mixing" in mode[1] and kind != "tokenmix":
                        continue
                    row = {"task": task_name, "N": N, "model": kind, "mode": name,
                           "chance_loss": summary["unigram_loss"],
                           **_measure(model, task, cfg, mode, args.eval_batches)}
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    return rows


def _retention(rows: list[dict]) -> None:
    base = {(r["task"], r["N"], r["model"]): r["accuracy"] for r in rows if r["mode"] == "float"}
    for r in rows:
        f = base[(r["task"], r["N"], r["model"])]
        r["retention"] = r["accuracy"] / f if f > 0 else float("nan")


def tokens_report(rows: list[dict], out: Path) -> None:
    _retention(rows)
    lines = ["| task | N | model | mode | val loss | accuracy | retention |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['N']} | {LABELS[r['model']]} | {r['mode']} | {r['loss']:.3f} | "
                     f"{r['accuracy']:.3f} | {r['retention']:.3f} |")
    (out / "tokens.md").write_text("\n".join(lines) + "\n")
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for kind, label in LABELS.items():
            pts = sorted((r["N"], r["accuracy"]) for r in rows
                         if r["task"] == task and r["model"] == kind and r["mode"] == "float")
            if pts:
                ax.plot(*zip(*pts), "o-", label=label)
        ax.set(xscale="log", xlabel="sequence length N", ylabel="validation accuracy", title=task)
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out, "quality_vs_N.png")

    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sel = [r for r in rows if r["task"] == task and r["mode"] != "float"]
        labels = list(dict.fromkeys(f"{'BE-HC' if r['model'] == 'tokenmix' else 'attn'} {r['mode']}" for r in sel))
        Ns = sorted({r["N"] for r in sel})
        width = 0.8 / len(Ns)
        for i, N in enumerate(Ns):
            vals = {f"{'BE-HC' if r['model'] == 'tokenmix' else 'attn'} {r['mode']}": r["retention"]
                    for r in sel if r["N"] == N}
            ax.bar([j + i * width for j in range(len(labels))], [vals.get(lb, 0) for lb in labels], width,
                   label=f"N = {N}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=45, ha="right",
                      fontsize=7)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(ylabel="accuracy retention (INT8 / float)", title=task)
        ax.legend(fontsize=7)
    save_figure(fig, out, "retention_tokens.png")


# ----------------------------------------------------------------------------- streams

def deepest_runs(runs: Path) -> dict[str, Config]:
    """Per mixer, the config of its deepest run among the run folders directly under ``runs``."""
    deepest: dict[str, Config] = {}
    for cfg in (read_config(p.parent) for p in sorted(runs.glob(f"*/{CONFIG}"))):
        if cfg.mixer not in deepest or cfg.depth > deepest[cfg.mixer].depth:
            deepest[cfg.mixer] = cfg
    return deepest


def streams(args: argparse.Namespace) -> list[dict]:
    rows = []
    deepest = deepest_runs(args.runs)
    for mixer in args.mixers:
        if mixer not in deepest:
            raise FileNotFoundError(f"no {mixer} run under {args.runs}")
        model, cfg = load_model(deepest[mixer].out)
        task = make_task(cfg.task, cfg.seq_len)
        for name, mode in STREAM_MODES.items():
            if mode[1].get("stream_mixing") == "ds" and mixer == "hc":
                continue                                    # HC's H_res is not DS: nothing to preserve
            row = {"mixer": mixer, "depth": cfg.depth, "mode": name,
                   **_measure(model, task, cfg, mode, args.eval_batches)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return rows


def streams_report(rows: list[dict], out: Path) -> None:
    lines = ["| mixer | depth | mode | val loss | accuracy | exact composite gain fwd / bwd (probe token) "
             "| max DS residual of H_res in | share rebalanced |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gain = f"{r['gain_forward']:.4g} / {r['gain_backward']:.4g}" if "gain_forward" in r else "-"
        extra = (f"{r['max_input_residual']:.2e} | {r['rebalanced']:.4f}" if "rebalanced" in r else "- | -")
        lines.append(f"| {r['mixer']} | {r['depth']} | {r['mode']} | {r['loss']:.4f} | {r['accuracy']:.4f} | {gain} "
                     f"| {extra} |")
    (out / "streams.md").write_text("\n".join(lines) + "\n")
    mixers = list(dict.fromkeys(r["mixer"] for r in rows))
    modes = list(STREAM_MODES)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        by = {r["mixer"]: r for r in rows if r["mode"] == mode}
        xs = [j + i * width for j in range(len(mixers))]
        axes[0].bar(xs, [by[m]["loss"] if m in by else 0 for m in mixers], width, label=mode, color=f"C{i}")
        if mode != "float":
            axes[1].bar(xs, [by[m].get("gain_forward", float("nan")) if m in by else float("nan") for m in mixers],
                        width, label=mode, color=f"C{i}")
    for ax in axes:
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(mixers))], mixers)
        ax.legend(fontsize=7)
    depth = rows[0]["depth"]
    axes[0].set(ylabel="validation loss (nats)", title=f"INT8 H_res at depth {depth}")
    axes[0].set_ylim(min(r["loss"] for r in rows) * 0.95, max(r["loss"] for r in rows) * 1.02)
    axes[1].set(yscale="log", ylabel="exact composite forward gain", title=f"prod of {depth} rounded H_res")
    save_figure(fig, out, "retention_streams.png")


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.lab.studies.behc", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    t = sub.add_parser("tokens", help="token mixing vs attention: quality vs N and INT8 retention")
    t.add_argument("--tasks", nargs="+", choices=["recall", "charlm"], default=["recall", "charlm"])
    t.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    t.add_argument("--kinds", nargs="+", choices=list(LABELS), default=list(LABELS))
    t.add_argument("--mixer", default="behc")
    t.add_argument("--streams", dest="n_streams", type=int, default=Config.n_streams)
    t.add_argument("--width", type=int, default=64)
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--overwrite", action="store_true", help="replace runs in --out that have other settings")
    s = sub.add_parser("streams", help="INT8 H_res (DS vs naive) in the deepest runs of a depth sweep")
    s.add_argument("--runs", type=Path, default=Path("runs/paper/runs"))
    s.add_argument("--mixers", nargs="+", choices=stream_mixers(), default=stream_mixers())
    for p in (t, s):
        p.add_argument("--out", type=Path, default=Path("runs/behc"))
        p.add_argument("--eval-batches", type=int, default=16, help="validation batches the study scores")
        p.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        rows = tokens(args) if args.cmd == "tokens" else streams(args)
    except (ValueError, OSError) as exc:
        print(f"reference.lab.studies.behc: error: {exc}", file=sys.stderr)
        return 2
    (args.out / f"{args.cmd}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tokens_report if args.cmd == "tokens" else streams_report)(rows, args.out)
    print((args.out / f"{args.cmd}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
