"""Reference trainer: any mixer, any depth, one process or DDP.

    python -m reference.train --mixer mhc --depth 256 --streams 4 --task charlm --out runs/x
    torchrun --nproc_per_node 2 -m reference.train --mixer kromhc ...   # DDP (gloo on CPU)

Writes the run folder of :mod:`reference.lab.runs`: ``OUT/config.json``, ``OUT/metrics.jsonl``
(one line per step: loss, tokens/s, per-layer gradient-norm summary, composite Amax
gains of ``prod H_res`` over the probe tokens, max DS residual), ``OUT/summary.json``
(final/validation loss, unigram baseline, the ``birkhoff.certify_product`` certificate
of the composite map and its ``composite_sigma2 = ||P - J/n||_2``, how far the depth-L stack
collapses the streams toward their average, and whether the streams are used: ``stream_spread`` and
``h_res_ablation``, the change of validation loss with every ``H_res`` set to ``I`` or
``J / n``), ``OUT/ckpt.pt`` (every ``--ckpt-every`` steps and at the end) and ``OUT/health.csv``
(:class:`reference.Monitor` reading the training step's own passes, every ``--health-every`` steps).

A run folder is one run. Its settings are fixed when it is made; an existing run is
refused unless ``--resume`` (continue it from its checkpoint: same trajectory as an
uninterrupted run; every setting that changes the result must be the same, only
``--steps`` may grow under the constant schedule, not under ``paper``, whose cosine is laid over it; a finished run is left as it is) or ``--overwrite`` (replace it)
is given. A lock keeps a second trainer out of a folder in use. The records are
append-only and the summary is computed from all of them, so a kill at any moment
loses at most the steps since the last checkpoint.

Divergence: a non-finite loss, gradient norm, parameter or optimizer state after an
update, or validation loss is logged as ``"diverged": true``, recorded in
``summary.json`` (``"divergence"``: step, cause, last finite loss), saves no final
checkpoint and ends the run with exit code 3. Bad arguments, a bad run folder, a
foreign, malformed or truncated checkpoint, or one of another model or other settings
exit with code 2 and one line.

Batches are a function of ``(seed, step)``; with ``W`` processes each rank takes its
``batch_size / W`` rows of the same global batch, and DDP averages the gradients, so the
loss trajectory matches one process with the same global batch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from birkhoff.cli import OneLineParser

from .._gpu import BACKENDS, STREAM_LIMITS
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..health import Health, Monitor, monitor
from ..metrics import (composite_certificate, composite_gains, layer_grad_norms, max_ds_residual,
                      off_identity_mass, summarize)
from ..mixers import FAVOURED, INITS, MIXER_NORMS, MIXERS, RES_BOUNDS, SK_ORDERS, mixing_params
from ..models import KINDS, Model, load_weights, stored_config
from ..norms import NORMS
from ..tap import HResOverride, HResProbe
from .data import TASKS, make_task
from .run_plots import plot_run, write_tensorboard
from .runs import (CKPT, CONFIG, DTYPES, LOCK, METRICS, RUN_FILES, SUMMARY, Config, RunLock, append_record,
                   changed_settings, config_from_dict, evaluate, finished, json_safe, read_config, read_metrics,
                   truncate_records, write_csv, write_json)
from .schedule import SCHEDULES, lr_at, make_optimizer

EXIT_DIVERGED = 3
PROBE_TOKENS = 8
# the signals that stop a run cleanly (a checkpoint at the last finished step), and their exit codes
STOP_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(Exception):
    """The run was stopped by a signal after its checkpoint at ``step`` was written."""

    def __init__(self, signum: int, step: int, out: str):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.out = signum, step, out


class _StopRequest:
    """Signal handlers that record a stop request instead of raising in the middle of a step; the
    training loop reads it between steps (all ranks agree under DDP). Installed only in the main
    thread (signals are delivered there), restored on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._saved: dict = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.signum = self.signum or signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def requested(self, world: int, device: torch.device) -> int | None:
        """The signal that asked to stop, on any rank (None: go on)."""
        if world == 1:
            return self.signum
        t = torch.tensor([self.signum or 0], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t) or None


