"""The run folder: what ``python -m reference.train`` writes, and the one place that reads it.

    OUT/config.json     the run's :class:`Config`
    OUT/metrics.jsonl   one JSON line per step (loss, tokens/s, gradient norms, gains, DS residual)
    OUT/summary.json    the end of the run (losses, gains, certificate, divergence)
    OUT/ckpt.pt         :mod:`reference.checkpoint` (model config, weights, optimizer, step)

Studies read runs through :func:`read_config`, :func:`read_metrics`, :func:`read_summary`,
:func:`load_model` and score models with :func:`evaluate`, the trainer's own validation.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .checkpoint import LEGACY_DEFAULTS, atomic_write
from .data import IGNORE
from .models import Model, ModelConfig
from .tap import Tap

__all__ = ["Config", "read_config", "write_json", "read_metrics", "read_summary", "finished", "load_model",
           "evaluate"]

CONFIG, METRICS, SUMMARY, CKPT = "config.json", "metrics.jsonl", "summary.json", "ckpt.pt"


@dataclass
class Config:
    """One training run: the model, the data, the optimisation and where it goes."""

    mixer: str = "mhc"
    depth: int = 16
    streams: int = 4
    width: int = 32
    model: str = "mlp"
    heads: int = 4
    task: str = "charlm"
    steps: int = 200
    batch_size: int = 16
    seq_len: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    dtype: str = "float32"
    backend: str = "torch"
    init: str = "reference"
    sk_order: str = "cols_rows"
    norm: str = "pre"
    out: str = "runs/train"
    ckpt_every: int = 0
    eval_batches: int = 8
    resume: bool = False
    progress: bool = True

    def model_config(self, vocab: int) -> ModelConfig:
        """The architecture this run trains, for a task with ``vocab`` symbols."""
        return ModelConfig(vocab=vocab, width=self.width, depth=self.depth, mixer=self.mixer,
                           n_streams=self.streams, kind=self.model, heads=self.heads,
                           max_len=max(self.seq_len, 1), backend=self.backend, init=self.init,
                           sk_order=self.sk_order, norm=self.norm)


# fields that do not change what a run computes (out: the folder itself)
_BOOKKEEPING = {"progress", "resume", "out"}


def read_config(run_dir: str | os.PathLike) -> Config:
    """The :class:`Config` of a run; fields added after the run was made take their defaults
    as they were before the field existed (:data:`reference.checkpoint.LEGACY_DEFAULTS`);
    ``out`` is ``run_dir``."""
    saved = {**LEGACY_DEFAULTS, **_read_json(Path(run_dir) / CONFIG)}
    known = {f.name for f in fields(Config)}
    return Config(**{**{k: v for k, v in saved.items() if k in known}, "out": str(run_dir)})


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, atomically (a temporary file, then a rename)."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2)))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no {path.name} in {path.parent}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg})") from None


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The per-step records of a run, in order; a truncated last line (a killed run) is dropped."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for k, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if k == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {k + 1} is not JSON") from None
    return records


def read_summary(run_dir: str | os.PathLike) -> dict:
    """The ``summary.json`` of a finished run."""
    return _read_json(Path(run_dir) / SUMMARY)


def finished(cfg: Config) -> dict | None:
    """The summary of an earlier run of exactly ``cfg`` in ``cfg.out``, else None."""
    run_dir = Path(cfg.out)
    if not (run_dir / SUMMARY).exists() or not (run_dir / CONFIG).exists():
        return None
    saved = asdict(read_config(run_dir))
    same = all(saved[k] == v for k, v in asdict(cfg).items() if k not in _BOOKKEEPING)
    return read_summary(run_dir) if same else None


def load_model(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[Model, Config]:
    """The trained model of a run (in eval mode) and the run's config."""
    model = Model.from_checkpoint(Path(run_dir) / CKPT, map_location)
    return model.eval(), read_config(run_dir)


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
