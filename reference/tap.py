"""Taps: the explicit way to see (or replace) the mixing matrices of one forward pass.

A model keeps no record of its last ``H_res``. Whoever wants the matrices passes a
:class:`Tap` to the forward call, ``model(idx, tap=t)``; every stream mixer then calls
``t.h_res(mixer, H_res)`` and every BE-HC token-mixing block
``t.token_weights(block, w)``, in application order, and uses what the tap returns.
The base class returns its input unchanged; :class:`HResProbe` records,
``reference.lab.quantization.MixingRounding`` rounds. Without a tap (``tap=None``, the
default) nothing is recorded and the forward is a pure function of its input, which is
what ``torch.compile`` sees.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Tap", "Chain", "HResProbe", "StreamSpread", "HResOverride", "stream_spread"]


class Tap:
    """Identity tap: hands every mixing matrix back unchanged (subclasses override)."""

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        """``H_res (..., n, n)`` of ``mixer`` for this call; returns the matrix the mixer uses."""
        return H_res

    def token_weights(self, block: nn.Module, w: torch.Tensor) -> torch.Tensor:
        """Token-mixing weights ``w (K, C)`` of ``block``; returns the weights the block uses."""
        return w

    def streams(self, mixer: nn.Module, x: torch.Tensor) -> None:
        """The streams ``x (..., n, C)`` that ``mixer`` hands to the next layer (read only)."""


class Chain(Tap):
    """Several taps on one pass, in order: each sees the matrix the one before it returned (the last one's
    is used), and every one sees the streams."""

    def __init__(self, *taps: Tap) -> None:
        self.taps = taps

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        for tap in self.taps:
            H_res = tap.h_res(mixer, H_res)
        return H_res

    def token_weights(self, block: nn.Module, w: torch.Tensor) -> torch.Tensor:
        for tap in self.taps:
            w = tap.token_weights(block, w)
        return w

    def streams(self, mixer: nn.Module, x: torch.Tensor) -> None:
        for tap in self.taps:
            tap.streams(mixer, x)


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


def stream_spread(x: torch.Tensor) -> float:
    """``||x - mean_j x_j|| / ||x||`` of streams ``x (..., n, C)``, in ``x``'s precision (0 for zero streams)."""
    x = x.detach()
    centred = x - x.mean(dim=-2, keepdim=True)
    return float(centred.norm() / x.norm().clamp_min(torch.finfo(x.dtype).tiny))


class StreamSpread(Tap):
    """Do the streams differ? ``spread`` = max over layers of ``||x - mean_j x_j|| / ||x||``.

    0 means every stream carries the same vector (the mixer acts as a one-stream
    residual); an unconstrained or well-used mixer keeps it well above 0.
    """

    def __init__(self) -> None:
        self.spread = 0.0

    def streams(self, mixer: nn.Module, x: torch.Tensor) -> None:
        self.spread = max(self.spread, stream_spread(x.float()))


class HResOverride(Tap):
    """The ``H_res`` ablation: every ``H_res`` replaced by ``I`` (``"identity"``) or by ``J / n``
    (``"average"``: full averaging of the streams). If the loss does not move, ``H_res`` is unused."""

    KINDS = ("identity", "average")

    def __init__(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        n = H_res.shape[-1]
        if self.kind == "identity":
            return torch.eye(n, dtype=H_res.dtype, device=H_res.device).expand_as(H_res)
        return torch.full_like(H_res, 1.0 / n)
