"""The drop-in module: hyper-connect any ``nn.Module`` ``[..., C] -> [..., C]`` with a registered mixer.

    x (..., n, C)  ->  H_res x + H_post^T layer(H_pre x)          (H_res, H_pre, H_post per token)

:func:`expand_streams` widens a hidden state ``h (..., C)`` into ``n`` streams, every
stream a copy of ``h`` (HC paper, section 2: the initial hyper hidden matrix replicates
the embedding); :func:`reduce_streams` sums them (the HC paper's final ``sum_k h_k``;
normalise afterwards, as every pre-norm network does, and the scale ``n`` is immaterial).

How the peers' APIs map onto this one:

* ``hyper-connections``: ``init, expand, reduce = get_init_and_expand_reduce_stream_functions(n)``
  then ``init(dim=C, branch=layer, layer_index=i)`` is ``HyperConnected(layer, "hc", n, C, i)``,
  or :func:`stream_functions` ``(mixer, n, C)`` for the same three-function shape. They fold
  the streams into the batch axis (``(b n) ... d``); we keep a stream axis ``(..., n, C)``.
* Liger-Kernel: ``LigerMHC(layer, hc=n, c=C)`` is ``HyperConnected(layer, "mhc", n, C)``;
  ``backend="triton"`` puts Sinkhorn and the stream mixing on our Triton kernels.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn

from .mixers import make_mixer, stream_count
from .tap import Tap

__all__ = ["expand_streams", "reduce_streams", "HyperConnected", "stream_functions"]


def expand_streams(h: torch.Tensor, n_streams: int) -> torch.Tensor:
    """``h (..., C) -> x (..., n, C)``, every stream a copy of ``h``."""
    if n_streams < 1:
        raise ValueError(f"n_streams must be >= 1, got {n_streams}")
    return h.unsqueeze(-2).expand(*h.shape[:-1], n_streams, h.shape[-1]).contiguous()


def reduce_streams(x: torch.Tensor) -> torch.Tensor:
    """``x (..., n, C) -> sum_j x[..., j, :]``, ``(..., C)``."""
    return x.sum(dim=-2)


class HyperConnected(nn.Module):
    """``layer`` wrapped by the mixer ``mixer`` over ``n_streams`` streams of width ``C``.

    Parameters
    ----------
    layer : any module mapping ``[..., C] -> [..., C]`` (attention, MLP, ...).
    mixer : a name in ``reference.mixers.MIXERS``: ``hc``, ``mhc``, ``mhc_lite``, ``kromhc``,
        ``behc`` (or ``residual`` / ``rezero``, which use one stream).
    n_streams, C : streams and width. ``n_streams`` is the stream count of the input
        (:attr:`n_streams` is 1 for the single-stream mixers).
    layer_index : global index of this sublayer (the mixers' initialisation depends on it).
    backend : ``"torch"`` or ``"triton"`` (``gpu`` kernels).
    init : ``"reference"`` (the papers' public code, default) or ``"symmetric"``
        (see :mod:`reference.mixers`).
    sk_order : mHC's Sinkhorn order, ``"cols_rows"`` (default, ends on rows) or ``"rows_cols"``.
    favoured, mixer_norm : the reference init's favoured stream and the coefficient norm
        (``"source"``: as each mixer's source does; see :mod:`reference.mixers`).

    ``forward(x, tap=None, **layer_kwargs)``: ``x (..., n, C)``; ``tap`` sees ``H_res``
    (:mod:`reference.tap`), and the layer's own mixing matrices too when the layer sets
    ``uses_tap = True`` (BE-HC token mixing); ``layer_kwargs`` go to ``layer``.
    """

    def __init__(self, layer: nn.Module, mixer: str, n_streams: int, C: int, layer_index: int = 0,
                 backend: str = "torch", init: str = "reference", sk_order: str = "cols_rows",
                 favoured: str = "source", mixer_norm: str = "source") -> None:
        super().__init__()
        self.layer = layer
        self.mixer = make_mixer(mixer, n_streams, C, layer=layer_index, backend=backend, init=init,
                                sk_order=sk_order, favoured=favoured, mixer_norm=mixer_norm)
        self.n_streams = stream_count(mixer, n_streams)

    def forward(self, x: torch.Tensor, tap: Tap | None = None, **layer_kwargs) -> torch.Tensor:
        if tap is not None and getattr(self.layer, "uses_tap", False):
            layer_kwargs["tap"] = tap
        return self.mixer(x, partial(self.layer, **layer_kwargs) if layer_kwargs else self.layer, tap)


def stream_functions(mixer: str, n_streams: int, C: int, backend: str = "torch", init: str = "reference"
                     ) -> tuple[Callable[..., HyperConnected], Callable[[torch.Tensor], torch.Tensor],
                                Callable[[torch.Tensor], torch.Tensor]]:
    """``(init, expand, reduce)`` in the manner of ``hyper-connections``:
    ``init(layer, layer_index)`` -> :class:`HyperConnected`, ``expand(h)``, ``reduce(x)``."""
    n = stream_count(mixer, n_streams)

    def wrap(layer: nn.Module, layer_index: int = 0) -> HyperConnected:
        return HyperConnected(layer, mixer, n, C, layer_index, backend, init)

    return wrap, partial(expand_streams, n_streams=n), reduce_streams
