"""Models that take any mixer: a deep pre-norm MLP stack, a small causal transformer, and
the same transformer with BE-HC token mixing in place of attention.

Each sublayer ``F`` is pre-norm (``F(x) = f(RMSNorm(x))``; ``norm="none"`` drops that
RMSNorm, the ablation of the stability study) and wrapped by its own mixer, so a
transformer layer has two mixers (attention, MLP), as in HC/mHC.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from birkhoff.validate import count

from ._gpu import backend
from .checkpoint import CheckpointError, load_checkpoint
from .checks import check_choice
from .hyper import HyperConnected, expand_streams, reduce_streams
from .mixers import MixerSpec
from .norms import NORMS, sublayer_norm
from .tap import Tap
from .token_mixing import TokenMixBlock

KINDS = ("mlp", "transformer", "tokenmix")      # the first is the default


class MLPBlock(nn.Module):
    """``W_2 GELU(W_1 RMSNorm(x))``, hidden width ``4C``."""

    def __init__(self, C: int, norm: str = NORMS[0]) -> None:
        super().__init__()
        self.norm = sublayer_norm(C, norm)
        self.up = nn.Linear(C, 4 * C)
        self.down = nn.Linear(4 * C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(self.norm(x))))


class AttentionBlock(nn.Module):
    """Causal multi-head self-attention on ``RMSNorm(x)`` (``scaled_dot_product_attention``)."""

    def __init__(self, C: int, heads: int, norm: str = NORMS[0]) -> None:
        super().__init__()
        if C % heads:
            raise ValueError(f"width {C} is not divisible by {heads} heads")
        self.heads = heads
        self.norm = sublayer_norm(C, norm)
        self.qkv = nn.Linear(C, 3 * C)
        self.out = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


# Upper bounds of the architecture's sizes, checked when it is made (docs/RELIABILITY.md): beyond them a
# model takes minutes to build or more memory than a machine has.
SIZE_LIMITS = {"depth": 10_000, "width": 16_384, "heads": 1_024, "depth * width^2": 2 ** 28}


@dataclass(frozen=True, kw_only=True)
class Architecture(MixerSpec):
    """A :class:`Model`'s architecture before a task fixes its vocabulary and length: the one place
    these settings are defaulted and checked (:class:`ModelConfig` and the trainer's
    :class:`reference.lab.runs.Config` are both one).

    It is the mixer's :class:`reference.mixers.MixerSpec` (``mixer``, ``n_streams``, ``backend``,
    ``init``, ``sk_order``, ``favoured``, ``mixer_norm``; checked there, the backend's stream
    limit included) with the model's own settings:

    depth, width : layers and the width ``C``.
    kind : ``"mlp"`` (one MLP sublayer per layer: a per-token deep MLP stack),
        ``"transformer"`` (attention + MLP sublayers per layer, learned positions) or
        ``"tokenmix"`` (the transformer with :class:`TokenMixBlock`, BE-HC permutation
        token mixing, in place of attention; same everything else).
    heads : attention heads (``width`` must be a multiple).
    norm : ``"pre"`` (RMSNorm on every sublayer's input) or ``"none"`` (no sublayer norm;
        the final RMSNorm before the head stays).

    ``backend`` also runs the token mixing on the ``gpu`` kernels.
    """

    depth: int = 16
    width: int = 32
    kind: str = KINDS[0]
    heads: int = 4
    norm: str = NORMS[0]

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("depth", "width", "heads"):
            count(getattr(self, name), name, low=1, high=SIZE_LIMITS[name])
        if self.depth * self.width ** 2 > SIZE_LIMITS["depth * width^2"]:
            raise ValueError(f"depth * width^2 = {self.depth * self.width ** 2} is over "
                             f"{SIZE_LIMITS['depth * width^2']} (about {8 * SIZE_LIMITS['depth * width^2']:.2g} "
                             "weights): a model this size is not built here")
        for name, options in (("kind", KINDS), ("norm", NORMS)):
            check_choice(name, getattr(self, name), options)

    def architecture(self) -> dict:
        """The :class:`Architecture` fields of this object, by name."""
        return {f.name: getattr(self, f.name) for f in fields(Architecture)}


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Architecture):
    """Everything that defines a :class:`Model` (a checkpoint stores it): an :class:`Architecture`
    plus the task's ``vocab`` and the longest sequence ``max_len`` (learned positions)."""

    vocab: int
    max_len: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_task()

    def _check_task(self) -> None:
        for name in ("vocab", "max_len"):
            count(getattr(self, name), name, low=1)

    @classmethod
    def of(cls, architecture: Architecture, *, vocab: int, max_len: int) -> "ModelConfig":
        """The model of ``architecture`` (e.g. a run's :class:`reference.lab.runs.Config`) for a task of
        ``vocab`` symbols and sequences up to ``max_len``: its settings, checked when it was made, are
        taken as they are; only ``vocab`` and ``max_len`` are checked here."""
        config = object.__new__(cls)
        for name, value in {**architecture.architecture(), "vocab": vocab, "max_len": max_len}.items():
            object.__setattr__(config, name, value)
        config._check_task()
        return config


