"""Checkpoint files: one ``torch.save`` dict of tensors and plain containers, written atomically.

Layout (``ckpt.pt``): ``model_config`` (the :class:`reference.models.ModelConfig` as a
dict), ``train_config`` (the run's :class:`reference.lab.runs.Config` as a dict), ``model``
(state dict), ``opt`` (optimizer state dict), ``step`` (steps taken). Read with
``torch.load(weights_only=True)``, which unpickles no code, and checked field by field
(:func:`load_checkpoint`) before anything uses it.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Callable

import torch

__all__ = ["CheckpointError", "LEGACY_DEFAULTS", "atomic_write", "save_checkpoint", "load_checkpoint"]

KEYS = ("model_config", "train_config", "model", "opt", "step")
# settings an older checkpoint lacks, with the value its run used (no setting existed: one behaviour)
LEGACY_DEFAULTS = {"init": "symmetric", "sk_order": "rows_cols", "norm": "pre", "favoured": "layer",
                   "mixer_norm": "plain", "res_bound": "none"}
_PLAIN = (bool, int, float, str, type(None))


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file next to ``path``, then rename it onto ``path``: readers never see
    a half-written file, and a write that fails (a full disk) leaves ``path`` as it was and no
    temporary file behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, truncated, not one of ours, or malformed."""


def save_checkpoint(path: str | os.PathLike, **payload) -> None:
    """Write ``payload`` (the :data:`KEYS`) to ``path`` atomically: a temporary file, then a rename."""
    missing = set(KEYS) - set(payload)
    if missing:
        raise ValueError(f"checkpoint payload lacks {sorted(missing)}")
    try:
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    except RuntimeError as exc:                  # torch's writer reports a full disk as a RuntimeError
        raise OSError(f"cannot write the checkpoint {path}: {' '.join(str(exc).split())}") from None


def _check(ok: bool, path: str | os.PathLike, what: str) -> None:
    if not ok:
        raise CheckpointError(f"{path} is malformed: {what}")


def _plain_dict(d: object) -> bool:
    return isinstance(d, dict) and all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in d.items())


def _tensors(d: object) -> bool:
    return isinstance(d, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _validate(ckpt: object, path: str | os.PathLike) -> dict:
    """The checkpoint's structure and types, field by field (:class:`CheckpointError` on the first fault)."""
    if not isinstance(ckpt, dict) or not set(KEYS) <= set(ckpt):
        raise CheckpointError(f"{path} is not a reference checkpoint (expected keys {list(KEYS)})")
    _check(_plain_dict(ckpt["model_config"]), path, "model_config must be a dict of plain values")
    _check(_plain_dict(ckpt["train_config"]), path, "train_config must be a dict of plain values")
    _check(_tensors(ckpt["model"]) and ckpt["model"], path, "model must be a non-empty dict of tensors")
    _check(all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point()), path,
           "model holds non-finite weights")
    opt = ckpt["opt"]
    _check(isinstance(opt, dict) and isinstance(opt.get("state"), dict)
           and isinstance(opt.get("param_groups"), list) and opt["param_groups"]
           and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in opt["param_groups"]),
           path, "opt must be an optimizer state dict (state, param_groups)")
    _check(all(isinstance(s, dict) and _tensors(s) for s in opt["state"].values()), path,
           "opt state must map each parameter to a dict of tensors")
    _check(all(torch.isfinite(t).all() for s in opt["state"].values() for t in s.values() if t.is_floating_point()),
           path, "opt state holds non-finite values")
    step = ckpt["step"]
    _check(type(step) is int and step >= 0, path, f"step must be an integer >= 0, got {step!r}")
    _check(all(not isinstance(v, float) or math.isfinite(v) for v in ckpt["train_config"].values()), path,
           "train_config holds a non-finite number")
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at ``path`` (``weights_only=True``), its structure and types checked;
    :class:`CheckpointError` if it is not a well-formed checkpoint, or not a regular file (a FIFO
    would block the read, a device never end it)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path} is not a regular file (a folder, FIFO or device), not a checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as exc:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ...
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    ckpt = _validate(ckpt, path)
    ckpt["model_config"] = {**LEGACY_DEFAULTS, **ckpt["model_config"]}
    return ckpt