_STOP = _StopRequest()


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
    """Refuse, with one clear line, what this machine cannot run (the values themselves are checked
    by :class:`Config`)."""
    if cfg.backend == "triton" and not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("--backend triton needs a CUDA device, or TRITON_INTERPRET=1 in the environment "
                         "to run the kernels under Triton's CPU interpreter")


def new_run_dir(cfg: Config, root: Path = Path("runs/train")) -> Path:
    """A new, empty folder ``root/<mixer>-L<depth>-<time>[-k]`` (made here, so no other run gets it)."""
    stem = f"{cfg.mixer}-L{cfg.depth}-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        path = root / (stem if k == 1 else f"{stem}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ValueError(f"no free run folder name under {root} for {stem}")


def _shared(world: int, rank: int, make):
    """``make()`` on rank 0, its result (or its error, as a ``ValueError``) on every rank."""
    if world == 1:
        return make()
    box: list = [None]
    if rank == 0:
        try:
            box[0] = ("ok", make())
        except (ValueError, OSError) as exc:
            box[0] = ("error", str(exc))
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise ValueError(value)
    return value


def _hyperparameters(opt: torch.optim.Optimizer) -> list[dict]:
    """Each parameter group's settings (betas, eps, weight decay, ...; sequences as tuples), less the
    parameters and the learning rate, which the schedule sets at every step."""
    return [{k: tuple(v) if isinstance(v, list) else v for k, v in g.items() if k not in ("params", "lr", "initial_lr")}
            for g in opt.param_groups]


