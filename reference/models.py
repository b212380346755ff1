"""Models that take any mixer: a deep pre-norm MLP stack, a small causal transformer, and
the same transformer with BE-HC token mixing in place of attention.

Each sublayer ``F`` is pre-norm (``F(x) = f(RMSNorm(x))``) and wrapped by its own mixer,
so a transformer layer has two mixers (attention, MLP), as in HC/mHC.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hyper import HyperConnection
from .mixers import SINGLE_STREAM, make_mixer
from .token_mixing import TokenMixBlock

KINDS = ("mlp", "transformer", "tokenmix")


class MLPBlock(nn.Module):
    """``W_2 GELU(W_1 RMSNorm(x))``, hidden width ``4C``."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(C)
        self.up = nn.Linear(C, 4 * C)
        self.down = nn.Linear(4 * C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(self.norm(x))))


class AttentionBlock(nn.Module):
    """Causal multi-head self-attention on ``RMSNorm(x)`` (``scaled_dot_product_attention``)."""

    def __init__(self, C: int, heads: int) -> None:
        super().__init__()
        if C % heads:
            raise ValueError(f"width {C} is not divisible by {heads} heads")
        self.heads = heads
        self.norm = nn.RMSNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.out = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class Layer(nn.Module):
    """One depth step: sublayers, each wrapped by its mixer."""

    def __init__(self, blocks: list[nn.Module], mixer: str, n_streams: int, C: int, index: int,
                 backend: str = "torch"):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.mixers = nn.ModuleList(
            [make_mixer(mixer, n_streams, C, layer=len(blocks) * index + k, backend=backend)
             for k in range(len(blocks))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, mixer in zip(self.blocks, self.mixers):
            x = mixer(x, block)
        return x


class Model(nn.Module):
    """Embedding -> ``n`` streams -> ``depth`` layers -> sum of streams -> RMSNorm -> logits.

    Parameters
    ----------
    kind : ``"mlp"`` (one MLP sublayer per layer: a per-token deep MLP stack),
        ``"transformer"`` (attention + MLP sublayers per layer, learned positions) or
        ``"tokenmix"`` (the transformer with :class:`TokenMixBlock`, BE-HC permutation
        token mixing, in place of attention; same everything else).
    backend : ``"torch"`` or ``"triton"`` (the mixers' Sinkhorn and stream mixing, and the
        token mixing, on ``gpu``).
    """

    def __init__(self, vocab: int, C: int, depth: int, mixer: str, n_streams: int = 4,
                 kind: str = "mlp", heads: int = 4, max_len: int = 1024, backend: str = "torch") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        n = 1 if mixer in SINGLE_STREAM else n_streams
        self.hyper = HyperConnection(n)
        self.embed = nn.Embedding(vocab, C)
        self.pos = nn.Embedding(max_len, C) if kind != "mlp" else None

        def blocks() -> list[nn.Module]:
            if kind == "transformer":
                return [AttentionBlock(C, heads), MLPBlock(C)]
            if kind == "tokenmix":
                return [TokenMixBlock(C, max_len, backend), MLPBlock(C)]
            return [MLPBlock(C)]

        self.layers = nn.ModuleList([Layer(blocks(), mixer, n, C, i, backend) for i in range(depth)])
        self.norm = nn.RMSNorm(C)
        self.head = nn.Linear(C, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)
        if self.pos is not None:
            h = h + self.pos(torch.arange(idx.shape[-1], device=idx.device))
        x = self.hyper.expand(h)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(self.hyper.reduce(x)))

    def mixers(self) -> list[nn.Module]:
        """All mixers in application order."""
        return [m for layer in self.layers for m in layer.mixers]
