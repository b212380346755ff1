"""The one backend switch: ``backend("torch" | "triton")`` -> the ops a mixer or token mixer uses.

``"torch"`` is :mod:`gpu.eager` (eager, any device, float64-capable); ``"triton"`` is
:mod:`gpu.ops` (the kernels: CUDA, or CPU under ``TRITON_INTERPRET=1``). Both sets
have the same functions with the same signatures, so a module holds one
:class:`Backend` and calls ``self.ops.sinkhorn(...)`` whichever it is.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

__all__ = ["BACKENDS", "STREAM_LIMITS", "Backend", "backend"]

BACKENDS = ("torch", "triton")                 # the first is the default of every signature that offers one
STREAM_LIMITS = {"torch": None, "triton": 16}  # the most streams each backend's ops handle (None: no limit)


@dataclass(frozen=True)
class Backend:
    """The stream- and token-mixing primitives, all from one module (see :mod:`gpu.eager`)."""

    name: str
    sinkhorn: Callable[[torch.Tensor, int], torch.Tensor]
    hc_coeffs: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    hc_pre: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    hc_post_res: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    bvn_combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    kron_apply: Callable[..., torch.Tensor]
    token_mix: Callable[..., torch.Tensor]


@lru_cache(maxsize=None)
def backend(name: str) -> Backend:
    """The op set ``name``: ``"torch"`` (:mod:`gpu.eager`) or ``"triton"`` (:mod:`gpu.ops`, imported here)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")
    mod = importlib.import_module(".eager" if name == "torch" else ".ops", __package__)
    return Backend(name, mod.sinkhorn, mod.hc_coeffs, mod.hc_pre, mod.hc_post_res, mod.bvn_combine, mod.kron_apply,
                   mod.token_mix)
