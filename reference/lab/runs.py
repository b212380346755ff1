"""The run folder: what ``python -m reference.train`` writes, and the one place that reads it.

    OUT/config.json     the run's :class:`Config`, fixed when the folder is made
    OUT/metrics.jsonl   one JSON line per step (loss, tokens/s, gradient norms, gains, DS residual);
                        append-only: a resume cuts it back to the checkpoint's step with one truncate
    OUT/summary.json    the end of the run (losses, gains, certificate, divergence), computed from
                        the whole run's records
    OUT/ckpt.pt         :mod:`reference.checkpoint` (model config, weights, optimizer, step)
    OUT/metrics.csv     the records as a table (:data:`CSV_COLUMNS`), written with the summary
    OUT/curves.png      loss, learning rate and composite gain over the run, written with the summary
                        (unless ``--no-plots``)
    OUT/tensorboard/    the same scalars for TensorBoard, when ``tensorboard`` is installed
    OUT/health.csv      :class:`reference.Monitor`'s scalars every ``--health-every`` steps (and in
                        ``OUT/tensorboard/health``); a resume drops its rows past the checkpoint
    OUT/.lock           held (``flock``) by the one trainer writing the folder

Every JSON file is strict JSON: a non-finite number is written as ``null``. Studies read
runs through :func:`read_config`, :func:`read_metrics`, :func:`read_summary`,
:func:`load_model` and score models with :func:`evaluate`, the trainer's own validation.
"""

from __future__ import annotations

import fcntl
import json
import math
import numbers
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from birkhoff.validate import count

from ..checkpoint import LEGACY_DEFAULTS, atomic_write
from ..checks import check_choice
from ..models import Architecture, Model, ModelConfig
from ..tap import Tap
from .data import IGNORE, TASKS
from .schedule import PAPER, SCHEDULES, default_warmup

__all__ = ["Config", "DTYPES", "RunLock", "read_config", "changed_settings", "write_json", "json_safe", "append_record",
           "truncate_records", "read_metrics", "write_csv", "read_summary", "finished", "load_model", "evaluate"]

CONFIG, METRICS, SUMMARY, CKPT, LOCK = "config.json", "metrics.jsonl", "summary.json", "ckpt.pt", ".lock"
CSV, CURVES, TENSORBOARD, HEALTH = "metrics.csv", "curves.png", "tensorboard", "health.csv"
RUN_FILES = (CONFIG, METRICS, SUMMARY, CKPT, CSV, CURVES, HEALTH)
CSV_COLUMNS = ("step", "lr", "loss", "grad_norm_total", "grad_norm_max_layer", "gain_forward", "gain_backward",
               "ds_residual", "tokens_per_s", "diverged")


DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


# Upper bounds of a run's sizes, checked when its config is made (docs/RELIABILITY.md); the model's are
# reference.models.SIZE_LIMITS. The seed is a torch seed (a 64-bit integer).
RUN_LIMITS = {"steps": 10 ** 8, "batch_size": 65_536, "seq_len": 8_192, "eval_batches": 100_000,
              "ckpt_every": 10 ** 8, "health_every": 10 ** 8, "seed": 2 ** 63 - 1, "batch_size * seq_len * n_streams * width": 2 ** 28}


