"""The drop-in module: hyper-connect any ``nn.Module`` ``[..., C] -> [..., C]`` with a registered mixer.

    x (..., n, C)  ->  H_res x + H_post^T layer(H_pre x, *args, **kwargs)      (per token)

:func:`expand_streams` widens a hidden state ``h (..., C)`` into ``n`` streams, every
stream a copy of ``h`` (HC paper, section 2: the initial hyper hidden matrix replicates
the embedding); :func:`reduce_streams` sums them (the HC paper's final ``sum_k h_k``;
normalise afterwards, as every pre-norm network does, and the scale ``n`` is immaterial).

What a drop-in needs:

* any positional and keyword arguments of ``forward`` go to the layer; a layer that
  returns a tuple has its first element mixed and the rest passed through;
* the input shape is checked, and the error names the ``(..., n, C)`` expected (a
  forgotten :func:`expand_streams` is the usual cause);
* ``disable=True`` is exactly the plain model, ``h + layer(h, ...)`` on the un-expanded
  ``h``, with the layer's own parameter names in ``state_dict`` (a plain checkpoint
  loads; :func:`stream_functions` then expands and reduces nothing);
* :func:`load_plain_state_dict` starts a hyper-connected model from a plain model's
  checkpoint: every wrapped layer takes its plain weights, the mixers keep their init;
* :func:`monitor` checks a model built from these modules (see there).

How the peers' APIs map onto this one:

* ``hyper-connections``: ``init, expand, reduce = get_init_and_expand_reduce_stream_functions(n)``
  then ``init(dim=C, branch=layer, layer_index=i)``: :func:`stream_functions` ``(mixer, n, C)``
  returns the same three functions and its ``init`` takes those keywords. They fold the
  streams into the batch axis (``(b n) ... d``); we keep a stream axis ``(..., n, C)``.
* Liger-Kernel: ``LigerMHC(layer, hc=n, c=C)`` is ``HyperConnected(layer, "mhc", n, C)``;
  ``backend="triton"`` puts Sinkhorn and the stream mixing on our Triton kernels.
"""

from __future__ import annotations

from dataclasses import fields
from functools import partial
from typing import Any, Callable

import torch
import torch.nn as nn

from birkhoff.validate import count

from ._gpu import BACKENDS
from .mixers import FAVOURED, INITS, MIXER_NORMS, SK_ORDERS, MixerSpec
from .tap import Chain, Tap

__all__ = ["expand_streams", "reduce_streams", "HyperConnected", "stream_functions", "load_plain_state_dict"]


def expand_streams(h: torch.Tensor, n_streams: int) -> torch.Tensor:
    """``h (..., C) -> x (..., n, C)``, every stream a copy of ``h``."""
    count(n_streams, "n_streams", low=1)
    return h.unsqueeze(-2).expand(*h.shape[:-1], n_streams, h.shape[-1]).contiguous()


def reduce_streams(x: torch.Tensor) -> torch.Tensor:
    """``x (..., n, C) -> sum_j x[..., j, :]``, ``(..., C)``."""
    return x.sum(dim=-2)


