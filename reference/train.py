"""Reference trainer: any mixer, any depth, one process or DDP.

    python -m reference.train --mixer mhc --depth 256 --streams 4 --task charlm --out runs/x
    torchrun --nproc_per_node 2 -m reference.train --mixer kromhc ...   # DDP (gloo on CPU)

Writes the run folder of :mod:`reference.runs`: ``OUT/config.json``, ``OUT/metrics.jsonl``
(one line per step: loss, tokens/s, per-layer gradient-norm summary, composite Amax
gains of ``prod H_res`` over the probe tokens, max DS residual), ``OUT/summary.json``
(final/validation loss, unigram baseline, the ``birkhoff.certify_product`` certificate
of the composite map, and whether the streams are used: ``stream_spread`` and
``h_res_ablation``, the change of validation loss with every ``H_res`` set to ``I`` or
``J / n``) and ``OUT/ckpt.pt`` (every ``--ckpt-every`` steps and at the end;
``--resume`` continues from it and gives the same trajectory as an uninterrupted run;
resuming a finished run changes nothing). A NaN/Inf loss or gradient norm is logged as
``"diverged": true``, recorded in ``summary.json`` (``"divergence"``: step, cause, last
finite loss) and ends the run with exit code 3. Bad arguments, a foreign or truncated
checkpoint, or a checkpoint of another model exit with code 2 and one line.

Batches are a function of ``(seed, step)``; with ``W`` processes each rank takes its
``batch_size / W`` rows of the same global batch, and DDP averages the gradients, so the
loss trajectory matches one process with the same global batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from gpu.backend import BACKENDS

from .checkpoint import load_checkpoint, save_checkpoint
from .data import TASKS, make_task
from .metrics import (composite_certificate, composite_gains, layer_grad_norms, max_ds_residual,
                      off_identity_mass, summarize)
from .mixers import INITS, MIXERS, SK_ORDERS, mixing_params
from .models import KINDS, Model
from .norms import NORMS
from .runs import CKPT, CONFIG, METRICS, SUMMARY, Config, evaluate, read_metrics, read_summary, write_json
from .tap import HResOverride, HResProbe, StreamSpread

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
EXIT_DIVERGED = 3
PROBE_TOKENS = 8


# ----------------------------------------------------------------------------- setup

def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def all_mean(x: float, world: int, device: torch.device) -> float:
    if world == 1:
        return x
    t = torch.tensor([x], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / world


def build(cfg: Config, vocab: int, device: torch.device) -> Model:
    """The run's model, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    model = Model(cfg.model_config(vocab))
    if cfg.dtype == "float64":
        model = model.double()
    return model.to(device)


# ----------------------------------------------------------------------------- run

def _preflight(cfg: Config) -> None:
    """Refuse, with one clear line, what would otherwise fail deep inside a step."""
    if cfg.mixer not in MIXERS:
        raise ValueError(f"unknown mixer {cfg.mixer!r}; choose from {sorted(MIXERS)}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0, got {cfg.lr}")
    if cfg.backend == "triton" and not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("--backend triton needs a CUDA device, or TRITON_INTERPRET=1 in the environment "
                         "to run the kernels under Triton's CPU interpreter")


def _resume(cfg: Config, model: Model, opt: torch.optim.Optimizer, device: torch.device) -> int:
    """Load ``OUT/ckpt.pt`` into ``model`` and ``opt``; returns its step. The checkpoint must be of
    the same architecture and not past ``cfg.steps``."""
    ckpt = load_checkpoint(Path(cfg.out) / CKPT, device)
    if ckpt["model_config"] != asdict(model.config):
        diff = {k: (v, ckpt["model_config"].get(k)) for k, v in asdict(model.config).items()
                if ckpt["model_config"].get(k) != v}
        raise ValueError(f"{cfg.out}/{CKPT} holds another model; (asked, stored): {diff}")
    if ckpt["step"] > cfg.steps:
        raise ValueError(f"{cfg.out}/{CKPT} is at step {ckpt['step']}, past --steps {cfg.steps}: "
                         "a run cannot be resumed backwards")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    return ckpt["step"]


def _json_number(x: float) -> float | None:
    """JSON has no NaN or Inf: a non-finite value is written as null."""
    return x if math.isfinite(x) else None