@dataclass(frozen=True, kw_only=True)
class Config(Architecture):
    """One training run: the model's :class:`~reference.models.Architecture` (its fields, defaults
    and checks, inherited), the data, the optimisation and where it goes. Every value is checked
    here, when the config is made (``ValueError`` with the field's name).

    ``out=None`` gives a new folder ``runs/train/<mixer>-L<depth>-<time>`` per run.
    ``schedule`` is ``"constant"`` or ``"paper"`` (:mod:`reference.lab.schedule`); ``weight_decay``,
    ``grad_clip``, ``beta2`` and ``warmup`` left at None take the schedule's values (constant:
    0, 1.0, 0.999, 0; paper: 0.1, 1.0, 0.95, 2 % of ``steps``) when the config is made.
    ``mixer_lr_scale`` multiplies the lr of the mixers' parameters (the premise experiment; 1: none).
    ``health_every``: the training hook :class:`reference.Monitor` checks the model every that many steps
    (0: never), before the step's update, on its batch. ``plots=False``: no ``OUT/curves.png`` (the
    records, CSV and TensorBoard events are written all the same).
    """

    task: str = "charlm"
    steps: int = 200
    batch_size: int = 16
    seq_len: int = 64
    lr: float = 3e-3
    schedule: str = "constant"
    warmup: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    beta2: float | None = None
    mixer_lr_scale: float = 1.0
    seed: int = 0
    dtype: str = "float32"
    out: str | None = None
    ckpt_every: int = 0
    health_every: int = 200
    eval_batches: int = 8
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, options in (("task", TASKS), ("schedule", SCHEDULES), ("dtype", tuple(DTYPES))):
            check_choice(name, getattr(self, name), options)
        for name, low in (("steps", 1), ("batch_size", 1), ("seq_len", 1), ("eval_batches", 0), ("ckpt_every", 0),
                          ("health_every", 0), ("seed", 0)):
            count(getattr(self, name), name, low=low, high=RUN_LIMITS[name])
        tokens = self.batch_size * self.seq_len * self.n_streams * self.width
        if tokens > RUN_LIMITS["batch_size * seq_len * n_streams * width"]:
            raise ValueError(f"batch_size * seq_len * n_streams * width = {tokens} is over "
                             f"{RUN_LIMITS['batch_size * seq_len * n_streams * width']}: one layer's activations "
                             "would not fit in memory")
        if self.out is not None and not (isinstance(self.out, str) and self.out.strip()):
            raise ValueError(f"out must name a folder, got {self.out!r}")
        paper = self.schedule == "paper"
        for name, constant in (("weight_decay", 0.0), ("grad_clip", 1.0), ("beta2", 0.999)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, PAPER[name] if paper else constant)
        if self.warmup is None:
            object.__setattr__(self, "warmup", default_warmup(self.schedule, self.steps))
        count(self.warmup, "warmup")
        for name in ("lr", "weight_decay", "grad_clip", "mixer_lr_scale"):
            value, positive = getattr(self, name), name in ("lr", "mixer_lr_scale")
            valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not (valid and (value > 0 or not positive and value == 0)):
                raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
        if not (isinstance(self.beta2, numbers.Real) and not isinstance(self.beta2, bool) and 0 <= self.beta2 < 1):
            raise ValueError(f"beta2 must be a number in [0, 1), got {self.beta2!r}")
        if self.resume and self.overwrite:
            raise ValueError("resume continues the run in out and overwrite replaces it: pass one of them")

    def with_steps(self, steps: int) -> "Config":
        """This config for ``steps`` steps; a warmup that was its schedule's default follows the new length."""
        default = self.warmup == default_warmup(self.schedule, self.steps)
        return replace(self, steps=steps, warmup=default_warmup(self.schedule, steps) if default else self.warmup)

    def model_config(self, vocab: int) -> ModelConfig:
        """The model this run trains, for a task with ``vocab`` symbols (positions up to ``seq_len``)."""
        return ModelConfig.of(self, vocab=vocab, max_len=self.seq_len)


# fields that do not change what a run computes (out: the folder itself); ``steps`` may
# change on ``--resume`` under a constant learning rate (which does not depend on it),
# every other field is a setting of the run, fixed when its folder is made
BOOKKEEPING = {"progress", "resume", "overwrite", "out", "ckpt_every", "health_every", "plots"}
# settings an older run's config lacks, with the value that run used; and settings it stored under another name
LEGACY_RUN_DEFAULTS = {**LEGACY_DEFAULTS, "schedule": "constant", "warmup": 0, "beta2": 0.999, "mixer_lr_scale": 1.0}
RENAMED = {"streams": "n_streams", "model": "kind"}


def config_from_dict(saved: dict, run_dir: str | os.PathLike) -> Config:
    """The :class:`Config` stored as ``saved``; fields added after the run was made take their
    defaults as they were before the field existed (:data:`LEGACY_RUN_DEFAULTS`), renamed fields
    their new name (:data:`RENAMED`), fields this version does not know are dropped; ``out`` is ``run_dir``."""
    if not isinstance(saved, dict):
        raise ValueError(f"{run_dir}: the stored configuration is not a JSON object")
    known = {f.name for f in fields(Config)}
    saved = {RENAMED.get(k, k): v for k, v in saved.items()}
    merged = {k: v for k, v in {**LEGACY_RUN_DEFAULTS, **saved}.items() if k in known}
    try:
        return Config(**{**merged, "out": str(run_dir)})
    except ValueError as exc:
        raise ValueError(f"{run_dir}: the stored configuration is not valid ({exc})") from None


def read_config(run_dir: str | os.PathLike) -> Config:
    """The :class:`Config` of a run (see :func:`config_from_dict`)."""
    return config_from_dict(_read_json(Path(run_dir) / CONFIG), run_dir)


def changed_settings(saved: Config, asked: Config, *, steps: bool = False) -> list[str]:
    """``"name: saved -> asked"`` for every setting of ``asked`` that differs from ``saved``
    (``steps`` too when ``steps`` is true or the schedule depends on it); empty when ``asked``
    continues ``saved``."""
    skip = BOOKKEEPING | (set() if steps or saved.schedule != "constant" else {"steps"})
    return [f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(asked, f.name)!r}" for f in fields(Config)
            if f.name not in skip and getattr(saved, f.name) != getattr(asked, f.name)]


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented strict JSON at ``path`` (non-finite numbers as null), atomically."""
    text = json.dumps(json_safe(obj), indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no {path.name} in {path.parent}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None


def append_record(run_dir: str | os.PathLike, record: dict, *, sync: bool = False) -> None:
    """Append one strict-JSON line to ``OUT/metrics.jsonl`` (``sync``: and flush it to disk)."""
    line = json.dumps(json_safe(record), allow_nan=False) + "\n"
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(line)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def _scan(path: Path) -> tuple[list[dict], list[int], bool]:
    """The complete JSON records of ``path``, the byte offset after each, and whether a partial
    (unterminated) last line follows them."""
    data = path.read_bytes() if path.exists() else b""
    records, ends, pos = [], [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return records, ends, True
        try:
            records.append(json.loads(data[pos:nl]))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if nl == len(data) - 1:             # a torn last line that ends in a newline
                return records, ends, True
            raise ValueError(f"{path}: line {len(records) + 1} is not JSON") from None
        ends.append(nl + 1)
        pos = nl + 1
    return records, ends, False


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The per-step records of a run, in order; a torn last line (a killed run) is dropped."""
    return _scan(Path(run_dir) / METRICS)[0]