class HyperConnected(nn.Module):
    """``layer`` wrapped by the mixer ``mixer`` over ``n_streams`` streams of width ``C``.

    Parameters
    ----------
    layer : any module mapping ``[..., C] -> [..., C]`` (attention, MLP, ...); it may take
        more arguments and return a tuple whose first element is the ``[..., C]`` output.
    mixer : a name in ``reference.mixers.MIXERS``: ``hc``, ``mhc``, ``mhc_lite``, ``kromhc``,
        ``behc`` (or ``residual`` / ``rezero``, which use one stream); or a
        :class:`reference.mixers.MixerSpec`, checked when it was made, which carries
        ``n_streams``, ``backend`` and the options (leave those arguments out).
    n_streams, C : streams and width. ``n_streams`` is the stream count of the input
        (:attr:`n_streams` is 1 for the single-stream mixers).
    layer_index : global index of this sublayer (the mixers' initialisation may depend on it).
    backend : ``"torch"`` or ``"triton"`` (``gpu`` kernels).
    init : ``"reference"`` (the papers' public code, default) or ``"symmetric"``
        (see :mod:`reference.mixers`).
    sk_order : mHC's Sinkhorn order, ``"cols_rows"`` (default, ends on rows) or ``"rows_cols"``.
    favoured, mixer_norm : the reference init's favoured stream and the coefficient norm
        (``"source"``: as each mixer's source does; see :mod:`reference.mixers`).
    disable : exactly the plain residual ``h + layer(h, ...)`` on the un-expanded ``h (..., C)``,
        no mixer, and the layer's parameter names without the ``layer.`` prefix in ``state_dict``.

    ``forward(x, *args, tap=None, **kwargs)``: ``x (..., n, C)``; ``args`` and ``kwargs`` go to
    ``layer``; ``tap`` sees ``H_res`` (:mod:`reference.tap`), and the layer's own mixing
    matrices too when the layer sets ``uses_tap = True`` (BE-HC token mixing).
    """

    def __init__(self, layer: nn.Module, mixer: str | MixerSpec = "mhc", n_streams: int = 4, C: int | None = None,
                 layer_index: int = 0, backend: str = BACKENDS[0], init: str = INITS[0], sk_order: str = SK_ORDERS[0],
                 favoured: str = FAVOURED[0], mixer_norm: str = MIXER_NORMS[0], disable: bool = False) -> None:
        super().__init__()
        self.layer = layer
        self.disable = bool(disable)
        self.watch: Tap | None = None             # set by the health monitor for the passes it reads
        if self.disable:
            self.mixer, self.n_streams, self.C = None, 1, C
            self._register_state_dict_hook(_drop_layer_prefix)
            self._register_load_state_dict_pre_hook(_add_layer_prefix)
            return
        count(C, "C (the width)", low=1)
        spec = _spec(mixer, n_streams=n_streams, backend=backend, init=init, sk_order=sk_order, favoured=favoured,
                     mixer_norm=mixer_norm)
        self.mixer = spec.build(C, layer_index)
        self.mixer.remember_init()                # the monitor tells an untrained H_res from a stuck one
        self.n_streams, self.C = spec.streams, C

    def forward(self, x: torch.Tensor, *args: Any, tap: Tap | None = None, **kwargs: Any) -> Any:
        if self.disable:
            out = self.layer(x, *args, **kwargs)
            return (x + out[0], *out[1:]) if isinstance(out, tuple) else x + out
        if x.ndim < 2 or tuple(x.shape[-2:]) != (self.n_streams, self.C):
            hint = " (expand the hidden state first: expand_streams(h, n_streams))" if x.shape[-1] == self.C else ""
            if self.mixer.single_stream and x.ndim >= 2 and x.shape[-1] == self.C:
                hint = (f": '{self.mixer.name}' is a single-stream mixer and this input has {x.shape[-2]} streams; "
                        f"use a stream mixer (hc, mhc, mhc_lite, kromhc, behc) in a stream model, or "
                        f"reduce_streams(x) first for a plain residual model")
            raise ValueError(f"HyperConnected({self.mixer.name}) expects x of shape (..., n, C) = "
                             f"(..., {self.n_streams}, {self.C}), got {tuple(x.shape)}{hint}")
        if self.watch is not None:                # the monitor's watch, after the caller's tap
            tap = self.watch if tap is None else Chain(tap, self.watch)
        if tap is not None and getattr(self.layer, "uses_tap", False):
            kwargs["tap"] = tap
        extra: list[tuple] = []

        def block(h: torch.Tensor) -> torch.Tensor:
            out = self.layer(h, *args, **kwargs)
            if isinstance(out, tuple):
                extra.append(out[1:])
                out = out[0]
            if not isinstance(out, torch.Tensor) or out.shape != h.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"HyperConnected({self.mixer.name}): the wrapped layer {type(self.layer).__name__} "
                                 f"must return its input's shape {tuple(h.shape)} (width C = {self.C}), got {got}")
            return out

        y = self.mixer(x, block, tap)
        return (y, *extra[0]) if extra else y