class Layer(nn.Module):
    """One depth step: sublayers, each wrapped by its own :class:`HyperConnected` mixer."""

    def __init__(self, blocks: list[nn.Module], cfg: ModelConfig, index: int) -> None:
        super().__init__()
        self.sublayers = nn.ModuleList(
            [HyperConnected(block, cfg, C=cfg.width, layer_index=len(blocks) * index + k)
             for k, block in enumerate(blocks)])

    def forward(self, x: torch.Tensor, tap: Tap | None = None) -> torch.Tensor:
        for sub in self.sublayers:
            x = sub(x, tap=tap)
        return x


class Model(nn.Module):
    """Embedding -> ``n`` streams -> ``depth`` layers -> sum of streams -> RMSNorm -> logits.

    ``Model(ModelConfig(vocab=96, mixer="kromhc", ...))``; ``model(idx, tap=None)``, where
    a :class:`reference.tap.Tap` sees every mixing matrix of the pass.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.n_streams = cfg.streams
        self.embed = nn.Embedding(cfg.vocab, cfg.width)
        self.pos = nn.Embedding(cfg.max_len, cfg.width) if cfg.kind != "mlp" else None
        ops = backend(cfg.backend)

        def blocks() -> list[nn.Module]:
            if cfg.kind == "transformer":
                return [AttentionBlock(cfg.width, cfg.heads, cfg.norm), MLPBlock(cfg.width, cfg.norm)]
            if cfg.kind == "tokenmix":
                return [TokenMixBlock(cfg.width, cfg.max_len, ops, cfg.norm), MLPBlock(cfg.width, cfg.norm)]
            return [MLPBlock(cfg.width, cfg.norm)]

        self.layers = nn.ModuleList([Layer(blocks(), cfg, i) for i in range(cfg.depth)])
        self.norm = nn.RMSNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab)

    def forward(self, idx: torch.Tensor, tap: Tap | None = None) -> torch.Tensor:
        h = self.embed(idx)
        if self.pos is not None:
            h = h + self.pos(torch.arange(idx.shape[-1], device=idx.device))
        x = expand_streams(h, self.n_streams)
        for layer in self.layers:
            x = layer(x, tap)
        return self.head(self.norm(reduce_streams(x)))

    def mixers(self) -> list[nn.Module]:
        """All mixers in application order."""
        return [sub.mixer for layer in self.layers for sub in layer.sublayers]

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu",
                        backend: str | None = None) -> "Model":
        """The model stored in a ``reference`` checkpoint (``ckpt.pt``: config and weights), in eval mode
        (``.train()`` to train it further).

        Read with ``torch.load(weights_only=True)``: tensors and plain containers only.
        ``backend`` overrides the stored one (e.g. a triton-trained model on a CPU).
        """
        ckpt = load_checkpoint(path, map_location)
        cfg = stored_config(ckpt, path)
        model = cls(replace(cfg, backend=backend) if backend else cfg)
        load_weights(model, ckpt, path)
        return model.to(map_location).eval()


def stored_config(ckpt: dict, path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` a checkpoint stores; :class:`CheckpointError` if it is not one."""
    try:
        return ModelConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: model_config is not a model configuration ({exc})") from None


def load_weights(model: nn.Module, ckpt: dict, path: str | os.PathLike) -> None:
    """``model.load_state_dict(ckpt["model"])``; :class:`CheckpointError` when the names or shapes differ."""
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: the weights do not fit the model ({' '.join(first[:2])[:300]})") from None
