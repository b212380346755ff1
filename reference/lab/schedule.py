"""Learning-rate schedules and the optimizer: a constant rate (the stability question) or the papers'.

``"paper"`` is the protocol of mHC-lite's public nanoGPT runs (github FFTYYY/mhc-lite,
``train.py: get_lr`` and ``config/small_model.py``; KromHC's code is built on the same
nanoGPT): linear warmup ``lr (t + 1) / (warmup + 1)`` for ``warmup`` steps, then cosine
decay to ``min_lr = lr / 10`` at the last step; AdamW with ``betas = (0.9, 0.95)``,
weight decay 0.1 and gradient clipping at 1.0. Their runs warm up for 200 of 10 000
steps; ours default to the same 2 % of the run. Weight decay applies, as in nanoGPT's
``configure_optimizers``, to the parameters with two or more dimensions (matmul weights,
embeddings) and not to biases, gains or the mixers' scalar gates. ``--mixer-lr-scale`` gives the
mixers' parameters a multiple of every step's lr (:func:`make_optimizer`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SCHEDULES", "PAPER", "lr_at", "default_warmup", "make_optimizer"]

SCHEDULES = ("constant", "paper")
MIN_LR_RATIO = 0.1
WARMUP_FRACTION = 0.02                           # mHC-lite: warmup_iters 200 of max_iters 10 000
# what --schedule paper sets unless the command line says otherwise
PAPER = {"weight_decay": 0.1, "grad_clip": 1.0, "beta2": 0.95}


def default_warmup(schedule: str, steps: int) -> int:
    """Warmup steps when none are given: 0 for a constant rate, 2 % of the run for the papers'."""
    return 0 if schedule == "constant" else max(1, round(WARMUP_FRACTION * steps))


def lr_at(schedule: str, step: int, steps: int, lr: float, warmup: int) -> float:
    """The learning rate of step ``step`` (0-based) of a ``steps``-step run.

    ``constant``: ``lr``; ``paper``: ``lr (step + 1) / (warmup + 1)`` while ``step < warmup``,
    then ``min_lr + (lr - min_lr) (1 + cos(pi r)) / 2`` with ``r = (step - warmup) / (steps - 1 - warmup)``
    (``r = 1``, ``min_lr``, at the last step).
    """
    if schedule == "constant":
        return lr
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    span = steps - 1 - warmup
    ratio = min(1.0, (step - warmup) / span) if span > 0 else 1.0
    min_lr = MIN_LR_RATIO * lr
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, beta2: float,
                   mixer_lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW with nanoGPT's two groups: weight decay on tensors of >= 2 dimensions, none on the rest.

    ``mixer_lr_scale != 1`` (the premise experiment's option, not a source's): the parameters of every
    :class:`reference.mixers.Mixer` get two groups of their own whose ``"lr_scale"`` multiplies the
    schedule's lr at every step (``lr_t * mixer_lr_scale``), so ``H_res`` can move further from its
    identity init in a short run. At 1 the groups are the two above, as they always were.
    """
    from ..mixers import Mixer

    params = [p for p in model.parameters() if p.requires_grad]
    mixing = ({id(p) for m in model.modules() if isinstance(m, Mixer) for p in m.parameters()}
              if mixer_lr_scale != 1.0 else set())

    def split(ps: list, extra: dict) -> list[dict]:
        return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": weight_decay, **extra},
                {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0, **extra}]

    groups = split([p for p in params if id(p) not in mixing], {})
    if mixing:
        groups += split([p for p in params if id(p) in mixing], {"lr_scale": mixer_lr_scale})
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, beta2))