def run(cfg: Config) -> dict:
    """Train one configuration; returns the summary dict (also written to OUT/summary.json).

    A non-finite loss or gradient norm, or an optimizer step that overflows, ends the run
    (the weights of that step are not updated): the summary then has ``"diverged": true``
    and ``"divergence"`` (step, cause, last finite loss). Every number written is finite
    or null.
    """
    _preflight(cfg)
    rank, world, device = setup_distributed()
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by {world} processes")
    out = Path(cfg.out)
    task = make_task(cfg.task, cfg.seq_len)
    model = build(cfg, task.vocab, device)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, lines = 0, []
    if cfg.resume and (out / CKPT).exists():
        start = _resume(cfg, model, opt, device)
        if start == cfg.steps and (out / SUMMARY).exists():
            return read_summary(out)                      # finished already: nothing to redo or overwrite
        lines = [json.dumps(rec) for rec in read_metrics(out) if rec["step"] < start]
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG, asdict(cfg))
        (out / METRICS).write_text("".join(ln + "\n" for ln in lines))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16")
    shard = slice(rank * cfg.batch_size // world, (rank + 1) * cfg.batch_size // world)
    losses: list[float] = []
    divergence = None
    chain = None
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not cfg.progress or rank != 0,
               desc=f"{cfg.mixer} L={cfg.depth}", leave=False)
    for step in bar:
        t0 = time.perf_counter()
        x, y = (t[shard].to(device) for t in task.batch(cfg.seed, step, cfg.batch_size))
        probe = HResProbe(PROBE_TOKENS)
        with autocast:
            logits = net(x, tap=probe)
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = layer_grad_norms(model.layers)
        total = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                     cfg.grad_clip if cfg.grad_clip > 0 else math.inf))
        loss_value = all_mean(float(loss.detach()), world, device)
        cause = "loss" if not math.isfinite(loss_value) else "gradient" if not math.isfinite(total) else None
        if cause is None:
            try:
                opt.step()
            except RuntimeError as exc:          # lr ~1e38: AdamW's step size overflows float32
                if "overflow" not in str(exc):
                    raise
                cause = "optimizer step overflow"
        if cause:
            divergence = {"step": step, "cause": cause, "loss": repr(loss_value), "grad_norm": repr(total),
                          "last_finite_loss": losses[-1] if losses else None}
        dt = time.perf_counter() - t0
        chain = probe.chain
        gain_f, gain_b = composite_gains(chain)
        record = {"step": step, "loss": _json_number(loss_value), "tokens_per_s": cfg.batch_size * cfg.seq_len / dt,
                  "grad_norm": {k: _json_number(v) for k, v in summarize(grads).items()},
                  "grad_norm_total": _json_number(total),
                  "gain_forward": _json_number(gain_f), "gain_backward": _json_number(gain_b),
                  "ds_residual": _json_number(max_ds_residual(chain))}
        if divergence:
            record["diverged"] = True
        if rank == 0:
            with open(out / METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{loss_value:.3f}", gain=f"{gain_f:.3g}")
        if divergence:
            break
        losses.append(loss_value)
        if rank == 0 and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0:
            save(cfg, model, opt, step + 1)
    bar.close()
    if divergence is None:
        chain = final_chain(cfg, model, task, device)
    summary = finish(cfg, model, task, device, chain, losses, divergence, start)
    if rank == 0:
        if divergence is None:
            save(cfg, model, opt, cfg.steps)
        write_json(out / SUMMARY, summary)
    return summary


def save(cfg: Config, model: Model, opt: torch.optim.Optimizer, step: int) -> None:
    """``OUT/ckpt.pt``: model config, run config, weights, optimizer state, step (atomic)."""
    save_checkpoint(Path(cfg.out) / CKPT, model_config=asdict(model.config), train_config=asdict(cfg),
                    model=model.state_dict(), opt=opt.state_dict(), step=step)


@torch.no_grad()
def stream_spread(cfg: Config, model: Model, task, device: torch.device) -> float:
    """Max over layers of ``||x - mean_j x_j|| / ||x||`` on the first validation batch."""
    spread = StreamSpread()
    model(task.batch(cfg.seed, 0, cfg.batch_size, split="val")[0].to(device), tap=spread)
    return spread.spread


@torch.no_grad()
def final_chain(cfg: Config, model: Model, task, device: torch.device) -> torch.Tensor:
    """``(L, probe, n, n)`` ``H_res`` chain of the final model on the first validation batch's probe tokens."""
    probe = HResProbe(PROBE_TOKENS)
    model(task.batch(cfg.seed, 0, cfg.batch_size, split="val")[0].to(device), tap=probe)
    return probe.chain


def finish(cfg: Config, model: Model, task, device: torch.device, chain: torch.Tensor,
           losses: list[float], divergence: dict | None, start: int) -> dict:
    """Validation loss, baselines, composite gains and certificate of ``chain``; the summary dict.

    ``chain`` is the final model's (or, after a divergence, the diverging step's); a
    non-finite chain has no certificate and its gains are written as null.
    """
    val_loss, ablation, spread = None, None, None
    if divergence is None and cfg.eval_batches > 0:
        val_loss = evaluate(model, task, cfg.seed, cfg.batch_size, cfg.eval_batches, device)[0]
        ablation = {kind: evaluate(model, task, cfg.seed, cfg.batch_size, cfg.eval_batches, device,
                                   tap=HResOverride(kind))[0] - val_loss for kind in HResOverride.KINDS}
        spread = stream_spread(cfg, model, task, device)
    gain_f, gain_b = composite_gains(chain)
    finite = bool(torch.isfinite(chain).all())
    tail = losses[-10:]
    return {
        "mixer": cfg.mixer, "depth": cfg.depth, "streams": model.n_streams,
        "width": cfg.width, "model": cfg.model, "task": cfg.task, "steps": cfg.steps,
        "diverged": divergence is not None, "divergence": divergence, "resumed_from": start,
        "final_loss": sum(tail) / len(tail) if tail else None,
        "val_loss": val_loss,
        "unigram_loss": task.unigram_entropy(),
        "stream_spread": spread, "h_res_ablation": ablation,
        "gain_forward": _json_number(gain_f), "gain_backward": _json_number(gain_b),
        "ds_residual": _json_number(max_ds_residual(chain)),
        "h_res_off_identity": _json_number(off_identity_mass(chain)),
        "mixing_params_per_layer": mixing_params(cfg.mixer, cfg.streams, cfg.width),
        "params": sum(p.numel() for p in model.parameters()),
        "certificate": composite_certificate(chain) if finite else None,
    }


# ----------------------------------------------------------------------------- CLI

def parse(argv: list[str] | None = None) -> Config:
    d = Config()
    ap = argparse.ArgumentParser(prog="python -m reference.train", description=__doc__.splitlines()[0])
    ap.add_argument("--mixer", choices=sorted(MIXERS), default=d.mixer)
    ap.add_argument("--depth", type=int, default=d.depth)
    ap.add_argument("--streams", type=int, default=d.streams, help="n (residual/rezero use 1)")
    ap.add_argument("--width", type=int, default=d.width, help="C")
    ap.add_argument("--model", choices=KINDS, default=d.model)
    ap.add_argument("--heads", type=int, default=d.heads)
    ap.add_argument("--task", choices=TASKS, default=d.task)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch")
    ap.add_argument("--seq-len", type=int, default=d.seq_len)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay)
    ap.add_argument("--grad-clip", type=float, default=d.grad_clip, help="0 disables")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=d.dtype,
                    help="bfloat16 = autocast with float32 weights")
    ap.add_argument("--init", choices=INITS, default=d.init,
                    help="mixers' initialisation: reference (the papers' public code) or symmetric (ablation)")
    ap.add_argument("--sk-order", choices=SK_ORDERS, default=d.sk_order,
                    help="mhc's Sinkhorn order: cols_rows ends on rows (forward gain 1), rows_cols on columns")
    ap.add_argument("--norm", choices=NORMS, default=d.norm,
                    help="sublayer input norm: pre (RMSNorm) or none (ablation)")
    ap.add_argument("--backend", choices=BACKENDS, default=d.backend,
                    help="triton: mixers' Sinkhorn and stream mixing on the gpu kernels")
    ap.add_argument("--out", default=d.out)
    ap.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    ap.add_argument("--eval-batches", type=int, default=d.eval_batches)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    args = ap.parse_args(argv)
    for name in ("depth", "streams", "width", "steps", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    return Config(**vars(args))


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    try:
        summary = run(cfg)
    except ValueError as exc:
        print(f"reference.train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("mixer", "depth", "final_loss", "val_loss",
                                                  "unigram_loss", "gain_forward", "diverged")}))
    return EXIT_DIVERGED if summary["diverged"] else 0


if __name__ == "__main__":
    sys.exit(main())