def _restore(ckpt: dict, cfg: Config, model: Model, opt: torch.optim.Optimizer) -> int:
    """Check ``ckpt`` against the run asked for and load it into ``model`` and ``opt``; its step.

    Nothing on disk is touched: every fault is a :class:`CheckpointError` or ``ValueError``.
    """
    path = Path(cfg.out) / CKPT
    stored = stored_config(ckpt, path)
    if stored != model.config:
        diff = {k: (v, getattr(stored, k)) for k, v in asdict(model.config).items() if getattr(stored, k) != v}
        raise ValueError(f"{path} holds another model; (asked, stored): {diff}")
    try:
        trained = config_from_dict(ckpt["train_config"], cfg.out)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: train_config is not a run configuration ({exc})") from None
    if changed := changed_settings(trained, cfg):
        raise ValueError(f"{path} was trained with other settings ({'; '.join(changed)})")
    if ckpt["step"] > cfg.steps:
        raise ValueError(f"{path} is at step {ckpt['step']}, past --steps {cfg.steps}: "
                         "a run cannot be resumed backwards")
    load_weights(model, ckpt, path)
    asked = _hyperparameters(opt)
    try:
        opt.load_state_dict(ckpt["opt"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise CheckpointError(f"{path}: the optimizer state does not fit the model ({exc})") from None
    for p in model.parameters():
        for name, t in opt.state.get(p, {}).items():
            if t.ndim and t.shape != p.shape:
                raise CheckpointError(f"{path}: optimizer state {name!r} has shape {tuple(t.shape)} "
                                      f"for a parameter of shape {tuple(p.shape)}")
    # the optimizer's settings are the run's (config.json), not whatever the file says
    stored = _hyperparameters(opt)
    if [len(g["params"]) for g in opt.param_groups] != [len(g["params"]) for g in ckpt["opt"]["param_groups"]] \
            or stored != asked:
        diff = [f"group {i}: {k} {a.get(k)!r} in the run, {b.get(k)!r} in the file" for i, (a, b)
                in enumerate(zip(asked, stored)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise CheckpointError(f"{path}: the optimizer state was made with other settings than the run's "
                              f"({'; '.join(diff) or 'other parameter groups'})")
    return ckpt["step"]


def _clear(out: Path) -> None:
    """Remove a run's own files from ``out`` (``--overwrite``); anything else there stays."""
    for name in (*RUN_FILES, *(f + ".tmp" for f in RUN_FILES)):
        (out / name).unlink(missing_ok=True)


def _open(cfg: Config, model: Model, opt: torch.optim.Optimizer, device: torch.device) -> tuple[int, dict | None]:
    """Decide what this call does with ``cfg.out`` (held under its :class:`RunLock`): start a new
    run, replace one (``--overwrite``) or continue one (``--resume``); returns the first step
    and, for a run that is already finished, its summary. Every check runs before the folder
    is touched."""
    out = Path(cfg.out)
    present = {p.name for p in out.iterdir()} - {LOCK, *(name + ".tmp" for name in RUN_FILES)}
    if present and CONFIG not in present and not cfg.overwrite:     # (a kill while making it leaves a .tmp only)
        raise ValueError(f"{out} is not empty and holds no run config ({', '.join(sorted(present)[:3])}); "
                         "choose another --out, or --overwrite to replace the run files there")
    if CONFIG not in present or cfg.overwrite:
        if cfg.resume:
            raise ValueError(f"--resume: {out} holds no run to continue")
        _clear(out)
        write_json(out / CONFIG, asdict(cfg))
        (out / METRICS).touch()
        return 0, None
    if not cfg.resume:
        raise ValueError(f"{out} already holds a run: pass --resume to continue it or --overwrite to replace it "
                         "(or choose another --out)")
    saved = read_config(out)
    if saved.schedule != "constant" and saved.steps != cfg.steps:
        raise ValueError(f"--resume cannot change --steps ({saved.steps} -> {cfg.steps}) under --schedule "
                         f"{saved.schedule}: its warmup and cosine are laid over --steps, so every remaining step's "
                         "lr would change; start a new run in another --out")
    if changed := changed_settings(saved, cfg):
        raise ValueError(f"--resume cannot change what the run computes ({'; '.join(changed)}); "
                         "start a new run in another --out")
    if CKPT not in present:
        raise ValueError(f"--resume: {out} has no checkpoint (the run stopped before its first one); "
                         "start it again with --overwrite")
    start = _restore(load_checkpoint(out / CKPT, device), cfg, model, opt)
    if start == cfg.steps and (done := finished(cfg)) is not None:
        return start, done                                # finished already: nothing to redo or overwrite
    truncate_records(out, start)
    for name in RUN_FILES:
        (out / (name + ".tmp")).unlink(missing_ok=True)   # a save that a kill interrupted
    if saved.steps != cfg.steps:
        write_json(out / CONFIG, asdict(cfg))
    return start, None


def _finite_state(model: Model, opt: torch.optim.Optimizer) -> bool:
    """Are every parameter and every optimizer-state tensor finite? (One fused norm per tensor: a
    finite norm means finite entries; a non-finite one is checked entry by entry, since the norm
    of huge finite entries can overflow.)"""
    tensors = [p.detach() for p in model.parameters()]
    tensors += [t for s in opt.state.values() for t in s.values()
                if isinstance(t, torch.Tensor) and t.is_floating_point()]
    norms = torch.stack(torch._foreach_norm(tensors)).float() if tensors else torch.zeros(1)
    if bool(torch.isfinite(norms).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t, v in zip(tensors, norms.tolist()) if not math.isfinite(v))


def run(cfg: Config) -> dict:
    """Train one configuration; returns the summary dict (also written to OUT/summary.json).

    A non-finite loss or gradient norm, an optimizer step that overflows, non-finite
    parameters or optimizer state after an update, or a non-finite validation loss ends
    the run: the summary then has ``"diverged": true`` and ``"divergence"`` (step, cause,
    last finite loss), and no final checkpoint is written. Every number written is
    finite or null.
    """
    _preflight(cfg)
    rank, world, device = setup_distributed()
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by {world} processes")
    if not cfg.out:
        cfg = replace(cfg, out=_shared(world, rank, lambda: str(new_run_dir(cfg))))
    task = make_task(cfg.task, cfg.seq_len)
    model = build(cfg, task.vocab, device)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.beta2, cfg.mixer_lr_scale)
    with RunLock(cfg.out) if rank == 0 else contextlib.nullcontext():
        start, done = _shared(world, rank, lambda: _open(cfg, model, opt, device))
        if done is not None:
            return done
        if rank != 0 and start:
            _restore(load_checkpoint(Path(cfg.out) / CKPT, device), cfg, model, opt)
        summary = _train(cfg, model, opt, task, start, rank, world, device)
    return summary


def _train(cfg: Config, model: Model, opt: torch.optim.Optimizer, task, start: int, rank: int, world: int,
           device: torch.device) -> dict:
    """Steps ``start .. cfg.steps - 1`` (records appended as they go), then the final checkpoint and
    the summary of the whole run."""
    out = Path(cfg.out)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16")
    shard = slice(rank * cfg.batch_size // world, (rank + 1) * cfg.batch_size // world)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not cfg.progress or rank != 0,
               desc=f"{cfg.mixer} L={cfg.depth}", leave=False)
    hook = Monitor(model, out, every=cfg.health_every, tokens=PROBE_TOKENS, start=start) \
        if rank == 0 and cfg.health_every else None
    try:
        divergence, chain = _steps(cfg, model, net, opt, task, bar, hook, autocast, shard, rank, world, device)
    finally:
        if hook is not None:
            hook.close()
    bar.close()
    if divergence is None and (signum := _STOP.requested(world, device)):
        _stop(cfg, model, opt, cfg.steps, signum, rank)
    evaluation, health = None, None
    if divergence is None and not _finite_output(model, task, cfg, device):
        divergence = {"step": cfg.steps, "cause": "final model output", "loss": None, "grad_norm": None}
    if divergence is None:
        health = monitor(model, task.batch(cfg.seed, 0, cfg.batch_size, split="val")[0].to(device),
                         tokens=PROBE_TOKENS)
        evaluation = validate(cfg, model, task, device)
        if evaluation["val_loss"] is not None and not math.isfinite(evaluation["val_loss"]):
            divergence = {"step": cfg.steps, "cause": "validation loss", "loss": repr(evaluation["val_loss"]),
                          "grad_norm": None}
            evaluation, health = None, None
    if rank == 0 and divergence is None and start < cfg.steps:
        save(cfg, model, opt, cfg.steps)
    return _shared(world, rank, lambda: _summarize(cfg, out, model, task, chain, health, evaluation, divergence,
                                                   start))


def _steps(cfg: Config, model: Model, net: torch.nn.Module, opt: torch.optim.Optimizer, task, bar, hook: Monitor | None,
           autocast, shard: slice, rank: int, world: int, device: torch.device) -> tuple[dict | None, list | None]:
    """The training steps of ``bar`` (records appended as they go; ``hook``, the health monitor, reading the
    forward and backward passes of the steps it is due at, before their updates): ``(divergence, chain)``,
    the first divergence or None and the last step's ``H_res``."""
    out = Path(cfg.out)
    divergence = None
    chain = None
    for step in bar:
        if signum := _STOP.requested(world, device):
            _stop(cfg, model, opt, step, signum, rank)
        t0 = time.perf_counter()
        lr = lr_at(cfg.schedule, step, cfg.steps, cfg.lr, cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        x, y = (t[shard].to(device) for t in task.batch(cfg.seed, step, cfg.batch_size))
        probe = HResProbe(PROBE_TOKENS)
        with hook.observe(step) if hook is not None else contextlib.nullcontext():  # reads the step's passes
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
        if cause is None and not _finite_state(model, opt):
            cause = "parameters"                 # the update itself blew up: non-finite weights or state
        if cause:
            divergence = {"step": step, "cause": cause, "loss": repr(loss_value), "grad_norm": repr(total)}
        dt = time.perf_counter() - t0
        chain = probe.chain
        gain_f, gain_b = composite_gains(chain)
        record = {"step": step, "lr": lr, "loss": loss_value, "tokens_per_s": cfg.batch_size * cfg.seq_len / dt,
                  "grad_norm": summarize(grads), "grad_norm_total": total,
                  "gain_forward": gain_f, "gain_backward": gain_b, "ds_residual": max_ds_residual(chain)}
        if divergence:
            record["diverged"] = True
        if rank == 0:
            append_record(out, record)
            bar.set_postfix(loss=f"{loss_value:.3f}", gain=f"{gain_f:.3g}")
        if divergence:
            break
        if rank == 0 and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0:
            save(cfg, model, opt, step + 1)
    return divergence, chain


def _stop(cfg: Config, model: Model, opt: torch.optim.Optimizer, step: int, signum: int, rank: int) -> None:
    """Checkpoint the ``step`` steps taken (their records are on disk) and raise :class:`Interrupted`."""
    if rank == 0:
        save(cfg, model, opt, step)
    raise Interrupted(signum, step, str(cfg.out))


def _finite_output(model: Model, task, cfg: Config, device: torch.device) -> bool:
    """Does the trained model give finite logits on the first validation batch? (Finite weights can
    still overflow a forward pass: the last update's blow-up, whatever ``--eval-batches``.)"""
    x = task.batch(cfg.seed, 0, cfg.batch_size, split="val")[0].to(device)
    with torch.no_grad():
        return bool(torch.isfinite(model(x)).all())


def save(cfg: Config, model: Model, opt: torch.optim.Optimizer, step: int) -> None:
    """``OUT/ckpt.pt``: model config, run config, weights, optimizer state, step (atomic). The
    records it has seen are flushed to disk first, so a checkpoint never outlives them."""
    with open(Path(cfg.out) / METRICS, "a") as f:
        os.fsync(f.fileno())
    save_checkpoint(Path(cfg.out) / CKPT, model_config=asdict(model.config), train_config=asdict(cfg),
                    model=model.state_dict(), opt=opt.state_dict(), step=step)


def validate(cfg: Config, model: Model, task, device: torch.device) -> dict:
    """Validation loss and the ``H_res`` ablations (change of validation loss with every ``H_res`` set
    to ``I`` or ``J / n``) of the final model (None without ``eval_batches``)."""
    if cfg.eval_batches == 0:
        return {"val_loss": None, "h_res_ablation": None}
    val_loss = evaluate(model, task, cfg.seed, cfg.batch_size, cfg.eval_batches, device)[0]
    ablation = {kind: evaluate(model, task, cfg.seed, cfg.batch_size, cfg.eval_batches, device,
                               tap=HResOverride(kind))[0] - val_loss for kind in HResOverride.KINDS}
    return {"val_loss": val_loss, "h_res_ablation": ablation}


def final_loss(records: list[dict], window: int = 10) -> float | None:
    """Mean training loss of the last ``window`` finite steps of the whole run (every resume included)."""
    losses = [r["loss"] for r in records if not r.get("diverged") and r.get("loss") is not None]
    tail = losses[-window:]
    return sum(tail) / len(tail) if tail else None


def _composite(health: Health | None, chain: torch.Tensor | None) -> dict:
    """The composite map's summary fields: from the final model's :func:`reference.hyper.monitor` pass
    (first validation batch), or, after a divergence, from the diverging step's ``H_res`` chain (no
    certificate for a non-finite chain; non-finite gains are written as null)."""
    if health is not None:
        last = health.layers[-1]
        return {"gain_forward": last.gain_forward, "gain_backward": last.gain_backward,
                "ds_residual": max(h.ds_residual for h in health.layers),
                "h_res_off_identity": sum(h.off_identity for h in health.layers) / len(health.layers),
                "stream_spread": max(h.stream_spread for h in health.layers),
                "health": {"ok": health.ok, "flags": health.flags}, "certificate": health.certificate,
                "composite_sigma2": last.certified_sigma2}
    gain_f, gain_b = composite_gains(chain)
    cert = composite_certificate(chain) if bool(torch.isfinite(chain).all()) else None
    return {"gain_forward": gain_f, "gain_backward": gain_b, "ds_residual": max_ds_residual(chain),
            "h_res_off_identity": off_identity_mass(chain), "stream_spread": None, "health": None,
            "certificate": cert, "composite_sigma2": cert["sigma2"] if cert else None}


def _summarize(cfg: Config, out: Path, model: Model, task, chain: torch.Tensor | None, health: Health | None,
               evaluation: dict | None, divergence: dict | None, start: int) -> dict:
    """The summary of the whole run, from its records on disk, written to ``OUT/summary.json``."""
    records = read_metrics(out)
    if divergence is not None:
        finite = [r["loss"] for r in records if not r.get("diverged") and r.get("loss") is not None]
        divergence = {**divergence, "last_finite_loss": finite[-1] if finite else None}
    summary = {
        "out": str(out), "mixer": cfg.mixer, "depth": cfg.depth, "n_streams": model.n_streams,
        "width": cfg.width, "model": cfg.kind, "task": cfg.task, "steps": cfg.steps,
        "diverged": divergence is not None, "divergence": divergence, "resumed_from": start,
        "final_loss": final_loss(records),
        **(evaluation or {"val_loss": None, "h_res_ablation": None}),
        "unigram_loss": task.unigram_entropy(),
        **_composite(health, chain),
        "mixing_params_per_layer": mixing_params(cfg.mixer, cfg.n_streams, cfg.width, cfg.mixer_norm),
        "params": sum(p.numel() for p in model.parameters()),
    }
    summary = json_safe(summary)
    write_csv(out, records)                     # the readable outputs first; summary.json marks the run done
    if cfg.plots:
        plot_run(out, records, summary)
    write_tensorboard(out, records)
    write_json(out / SUMMARY, summary)
    return summary


def run_once(cfg: Config) -> dict:
    """The summary of ``cfg`` in ``cfg.out``, for studies that reuse their runs: read back when the
    folder holds that run finished, continued from its checkpoint when it holds it unfinished
    (started again when it has none), trained when the folder is new. A folder holding a run of
    other settings is an error unless ``cfg.overwrite``."""
    if (done := finished(cfg)) is not None:
        return done
    out = Path(cfg.out)
    if (out / CONFIG).exists() and not cfg.overwrite:
        if changed := changed_settings(read_config(out), cfg):
            raise ValueError(f"{out} holds a run of other settings ({'; '.join(changed)}); "
                             "pass --overwrite to replace it or choose another --out")
        resumable = (out / CKPT).exists()
        return run(replace(cfg, resume=resumable, overwrite=not resumable))
    return run(cfg)


# ----------------------------------------------------------------------------- CLI

class _OneDefault(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, once: not where the help states its own (or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parse(argv: list[str] | None = None) -> Config:
    d = Config()
    ap = OneLineParser(prog="python -m reference.train", description=__doc__.splitlines()[0],
                       formatter_class=_OneDefault)
    ap.add_argument("--mixer", choices=sorted(MIXERS), default=d.mixer, help="the residual mixer")
    ap.add_argument("--depth", type=int, default=d.depth, help="layers")
    ap.add_argument("--streams", dest="n_streams", type=int, default=d.n_streams,
                    help=f"n_streams: the residual streams n (residual and rezero use 1; triton: at most "
                         f"{STREAM_LIMITS['triton']})")
    ap.add_argument("--width", type=int, default=d.width, help="C")
    ap.add_argument("--model", dest="kind", choices=KINDS, default=d.kind, help="mlp stack, transformer or tokenmix")
    ap.add_argument("--heads", type=int, default=d.heads, help="attention heads")
    ap.add_argument("--task", choices=TASKS, default=d.task,
                    help="charlm: the bundled corpus; markov, recall: synthetic")
    ap.add_argument("--steps", type=int, default=d.steps, help="optimizer steps")
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch")
    ap.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per sequence")
    ap.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    ap.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                    help="constant, or paper: warmup, cosine to lr/10, wd 0.1, clip 1.0, beta2 0.95 (mHC-lite's "
                         "nanoGPT runs)")
    ap.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 0; paper: 2%% of --steps)")
    ap.add_argument("--weight-decay", type=float, default=None,
                    help="on weights of >= 2 dims (default: 0; paper: 0.1)")
    ap.add_argument("--grad-clip", type=float, default=None, help="0 disables (default: 1.0)")
    ap.add_argument("--beta2", type=float, default=None, help="AdamW's beta2 (default: 0.999; paper: 0.95)")
    ap.add_argument("--mixer-lr-scale", type=float, default=d.mixer_lr_scale,
                    help="the mixers' parameters train at this multiple of the lr (the premise experiment)")
    ap.add_argument("--seed", type=int, default=d.seed, help="initialisation and batches")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=d.dtype,
                    help="bfloat16 = autocast with float32 weights")
    ap.add_argument("--init", choices=INITS, default=d.init,
                    help="mixers' initialisation: reference (the papers' public code) or symmetric (ablation)")
    ap.add_argument("--sk-order", choices=SK_ORDERS, default=d.sk_order,
                    help="mhc's Sinkhorn order: cols_rows ends on rows (forward gain 1), rows_cols on columns")
    ap.add_argument("--norm", choices=NORMS, default=d.norm,
                    help="sublayer input norm: pre (RMSNorm) or none (ablation)")
    ap.add_argument("--favoured", choices=FAVOURED, default=d.favoured,
                    help="the reference init's favoured stream: as each source (hc: layer index; the mHC "
                         "family: random, as mHC-lite's runs), or one rule for all")
    ap.add_argument("--mixer-norm", choices=MIXER_NORMS, default=d.mixer_norm,
                    help="coefficient norm: as each source (hc: LayerNorm; mHC family: RMSNorm with gain) or "
                         "plain (RMSNorm, no gain)")
    ap.add_argument("--res-bound", choices=RES_BOUNDS, default=d.res_bound,
                    help="hc's causal arm: norm divides each H_res by max(1, its Amax gains), nothing else changed")
    ap.add_argument("--backend", choices=BACKENDS, default=d.backend,
                    help="triton: mixers' Sinkhorn and stream mixing on the gpu kernels")
    ap.add_argument("--out", default=d.out,
                    help="the run folder (default: a new runs/train/<mixer>-L<depth>-<time>)")
    ap.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help="0: checkpoint at the end only")
    ap.add_argument("--health-every", type=int, default=d.health_every,
                    help="observe every this many training steps with the health monitor (reference.Monitor), "
                         "logging OUT/health.csv and TensorBoard (well under 1 %% of training time at 200); 0: never")
    ap.add_argument("--eval-batches", type=int, default=d.eval_batches, help="validation batches at the end")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its checkpoint (its settings may not change; "
                         "--steps may grow under --schedule constant)")
    ap.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    ap.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    ap.add_argument("--no-plots", dest="plots", action="store_false",
                    help="no OUT/curves.png (records, CSV and TensorBoard events are written all the same)")
    return Config(**vars(ap.parse_args(argv)))      # every value is checked once, by Config


def _resume_command(argv: list[str], out: str) -> str:
    """The command line that continues an interrupted run: the same arguments, ``--out`` and ``--resume``."""
    args = [a for a in argv if a not in ("--resume", "--overwrite")]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", out]
    return "python -m reference.train " + " ".join(shlex.quote(a) for a in [*args, "--resume"])


def main(argv: list[str] | None = None) -> int:
    """The command line; exit 0 done, 2 bad input / refused resume / OS error, 3 diverged, 130 / 143
    interrupted by SIGINT / SIGTERM after a checkpoint (one line on stderr for each but 0)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    lead = int(os.environ.get("RANK", "0")) == 0
    try:
        with _STOP:
            summary = run(parse(argv))
        if dist.is_initialized():        # no rank tears the group down while another still uses it
            dist.barrier()
    except Interrupted as exc:
        if lead:
            print(f"reference.train: {exc}; resume with: {_resume_command(argv, exc.out)}", file=sys.stderr)
        return STOP_SIGNALS[exc.signum]
    except (ValueError, OSError) as exc:          # bad settings, a bad run folder or checkpoint, a full disk
        message = " ".join(str(exc).split())
        print(f"reference.train: error: {message}", file=sys.stderr)
        return 2
    finally:
        _STOP.signum = None
        if dist.is_initialized():
            dist.destroy_process_group()
    if lead:
        print(json.dumps({k: summary[k] for k in ("out", "mixer", "depth", "final_loss", "val_loss",
                                                  "unigram_loss", "gain_forward", "diverged")}))
        if summary["diverged"]:
            d = summary["divergence"]
            values = "".join(f", {k.replace('_', ' ')} {d[k]}" for k in ("loss", "grad_norm") if d.get(k) is not None)
            print(f"reference.train: diverged at step {d['step']}, non-finite: {d['cause']}{values}; the records are "
                  f"in {summary['out']}", file=sys.stderr)
    return EXIT_DIVERGED if summary["diverged"] else 0