def truncate_records(run_dir: str | os.PathLike, step: int) -> list[dict]:
    """Cut ``OUT/metrics.jsonl`` back to the records of steps ``< step`` (those a checkpoint at
    ``step`` has seen) with one ``truncate``; returns them. Raises ``ValueError``, changing
    nothing, when they are not exactly steps ``0 .. step - 1``."""
    path = Path(run_dir) / METRICS
    records, ends, _ = _scan(path)
    keep = 0
    while keep < min(step, len(records)) and isinstance(records[keep], dict) and records[keep].get("step") == keep:
        keep += 1
    if keep != step:
        raise ValueError(f"{path} holds the records of steps 0..{keep - 1} but the checkpoint is at step {step}: "
                         "records are lost, so the run cannot be continued as one run; start it again with --overwrite")
    if path.exists():
        os.truncate(path, ends[keep - 1] if keep else 0)
    return records[:keep]


def write_csv(run_dir: str | os.PathLike, records: list[dict]) -> None:
    """``OUT/metrics.csv``: one row per record, the :data:`CSV_COLUMNS` (empty cells for null), atomically."""
    def cell(r: dict, column: str) -> str:
        value = (r.get("grad_norm") or {}).get("max") if column == "grad_norm_max_layer" else r.get(column)
        if column == "diverged":
            value = int(bool(value))
        return "" if value is None else repr(value) if isinstance(value, float) else str(value)

    text = "".join(",".join(row) + "\n" for row in [list(CSV_COLUMNS)] +
                   [[cell(r, c) for c in CSV_COLUMNS] for r in records])
    atomic_write(Path(run_dir) / CSV, lambda tmp: tmp.write_text(text))


def read_summary(run_dir: str | os.PathLike) -> dict:
    """The ``summary.json`` of a finished run."""
    return _read_json(Path(run_dir) / SUMMARY)


def finished(cfg: Config) -> dict | None:
    """The summary of an earlier finished run of exactly ``cfg`` (same settings and steps) in
    ``cfg.out``, else None."""
    run_dir = Path(cfg.out) if cfg.out else None
    if run_dir is None or not (run_dir / SUMMARY).exists() or not (run_dir / CONFIG).exists():
        return None
    if changed_settings(read_config(run_dir), cfg, steps=True):
        return None
    summary = read_summary(run_dir)
    return summary if isinstance(summary, dict) and summary.get("steps") == cfg.steps else None


class RunLock:
    """The exclusive lock of a run folder: ``flock`` on ``OUT/.lock``, which the system releases
    when the process ends, however it ends (no stale locks after a kill).

    Creates ``OUT`` if needed; a folder this lock created and left empty is removed on exit.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> "RunLock":
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"--out {self.run_dir} is a file, not a folder")
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ValueError(f"{self.run_dir} is in use by another trainer (pid {holder}); "
                             "wait for it to end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.created and os.listdir(self.run_dir) == [LOCK]:
            (self.run_dir / LOCK).unlink()
            self.run_dir.rmdir()
        if self.fd is not None:
            os.close(self.fd)                         # releases the flock
            self.fd = None


def load_model(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Model, Config]:
    """The trained model of a run (in eval mode) and the run's config."""
    return Model.from_checkpoint(Path(run_dir) / CKPT, map_location), read_config(run_dir)


@torch.no_grad()
def evaluate(model: torch.nn.Module, task, seed: int, batch_size: int, batches: int,
             device: torch.device | str = "cpu", tap: Tap | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the scored positions of ``batches`` validation batches.

    Batch ``k`` is ``task.batch(seed, k, batch_size, split="val")``; positions whose target
    is ``IGNORE`` are not scored. ``tap`` is passed to every forward call.
    """
    loss, correct, count = 0.0, 0, 0
    for k in range(batches):
        x, y = (t.to(device) for t in task.batch(seed, k, batch_size, split="val"))
        logits = model(x, tap=tap).float()
        scored = y != IGNORE
        loss += float(torch.nn.functional.cross_entropy(logits[scored], y[scored], reduction="sum"))
        correct += int((logits[scored].argmax(-1) == y[scored]).sum())
        count += int(scored.sum())
    return loss / count, correct / count