def _spec(mixer: str | MixerSpec, **settings: Any) -> MixerSpec:
    """``mixer`` if it is a :class:`MixerSpec` (then every other setting must be left at its default),
    else the spec of that name with ``settings``."""
    if not isinstance(mixer, MixerSpec):
        return MixerSpec(mixer=mixer, **settings)
    defaults = {f.name: f.default for f in fields(MixerSpec)}
    clash = sorted(k for k, v in settings.items() if v != defaults[k] and v != getattr(mixer, k))
    if clash:
        raise TypeError(f"pass the mixer's settings once: the MixerSpec, or the name with {', '.join(clash)}")
    return mixer


def _drop_layer_prefix(module: nn.Module, state: dict, prefix: str, local_metadata: Any) -> None:
    """``state_dict`` hook of a disabled :class:`HyperConnected`: ``<prefix>layer.w`` -> ``<prefix>w``."""
    inner = prefix + "layer."
    for key in [k for k in state if k.startswith(inner)]:
        state[prefix + key[len(inner):]] = state.pop(key)


def _add_layer_prefix(state: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook of a disabled :class:`HyperConnected`: ``<prefix>w`` -> ``<prefix>layer.w``."""
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(prefix + "layer.")]:
        state[prefix + "layer." + key[len(prefix):]] = state.pop(key)


def stream_functions(mixer: str, n_streams: int, C: int | None = None, backend: str = BACKENDS[0],
                     init: str = INITS[0], disable: bool = False
                     ) -> tuple[Callable[..., HyperConnected], Callable[[torch.Tensor], torch.Tensor],
                                Callable[[torch.Tensor], torch.Tensor]]:
    """``(init, expand, reduce)`` in the manner of ``hyper-connections``.

    ``init(layer=None, layer_index=0, *, branch=None, dim=None)`` -> :class:`HyperConnected`
    (``branch`` and ``dim`` are hyper-connections' names for the layer and the width);
    ``expand(h)``, ``reduce(x)``. With ``disable=True`` the modules are plain residuals and
    ``expand`` / ``reduce`` return their input.
    """
    spec = MixerSpec(mixer=mixer, n_streams=n_streams, backend=backend, init=init)

    def wrap(layer: nn.Module | None = None, layer_index: int = 0, *, branch: nn.Module | None = None,
             dim: int | None = None) -> HyperConnected:
        if (layer is None) == (branch is None):
            raise TypeError("pass the layer once: init(layer) or init(branch=layer)")
        return HyperConnected(layer if layer is not None else branch, spec, C=dim if dim is not None else C,
                              layer_index=layer_index, disable=disable)

    if disable:
        return wrap, _identity, _identity
    return wrap, partial(expand_streams, n_streams=spec.streams), reduce_streams


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def load_plain_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load a plain model's ``state_dict`` into the same model whose layers are wrapped by
    :class:`HyperConnected`: each wrapped layer takes its plain weights (``a.b.w`` ->
    ``a.b.layer.w``), every other weight loads as it is, and the mixers keep their
    initialisation. Returns the mixer parameters left at init; raises ``ValueError`` for a
    plain weight the model has no place for, or a model weight the checkpoint lacks."""
    wrapped = sorted((name for name, m in model.named_modules() if isinstance(m, HyperConnected) and not m.disable),
                     key=len, reverse=True)
    mapped = {}
    for key, value in state.items():
        owner = next((w for w in wrapped if key.startswith(w + ".")), None)
        mapped[key if owner is None else f"{owner}.layer.{key[len(owner) + 1:]}"] = value
    result = model.load_state_dict(mapped, strict=False)
    mixers = [k for k in result.missing_keys if any(k.startswith(w + ".mixer.") for w in wrapped)]
    if result.unexpected_keys or len(mixers) != len(result.missing_keys):
        missing = sorted(set(result.missing_keys) - set(mixers))
        raise ValueError(f"the plain checkpoint does not fit this model: unexpected {result.unexpected_keys[:3]}, "
                         f"missing {missing[:3]}")
    return mixers


def monitor(model: nn.Module, *args: Any, **kwargs: Any):
    """One forward pass of ``model(*args, **kwargs)`` checked layer by layer (:func:`reference.health.monitor`)."""
    from .health import monitor as run_monitor

    return run_monitor(model, *args, **kwargs)
