"""Post-training INT8 quantization of trained models (simulated: integers times scales in float).

* weights: every ``nn.Linear`` / ``nn.Embedding`` weight, symmetric per output row,
  ``W_q = s round(W / s)``, ``s = max|W_row| / 127`` (or one ``s`` per matrix);
* activations (optional): every ``nn.Linear`` input, symmetric per token (or per
  tensor), same rule;
* mixing matrices, two ways:
  ``"ds"``    - ``birkhoff.quantize``: integers ``Q`` with every row and column summing to
                exactly 127, so ``Q / 127`` is exactly doubly stochastic;
  ``"naive"`` - ``round(127 H) / 127`` entrywise: row/column sums drift off 1.
  Stream mixing ``H_res`` (per token, per layer) goes through ``Mixer.h_res_map``; token
  mixing weights ``w (K, C)`` through ``TokenMixBlock.weight_map``
  (:func:`reference.token_mixing.quantize_shift_weights` for ``"ds"``).
"""

from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

from birkhoff import quantize, sinkhorn

from .mixers import Mixer
from .token_mixing import TokenMixBlock, quantize_shift_weights

__all__ = ["SCALE", "MIXING", "int8_symmetric", "HResRounding", "quantized", "exact_composite_gains"]

SCALE = 127
MIXING = ("ds", "naive")


def int8_symmetric(t: torch.Tensor, per_tensor: bool = False) -> torch.Tensor:
    """``s round(t / s)``, ``s = max|t| / 127`` along the last dimension (per row / per token),
    or over the whole tensor with ``per_tensor``; all-zero rows stay 0."""
    a = t.detach().abs()
    m = a.amax() if per_tensor else a.amax(-1, keepdim=True)
    s = m.clamp_min(torch.finfo(t.dtype).tiny) / SCALE
    return torch.round(t / s).clamp(-SCALE, SCALE) * s


class HResRounding:
    """``H_res (..., n, n) -> Q / 127`` per matrix; keeps probe token 0's integer ``Q`` per call.

    ``mode="ds"``: ``birkhoff.quantize(H, 127, tol)`` (a max-flow rounding: exact margins,
    ``|Q - 127 H| < 1``); an ``H`` off DS by more than ``tol`` (mHC's SK_20 output: rows
    off by up to 1e-2 in a trained 1000-layer model) is first balanced by
    ``birkhoff.sinkhorn`` to 1e-12, and counted in ``rebalanced``. ``mode="naive"``:
    ``Q = round(127 H)``. ``max_residual`` is the largest margin residual of any ``H`` seen.
    """

    def __init__(self, mode: str, tol: float = 1e-6) -> None:
        if mode not in MIXING:
            raise ValueError(f"mode must be one of {MIXING}, got {mode!r}")
        self.mode, self.tol = mode, tol
        self.probe: list[np.ndarray] = []
        self.max_residual = 0.0
        self.rebalanced = self.seen = 0

    def __call__(self, H: torch.Tensor) -> torch.Tensor:
        flat = H.detach().to(torch.float64).reshape(-1, *H.shape[-2:]).cpu().numpy()
        residual = np.maximum(np.abs(flat.sum(-1) - 1).max(-1), np.abs(flat.sum(-2) - 1).max(-1))
        self.max_residual = max(self.max_residual, float(residual.max()))
        if self.mode == "ds":
            off = residual > self.tol
            if off.any():                                   # batched balancing, then exact rounding
                flat[off] = sinkhorn(flat[off], tol=1e-12)
            self.rebalanced += int(off.sum())
            self.seen += len(flat)
            Q = np.stack([quantize(P, SCALE, tol=self.tol)[0] for P in flat])
        else:
            Q = np.round(SCALE * flat).astype(np.int64)
        self.probe.append(Q[0])
        return torch.from_numpy(Q / SCALE).to(H).reshape(H.shape)


def _naive_weights(w: torch.Tensor) -> torch.Tensor:
    return torch.round(SCALE * w) / SCALE


def _ds_weights(w: torch.Tensor) -> torch.Tensor:
    q = quantize_shift_weights(w.detach().to(torch.float64).cpu().numpy(), SCALE)
    return torch.from_numpy(q / SCALE).to(w)


@contextmanager
def quantized(model: nn.Module, *, weights: bool = True, activations: bool = False,
              per_tensor: bool = False, stream_mixing: str | None = None,
              token_mixing: str | None = None) -> Iterator[list[HResRounding]]:
    """Run ``model`` INT8-quantized inside the block; everything is restored on exit.

    ``per_tensor`` uses one scale per weight matrix and per activation tensor (coarser)
    instead of one per row / per token.
    ``stream_mixing`` rounds every stream mixer's ``H_res`` (per token, per layer: one
    ``birkhoff.quantize`` each, ~0.4 ms); ``token_mixing`` rounds the token-mixing
    weights once. Yields the :class:`HResRounding` of every stream mixer (empty unless
    ``stream_mixing``), in application order, so callers can read the probe token's chain.
    """
    for mode in (stream_mixing, token_mixing):
        if mode is not None and mode not in MIXING:
            raise ValueError(f"mixing must be None or one of {MIXING}, got {mode!r}")
    saved, hooks, roundings = [], [], []
    try:
        for mod in model.modules():
            if weights and isinstance(mod, (nn.Linear, nn.Embedding)):
                saved.append((mod.weight, mod.weight.detach().clone()))
                with torch.no_grad():
                    mod.weight.copy_(int8_symmetric(mod.weight, per_tensor))
            if activations and isinstance(mod, nn.Linear):
                hooks.append(mod.register_forward_pre_hook(
                    lambda m, args: (int8_symmetric(args[0], per_tensor),)))
            if stream_mixing and isinstance(mod, Mixer) and mod.n_streams > 1:
                mod.h_res_map = HResRounding(stream_mixing)
                roundings.append(mod.h_res_map)
            if token_mixing and isinstance(mod, TokenMixBlock):
                with torch.no_grad():                       # fixed at inference: round once
                    w_q = (_ds_weights if token_mixing == "ds" else _naive_weights)(mod.weights())
                mod.weight_map = lambda w, w_q=w_q: w_q
        yield roundings
    finally:
        with torch.no_grad():
            for param, value in saved:
                param.copy_(value)
        for h in hooks:
            h.remove()
        for mod in model.modules():
            if isinstance(mod, Mixer):
                mod.h_res_map = None
            if isinstance(mod, TokenMixBlock):
                mod.weight_map = None


def exact_composite_gains(chain: list[np.ndarray], scale: int = SCALE) -> tuple[float, float]:
    """Forward / backward Amax gains of ``(Q_L / s) ... (Q_1 / s)``, in exact integer arithmetic.

    ``chain`` holds nonnegative integer matrices; the product is formed over Python ints
    and the max row / column sum divided by ``s^L`` exactly (``Fraction``), then rounded
    to float once.
    """
    P = np.asarray(chain[0], dtype=object)
    for Q in chain[1:]:
        P = np.asarray(Q, dtype=object).dot(P)
    denominator = scale ** len(chain)
    fwd = Fraction(int(max(P.sum(axis=1))), denominator)
    bwd = Fraction(int(max(P.sum(axis=0))), denominator)
    return float(fwd), float(bwd)
