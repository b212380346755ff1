"""Checkpoint files: one ``torch.save`` dict of tensors and plain containers, written atomically.

Layout (``ckpt.pt``): ``model_config`` (the :class:`reference.models.ModelConfig` as a
dict), ``train_config`` (the run's :class:`reference.runs.Config` as a dict), ``model``
(state dict), ``opt`` (optimizer state dict), ``step`` (steps taken). Read with
``torch.load(weights_only=True)``, which unpickles no code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

__all__ = ["CheckpointError", "LEGACY_DEFAULTS", "atomic_write", "save_checkpoint", "load_checkpoint"]

KEYS = ("model_config", "train_config", "model", "opt", "step")
# config fields added later, with the value every run made before them had
LEGACY_DEFAULTS = {"init": "symmetric", "sk_order": "rows_cols", "norm": "pre"}


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file next to ``path``, then rename it onto ``path``: readers never see
    a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, truncated or not one of ours."""


def save_checkpoint(path: str | os.PathLike, **payload) -> None:
    """Write ``payload`` (the :data:`KEYS`) to ``path`` atomically: a temporary file, then a rename."""
    missing = set(KEYS) - set(payload)
    if missing:
        raise ValueError(f"checkpoint payload lacks {sorted(missing)}")
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at ``path`` (``weights_only=True``); :class:`CheckpointError` if it is not one."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as exc:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ...
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or not set(KEYS) <= set(ckpt):
        raise CheckpointError(f"{path} is not a reference checkpoint (expected keys {list(KEYS)})")
    ckpt["model_config"] = {**LEGACY_DEFAULTS, **ckpt["model_config"]}
    return ckpt
