"""Taps: the explicit way to see (or replace) the mixing matrices of one forward pass.

A model keeps no record of its last ``H_res``. Whoever wants the matrices passes a
:class:`Tap` to the forward call, ``model(idx, tap=t)``; every stream mixer then calls
``t.h_res(mixer, H_res)`` and every BE-HC token-mixing block
``t.token_weights(block, w)``, in application order, and uses what the tap returns.
The base class returns its input unchanged; :class:`HResProbe` records,
``reference.quantization.MixingRounding`` rounds. Without a tap (``tap=None``, the
default) nothing is recorded and the forward is a pure function of its input, which is
what ``torch.compile`` sees.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Tap", "HResProbe"]


class Tap:
    """Identity tap: hands every mixing matrix back unchanged (subclasses override)."""

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        """``H_res (..., n, n)`` of ``mixer`` for this call; returns the matrix the mixer uses."""
        return H_res

    def token_weights(self, block: nn.Module, w: torch.Tensor) -> torch.Tensor:
        """Token-mixing weights ``w (K, C)`` of ``block``; returns the weights the block uses."""
        return w


class HResProbe(Tap):
    """Records ``H_res`` (detached) of the first ``tokens`` tokens of every mixer, in order.

    ``chain`` is the ``(L, probe, n, n)`` float64 stack for the composite-gain metrics
    (``reference.metrics``); all mixers of one model have the same ``n``.
    """

    def __init__(self, tokens: int = 8) -> None:
        self.tokens = tokens
        self.h: list[torch.Tensor] = []

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        self.h.append(H_res.detach().reshape(-1, *H_res.shape[-2:])[: self.tokens])
        return H_res

    @property
    def chain(self) -> torch.Tensor:
        probe = min(h.shape[0] for h in self.h)
        return torch.stack([h[:probe].to(torch.float64) for h in self.h])
