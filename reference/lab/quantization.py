"""Post-training INT8 quantization of trained models (simulated: integers times scales in float).

* weights: every ``nn.Linear`` / ``nn.Embedding`` weight, symmetric per output row,
  ``W_q = s round(W / s)``, ``s = max|W_row| / 127`` (or one ``s`` per matrix);
* activations (optional): every ``nn.Linear`` input, symmetric per token (or per
  tensor), same rule;
* mixing matrices, two ways:
  ``"ds"``    - ``birkhoff.quantize``: integers ``Q`` with every row and column summing to
                exactly 127, so ``Q / 127`` is exactly doubly stochastic;
  ``"naive"`` - ``round(127 H) / 127`` entrywise: row/column sums drift off 1.
  Both go through a :class:`MixingRounding` tap passed to the forward call: stream
  mixing ``H_res`` per token and layer, token mixing weights ``w (K, C)`` per block
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

from ..tap import Tap
from ..token_mixing import quantize_shift_weights

__all__ = ["SCALE", "MIXING", "int8_symmetric", "round_h_res", "MixingRounding", "quantized",
           "exact_composite_gains"]

SCALE = 127
MIXING = ("ds", "naive")


def int8_symmetric(t: torch.Tensor, per_tensor: bool = False) -> torch.Tensor:
    """``s round(t / s)``, ``s = max|t| / 127`` along the last dimension (per row / per token),
    or over the whole tensor with ``per_tensor``; all-zero rows stay 0."""
    a = t.detach().abs()
    m = a.amax() if per_tensor else a.amax(-1, keepdim=True)
    s = m.clamp_min(torch.finfo(t.dtype).tiny) / SCALE
    return torch.round(t / s).clamp(-SCALE, SCALE) * s


def round_h_res(H: np.ndarray, mode: str, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer ``Q (B, n, n)`` for float64 ``H (B, n, n)``; also each ``H``'s margin residual and the
    number of matrices balanced first.

    ``mode="ds"``: ``birkhoff.quantize(H, 127, tol)`` (a max-flow rounding: exact margins,
    ``|Q - 127 H| < 1``); an ``H`` off DS by more than ``tol`` (mHC's SK_20 output: rows
    off by up to 1e-2 in a trained 1000-layer model) is first balanced by a batched
    ``birkhoff.sinkhorn`` to 1e-12. ``mode="naive"``: ``Q = round(127 H)``.
    """
    residual = np.maximum(np.abs(H.sum(-1) - 1).max(-1), np.abs(H.sum(-2) - 1).max(-1))
    if mode == "naive":
        return np.round(SCALE * H).astype(np.int64), residual, 0
    off = residual > tol
    if off.any():
        H = H.copy()
        H[off] = sinkhorn(H[off], tol=1e-12)
    return np.stack([quantize(P, SCALE, tol=tol)[0] for P in H]), residual, int(off.sum())


class MixingRounding(Tap):
    """A tap that rounds the mixing matrices to INT8 (``Q / 127``), ``"ds"`` or ``"naive"`` (see module doc).

    ``stream_mixing`` rounds every multi-stream mixer's ``H_res`` (per token, per layer:
    one ``birkhoff.quantize`` each, ~0.4 ms); ``token_mixing`` rounds each token-mixing
    block's weights once (they do not depend on the input). Bookkeeping, over all calls:
    ``probe`` (the integer ``Q`` of token 0 of each mixer's last call, in application
    order: the chain of the last batch), ``max_residual`` (largest margin residual of an
    input ``H``), ``rebalanced`` / ``seen`` (matrices balanced first / rounded).
    """

    def __init__(self, stream_mixing: str | None = None, token_mixing: str | None = None,
                 tol: float = 1e-6) -> None:
        for mode in (stream_mixing, token_mixing):
            if mode is not None and mode not in MIXING:
                raise ValueError(f"mixing must be None or one of {MIXING}, got {mode!r}")
        self.stream_mixing, self.token_mixing, self.tol = stream_mixing, token_mixing, tol
        self._probe: dict[int, np.ndarray] = {}
        self._token: dict[int, torch.Tensor] = {}
        self.max_residual = 0.0
        self.rebalanced = self.seen = 0

    @property
    def probe(self) -> list[np.ndarray]:
        return list(self._probe.values())

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        if self.stream_mixing is None or H_res.shape[-1] == 1:
            return H_res
        flat = H_res.detach().to(torch.float64).reshape(-1, *H_res.shape[-2:]).cpu().numpy()
        Q, residual, balanced = round_h_res(flat, self.stream_mixing, self.tol)
        self.max_residual = max(self.max_residual, float(residual.max()))
        self.rebalanced += balanced
        self.seen += len(flat)
        self._probe[id(mixer)] = Q[0]
        return torch.from_numpy(Q / SCALE).to(H_res).reshape(H_res.shape)

    def token_weights(self, block: nn.Module, w: torch.Tensor) -> torch.Tensor:
        if self.token_mixing is None:
            return w
        if id(block) not in self._token:
            rounding = _ds_weights if self.token_mixing == "ds" else _naive_weights
            self._token[id(block)] = rounding(w.detach())
        return self._token[id(block)].to(w)


def _naive_weights(w: torch.Tensor) -> torch.Tensor:
    return torch.round(SCALE * w) / SCALE


def _ds_weights(w: torch.Tensor) -> torch.Tensor:
    q = quantize_shift_weights(w.to(torch.float64).cpu().numpy(), SCALE)
    return torch.from_numpy(q / SCALE).to(w)


@contextmanager
def quantized(model: nn.Module, *, weights: bool = True, activations: bool = False,
              per_tensor: bool = False) -> Iterator[nn.Module]:
    """INT8 weights (and activations) inside the block; the weights are restored and the hooks removed on exit.

    ``per_tensor`` uses one scale per weight matrix and per activation tensor (coarser)
    instead of one per row / per token. Mixing matrices are rounded by passing a
    :class:`MixingRounding` tap to the forward calls.
    """
    saved, hooks = [], []
    try:
        for mod in model.modules():
            if weights and isinstance(mod, (nn.Linear, nn.Embedding)):
                saved.append((mod.weight, mod.weight.detach().clone()))
                with torch.no_grad():
                    mod.weight.copy_(int8_symmetric(mod.weight, per_tensor))
            if activations and isinstance(mod, nn.Linear):
                hooks.append(mod.register_forward_pre_hook(
                    lambda m, args: (int8_symmetric(args[0], per_tensor),)))
        yield model
    finally:
        with torch.no_grad():
            for param, value in saved:
                param.copy_(value)
        for h in hooks:
            h.remove()


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
