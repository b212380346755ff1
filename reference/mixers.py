"""Residual mixers, one registry: residual, rezero, hc, mhc, mhc_lite, kromhc, behc.

A mixer wraps one sublayer ``F`` and maps the residual streams ``x in R^{... x n x C}``
of layer ``l`` to those of layer ``l + 1``:

    x_{l+1} = H_res x_l + H_post^T F(H_pre x_l)          (H_pre, H_post in R^{1 x n})

``residual`` and ``rezero`` use one stream (``n = 1``). For the hyper-connection family
the coefficients are *dynamic* (per token) plus a static bias, as in the papers:

* ``hc`` - Zhu et al., "Hyper-Connections" (ICLR 2025, arXiv:2409.19606), eqs. 10-13:
  ``H_bar = norm(x)`` per stream; ``A_m = s_a tanh(H_bar W_m) + A_m0`` (H_pre),
  ``A_r = s_a tanh(H_bar W_r) + A_r0`` (``H_res = A_r^T``), ``B = s_b tanh(H_bar W_b) + B0``
  (H_post). Unconstrained. Init: ``A_m0 = e_{l mod n}``, ``A_r0 = I``, ``B0 = 1``,
  ``W = 0``, ``s_a = s_b = 0.01``.
* ``mhc`` - Xie et al., "mHC" (DeepSeek, arXiv:2512.24880), eqs. 7-8: ``x~ = RMSNorm(vec x)``
  (``1 x nC``), ``H~_pre = a_pre (x~ phi_pre) + b_pre``, ``H~_post = a_post (x~ phi_post) + b_post``,
  ``H~_res = a_res mat(x~ phi_res) + b_res``; ``H_pre = sigmoid(H~_pre)``,
  ``H_post = 2 sigmoid(H~_post)``, ``H_res = SK_20(exp(H~_res))`` (log-domain Sinkhorn).
* ``mhc_lite`` - same pre/post; ``H_res = sum_k softmax(a_res x~ phi_res + b_res)_k P_k`` over
  all ``n!`` permutation matrices (exactly DS).
* ``kromhc`` - same pre/post; ``H_res = U_1 (x) ... (x) U_K`` over the prime factor sizes
  of ``n`` (``birkhoff.kron_factor_sizes``: 2x2 factors for powers of two), each
  ``U_k`` a softmax-weighted combination of the ``n_k!`` permutations of its mode
  (for 2x2: ``[[a, 1-a], [1-a, a]]``). Exactly DS.
* ``behc`` - a **reconstruction**: BE-HC has no public code or method text, only an
  abstract ("exactly doubly stochastic mixing as convex combinations of permutation
  matrices"). We chose mHC's pre/post and ``H_res = sum_k softmax(.)_k P_k`` over the ``n``
  cyclic shifts ``i -> i + k mod n`` (shift 0 is the identity): ``K = n`` terms, the
  smallest permutation set whose mixtures reach every stream from every other (the
  ``n`` shifts act transitively), against mHC-lite's ``n!``. Exactly DS.

Initialisation of ``mhc``, ``mhc_lite``, ``kromhc``, ``behc`` (``init=``):

* ``"reference"`` (default) follows the public reference code: KromHC
  (github wz1119/KromHC, ``hyper_conn/Kromhc.py``, ``mhc.py``, ``mhc_lite.py``) and
  mHC-lite (github FFTYYY/mhc-lite, ``hyper_conn/mhc_lite.py``, ``model.py``). Static
  ``H_pre`` and ``H_post`` logits are +1 on one *favoured* stream and -1 on the others, so
  ``H_pre = sigmoid(.) ~ [0.73, 0.27, ...]`` and ``H_post = 2 sigmoid(.) ~ [1.46, 0.54, ...]``;
  the residual logits are 0 for the identity and -8 for every other permutation (per
  factor for ``kromhc``; off the diagonal for ``mhc``); the dynamic projection ``phi``
  starts at 0; the three gates at 0.01. ``behc`` (a reconstruction: no code is public)
  uses the same convention over its cyclic shifts.
* ``"symmetric"``, the ablation start (every stream equal at init): ``phi ~
  N(0, 0.02^2)`` (its own random stream per mixer name), gates 0.01, ``b_pre = logit(1/n)``
  (``H_pre = 1/n``), ``b_post = 0`` (``H_post = 1``), and 0.99 of ``H_res``'s mass on the
  identity (``mhc``: diagonal logit ``log(99 (n - 1))``, for which ``SK(exp(.))`` is exactly
  ``0.99 I + 0.01 (J - I)/(n - 1)``; the permutation mixers: identity weight 0.99, per
  factor for ``kromhc``). All streams start equal and only ``phi`` tells them apart.

The favoured stream (``favoured=``): the reference code takes ``layer_index mod n`` when
it is given a layer index and a random stream (``randrange``) otherwise, and mHC-lite's
``model.py`` never passes one, so its published runs favour a random stream per
sublayer. ``"source"`` (default) does what each source did: ``hc`` uses the layer index
(HC paper, Zhu et al., section 2: ``A_m0 = e_{k mod n}``); ``mhc``, ``mhc_lite``, ``kromhc``,
``behc`` draw the stream at random from torch's generator (so the run's seed fixes it),
as mHC-lite's runs did. ``"layer"`` and ``"random"`` force one rule for every mixer.

The coefficient norm (``mixer_norm=``): ``"source"`` (default) uses each source's norm:
``hc`` a LayerNorm per stream (HC paper, eqs. 10-13; lucidrains' code notes "they used
layernorm in paper"); the mHC family RMSNorm of the flattened stream with a learnable
gain, ``x / rms(x) * (1 + gamma)``, ``gamma = 0`` at init (``RMSNorm`` in KromHC's and
mHC-lite's ``hyper_conn/*.py``; the mHC paper, eq. 7, writes RMSNorm without saying). The
gain is applied to ``phi``'s rows (``(x / rms) diag(1 + gamma) phi``, the same numbers),
so the fused coefficient kernel is unchanged. ``"plain"``: RMSNorm without gain for every
mixer (the ablation of the sources' norms; checkpoints made before the option ran it).

mHC's Sinkhorn order (``sk_order=``): ``"cols_rows"`` (default) normalises columns, then
rows, in each of the 20 sweeps, ``M <- T_r(T_c(M))``: the mHC paper, section 4.2, eq. 9
(``M^(t) = T_r(T_c(M^(t-1)))``, ``t_max = 20``). Ending on rows makes every row sum 1 (up
to rounding), so the *forward* Amax gain of ``H_res``, and of any product of such
matrices, is 1, and the backward gain (column sums) drifts. The public code of KromHC
(``hyper_conn/mhc.py``), mHC-lite and hyper-connections normalises ``dim=-2`` then
``dim=-1`` of ``alpha[s, t]`` and mixes ``out_t = sum_s alpha[s, t] x_s``: in this
project's orientation (``H_res = alpha^T``) that is rows then columns, ``"rows_cols"``,
which ends on columns (backward gain 1, forward gain drifting). Both run on the same
kernel: columns-first on ``L`` is rows-first on ``L^T``, transposed back.

The causal arm (``res_bound=``, ``hc`` only): ``"none"`` (default) is HC as its paper has it;
``"norm"`` divides each token's ``H_res`` by ``max(1, ||H_res||_1, ||H_res||_inf)`` and changes
nothing else (same parameters, same initialisation: HC's ``H_res = I`` at init is left as it is).
Every layer's forward and backward Amax gains, and so every product's, are then at most 1
(``||H||_2 <= sqrt(||H||_1 ||H||_inf) <= 1``): an intervention on HC's gain alone, to test whether
the gain is what costs HC its stability. This is this project's experiment, not a source's mixer.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from birkhoff import all_permutations, cyclic_permutations, kron_factor_sizes
from birkhoff.validate import count

from ._gpu import BACKENDS, STREAM_LIMITS, Backend, backend as get_backend, kron
from .checks import check_choice
from .tap import Tap

__all__ = ["MIXERS", "MixerSpec", "INITS", "SK_ORDERS", "FAVOURED", "MIXER_NORMS", "register", "make_mixer",
           "mixing_params", "stream_count", "stream_mixers", "Mixer"]

Block = Callable[[torch.Tensor], torch.Tensor]
Coefficients = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
SK_ITERS = 20
IDENTITY_MASS = 0.99                 # symmetric init: identity weight of H_res
OFF_LOGIT = -8.0                     # reference init: logit of every non-identity permutation
# Each option's first value is its default; every signature that offers a default takes it from here.
INITS = ("reference", "symmetric")
SK_ORDERS = ("cols_rows", "rows_cols")   # mhc: columns then rows (ends on rows), or rows then columns
FAVOURED = ("source", "layer", "random")  # the stream the reference init favours (see the module doc)
MIXER_NORMS = ("source", "plain")         # the coefficient norm (see the module doc)
RES_BOUNDS = ("none", "norm")             # hc's causal arm: H_res as is, or its gains bounded by 1 (module doc)

MIXERS: dict[str, type["Mixer"]] = {}


def register(name: str) -> Callable[[type["Mixer"]], type["Mixer"]]:
    """Class decorator: add a :class:`Mixer` subclass to :data:`MIXERS` under ``name``."""
    def add(cls: type["Mixer"]) -> type["Mixer"]:
        if name in MIXERS:
            raise ValueError(f"mixer {name!r} is already registered")
        cls.name = name
        MIXERS[name] = cls
        return cls
    return add


class Mixer(nn.Module):
    """Base class: ``forward(x, block, tap=None)`` maps streams ``x (..., n, C)`` to the next layer's.

    Subclasses define :meth:`coefficients` (``H_pre (..., n)``, ``H_post (..., n)``,
    ``H_res (..., n, n)`` for each token of ``x``) and :meth:`closed_form` (their parameter
    count). Every subclass takes ``(n_streams, C, layer_index, ops, **options)``:
    ``layer_index`` is the global index of the wrapped sublayer, ``ops`` the
    :class:`gpu.backend.Backend` whose Sinkhorn, permutation combine and stream mixing it
    uses; the options are ``init`` (one of :data:`INITS`, see the module doc; ``hc`` and
    the single-stream mixers have one init), ``sk_order`` (one of :data:`SK_ORDERS`, used
    by ``mhc``), ``favoured`` (one of :data:`FAVOURED`) and ``mixer_norm`` (one of
    :data:`MIXER_NORMS`). ``single_stream`` mixers run on one stream whatever
    ``n_streams`` is asked for; ``source_favoured`` is the favoured-stream rule of the
    mixer's source.
    """

    name: str = ""
    single_stream: bool = False
    source_favoured: str = "random"

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None, *,
                 init: str, sk_order: str, favoured: str, mixer_norm: str, res_bound: str = RES_BOUNDS[0]) -> None:
        super().__init__()
        self.n_streams = self.streams_for(n_streams)
        self.ops = ops or get_backend(BACKENDS[0])
        self.init, self.sk_order, self.mixer_norm, self.res_bound = init, sk_order, mixer_norm, res_bound
        rule = self.source_favoured if favoured == "source" else favoured
        if self.n_streams == 1:
            self.favoured = 0
        else:
            self.favoured = layer_index % self.n_streams if rule == "layer" else int(torch.randint(self.n_streams, ()))

    def remember_init(self) -> None:
        """Keep a copy of the parameters as initialised, outside the state dict (:meth:`at_init` compares;
        it costs one more copy of the mixing parameters)."""
        self.__dict__["_init_params"] = [p.detach().clone() for p in self.parameters()]

    def at_init(self) -> bool | None:
        """Whether every parameter still equals its initial value (None: :meth:`remember_init` never ran)."""
        init = self.__dict__.get("_init_params")
        if init is None:
            return None
        params = list(self.parameters())
        return len(params) == len(init) and all(
            p.shape == q.shape and torch.equal(p.detach(), q.to(p.device)) for p, q in zip(params, init))

    @classmethod
    def streams_for(cls, n_streams: int) -> int:
        """The streams this mixer runs on when ``n_streams`` are asked for: 1 if ``single_stream``."""
        return 1 if cls.single_stream else n_streams

    def coefficients(self, x: torch.Tensor) -> Coefficients:  # overridden
        """``(H_pre, H_post, H_res)`` for every token of ``x (..., n, C)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, block: Block, tap: Tap | None = None) -> torch.Tensor:
        """``H_res x + H_post^T F(H_pre x)``; ``tap.h_res`` sees (and may replace) ``H_res``,
        ``tap.streams`` sees the result."""
        H_pre, H_post, H_res = self.coefficients(x)
        if tap is not None:
            H_res = tap.h_res(self, H_res)
        out = self.ops.hc_post_res(x, block(self.ops.hc_pre(x, H_pre)), H_res, H_post)
        if tap is not None:
            tap.streams(self, out)
        return out

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:  # overridden
        raise NotImplementedError


class _SingleStream(Mixer):
    """``x + g F(x)`` on one stream: ``H_res = [1]``, ``H_pre = [1]``, ``H_post = [g]``."""

    single_stream = True

    def gain(self) -> torch.Tensor | float:  # overridden
        raise NotImplementedError

    def coefficients(self, x: torch.Tensor) -> Coefficients:
        one = x.new_ones(x.shape[:-1])
        return one, one * self.gain(), one.unsqueeze(-1)

    def forward(self, x: torch.Tensor, block: Block, tap: Tap | None = None) -> torch.Tensor:
        if tap is not None:
            tap.h_res(self, x.new_ones(1, 1, 1))
        out = x + self.gain() * block(x[..., 0, :]).unsqueeze(-2)
        if tap is not None:
            tap.streams(self, out)
        return out


@register("residual")
class Residual(_SingleStream):
    """``x + F(x)``: no parameters."""

    def gain(self) -> float:
        return 1.0

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return 0


@register("rezero")
class ReZero(_SingleStream):
    """``x + alpha F(x)`` with ``alpha = 0`` at init (Bachlechner et al. 2021)."""

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None,
                 **options) -> None:
        super().__init__(n_streams, C, layer_index, ops, **options)
        self.alpha = nn.Parameter(torch.zeros(()))

    def gain(self) -> torch.Tensor:
        return self.alpha

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return 1


@register("hc")
class HC(Mixer):
    """Unconstrained hyper-connections (Zhu et al. 2024), static + dynamic (see module doc)."""

    source_favoured = "layer"

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None,
                 **options) -> None:
        super().__init__(n_streams, C, layer_index, ops, **options)
        n = self.n_streams
        self.norm = nn.LayerNorm(C) if self.mixer_norm == "source" else nn.RMSNorm(C, elementwise_affine=False)
        A_m = torch.zeros(n)
        A_m[self.favoured] = 1.0
        self.A_m = nn.Parameter(A_m)
        self.A_r = nn.Parameter(torch.eye(n))
        self.B = nn.Parameter(torch.ones(n))
        self.W_m = nn.Parameter(torch.zeros(C))
        self.W_r = nn.Parameter(torch.zeros(C, n))
        self.W_b = nn.Parameter(torch.zeros(C))
        self.s_a = nn.Parameter(torch.tensor(0.01))
        self.s_b = nn.Parameter(torch.tensor(0.01))

    def coefficients(self, x: torch.Tensor) -> Coefficients:
        h = self.norm(x)                                                  # (.., n, C)
        H_pre = self.s_a * torch.tanh(h @ self.W_m) + self.A_m            # (.., n)
        A_r = self.s_a * torch.tanh(h @ self.W_r) + self.A_r              # (.., n, n)
        H_post = self.s_b * torch.tanh(h @ self.W_b) + self.B             # (.., n)
        H_res = A_r.transpose(-1, -2)
        if self.res_bound == "norm":                                      # the causal arm: gains <= 1
            a = H_res.abs()
            gain = torch.maximum(a.sum(-1).amax(-1), a.sum(-2).amax(-1)).clamp_min(1.0)
            H_res = H_res / gain[..., None, None]
        return H_pre, H_post, H_res

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return n * n + 2 * n + C * (n + 2) + 2 + (2 * C if mixer_norm == "source" else 0)


class _Manifold(Mixer):
    """mHC-style dynamic coefficients; subclasses define the ``H_res`` constraint.

    One projection ``phi`` of width ``2n + R`` from the RMS-normed flattened stream,
    gates ``a_pre, a_post, a_res`` and biases ``b_pre (n), b_post (n), b_res (R)``; with
    ``mixer_norm="source"`` the norm's learnable gain ``1 + norm_gain (nC)``.
    """

    def __init__(self, n_streams: int, C: int, layer_index: int, ops: Backend | None, **options) -> None:
        super().__init__(n_streams, C, layer_index, ops, **options)
        n, init = self.n_streams, self.init
        b_res = self.res_logits(init)
        self.gates = nn.Parameter(torch.full((3,), 0.01))
        if init == "reference":
            self.phi = nn.Parameter(torch.zeros(n * C, 2 * n + len(b_res)))
            b_pre = torch.full((n,), -1.0)
            b_pre[self.favoured] = 1.0
            self.b_pre, self.b_post = nn.Parameter(b_pre), nn.Parameter(b_pre.clone())
        else:
            draw = torch.Generator().manual_seed(int(torch.randint(2 ** 62, ())) ^ zlib.crc32(self.name.encode()))
            self.phi = nn.Parameter(0.02 * torch.randn(n * C, 2 * n + len(b_res), generator=draw))
            self.b_pre = nn.Parameter(torch.full((n,), math.log(1.0 / (n - 1)) if n > 1 else 10.0))
            self.b_post = nn.Parameter(torch.zeros(n))
        self.b_res = nn.Parameter(b_res)
        self.norm_gain = nn.Parameter(torch.zeros(n * C)) if self.mixer_norm == "source" else None

    def res_logits(self, init: str) -> torch.Tensor:  # overridden
        """The static residual logits ``b_res`` at init."""
        raise NotImplementedError

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:  # overridden
        raise NotImplementedError

    def coefficients(self, x: torch.Tensor) -> Coefficients:
        # RMSNorm(vec x) @ phi, gates, sigmoid / 2 sigmoid: one fused kernel on the triton backend;
        # the norm's gain scales phi's rows: (x / rms) diag(1 + gamma) phi
        phi = self.phi if self.norm_gain is None else self.phi * (1 + self.norm_gain).unsqueeze(-1)
        H_pre, H_post, a_res = self.ops.hc_coeffs(x, phi, self.gates,
                                                  torch.cat([self.b_pre, self.b_post, self.b_res]))
        # H_res in fp32 whatever the autocast: Sinkhorn's and the softmax mixtures' DS residual
        # would otherwise be bf16 rounding (~1e-3) instead of fp32's (~1e-7)
        with torch.autocast(x.device.type, enabled=False):
            H_res = self.h_res(a_res.float() if a_res.dtype in (torch.bfloat16, torch.float16) else a_res)
        return H_pre, H_post, H_res

    @staticmethod
    def _common(n: int, C: int, R: int, mixer_norm: str) -> int:
        return n * C * (2 * n + R) + 3 + 2 * n + R + (n * C if mixer_norm == "source" else 0)


def _identity_logits(K: int, init: str) -> torch.Tensor:
    """Logits over ``K`` permutations (identity first): reference ``[0, -8, ..., -8]``;
    symmetric: the identity gets softmax weight 0.99."""
    if init == "reference":
        b = torch.full((K,), OFF_LOGIT)
        b[0] = 0.0
        return b
    b = torch.zeros(K)
    if K > 1:
        b[0] = math.log(IDENTITY_MASS / (1 - IDENTITY_MASS) * (K - 1))
    return b


@register("mhc")
class MHC(_Manifold):
    """DeepSeek mHC: ``H_res = SK_20(exp(H~_res))``."""

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None,
                 **options) -> None:
        super().__init__(n_streams, C, layer_index, ops, **options)

    def res_logits(self, init: str) -> torch.Tensor:
        n = self.n_streams
        if init == "reference":                       # mhc.py: 0 on the diagonal, -8 off it
            b = torch.full((n, n), OFF_LOGIT)
            b.fill_diagonal_(0.0)
        else:
            b = torch.zeros(n, n)
            if n > 1:
                b.fill_diagonal_(math.log(IDENTITY_MASS / (1 - IDENTITY_MASS) * (n - 1)))
        return b.flatten()

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:
        n = self.n_streams
        L = logits.unflatten(-1, (n, n))
        if self.sk_order == "rows_cols":
            return self.ops.sinkhorn(L, SK_ITERS)
        # columns first, ending on rows: SK on L^T sweeps L's columns first; transpose back
        return self.ops.sinkhorn(L.mT, SK_ITERS).mT

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return _Manifold._common(n, C, n * n, mixer_norm)


class _PermutationMixture(_Manifold):
    """``H_res = sum_k softmax(logits)_k P_k`` over a fixed permutation set (identity first)."""

    def __init__(self, n_streams: int, C: int, layer_index: int, ops: Backend | None, perms: np.ndarray,
                 **options) -> None:
        self._perm_count = len(perms)
        super().__init__(n_streams, C, layer_index, ops, **options)
        self.register_buffer("perms", torch.tensor(perms), persistent=False)          # (K, n)

    def res_logits(self, init: str) -> torch.Tensor:
        return _identity_logits(self._perm_count, init)

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:
        return self.ops.bvn_combine(torch.softmax(logits, dim=-1), self.perms)


@register("mhc_lite")
class MHCLite(_PermutationMixture):
    """mHC-lite: convex combination of all ``n!`` permutation matrices."""

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None,
                 **options) -> None:
        super().__init__(n_streams, C, layer_index, ops, all_permutations(n_streams), **options)

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return _Manifold._common(n, C, math.factorial(n), mixer_norm)


@register("kromhc")
class KromHC(_Manifold):
    """KromHC: ``H_res = U_1 (x) ... (x) U_K``, each factor a permutation mixture of its mode."""

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None,
                 **options) -> None:
        sizes = kron_factor_sizes(n_streams)
        self.counts = [math.factorial(m) for m in sizes]
        super().__init__(n_streams, C, layer_index, ops, **options)
        for i, m in enumerate(sizes):
            self.register_buffer(f"perms{i}", torch.tensor(all_permutations(m)), persistent=False)

    def res_logits(self, init: str) -> torch.Tensor:
        return torch.cat([_identity_logits(k, init) for k in self.counts])      # per factor

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:
        return kron([self.ops.bvn_combine(torch.softmax(chunk, -1), getattr(self, f"perms{i}"))
                     for i, chunk in enumerate(torch.split(logits, self.counts, dim=-1))])

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return _Manifold._common(n, C, sum(math.factorial(m) for m in kron_factor_sizes(n)), mixer_norm)


@register("behc")
class BEHC(_PermutationMixture):
    """BE-HC stream mixing (a reconstruction, see the module doc): convex combination of the
    ``n`` cyclic shifts (identity = shift 0)."""

    def __init__(self, n_streams: int, C: int, layer_index: int = 0, ops: Backend | None = None,
                 **options) -> None:
        super().__init__(n_streams, C, layer_index, ops, cyclic_permutations(n_streams), **options)

    @staticmethod
    def closed_form(n: int, C: int, mixer_norm: str) -> int:
        return _Manifold._common(n, C, n, mixer_norm)


def _lookup(name: str) -> type[Mixer]:
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; choose from {sorted(MIXERS)}")
    return MIXERS[name]


def stream_mixers() -> list[str]:
    """The registered mixers that mix several streams (all but the single-stream baselines)."""
    return [name for name, cls in MIXERS.items() if not cls.single_stream]


def stream_count(name: str, n_streams: int) -> int:
    """The number of streams mixer ``name`` runs on when ``n_streams`` are asked for (1 or ``n_streams``)."""
    return _lookup(name).streams_for(n_streams)


@dataclass(frozen=True, kw_only=True)
class MixerSpec:
    """One mixer's settings, checked once, when the spec is made: everything built from it
    (:meth:`build`, :class:`reference.hyper.HyperConnected`, :class:`reference.models.Model`)
    takes them as they are.

    mixer : the mixer's name, a key of :data:`MIXERS`.
    n_streams : the streams asked for, an integer >= 1 (the single-stream mixers run on one:
        :attr:`streams`), at most the backend's kernel limit (``"triton"``: 16).
    backend : ``"torch"`` or ``"triton"`` (the ``gpu`` kernels run its Sinkhorn, permutation
        combine and stream mixing).
    init, sk_order, favoured, mixer_norm : one of :data:`INITS`, :data:`SK_ORDERS`,
        :data:`FAVOURED`, :data:`MIXER_NORMS` (see the module doc).
    res_bound : one of :data:`RES_BOUNDS`; ``"norm"`` (``hc`` only) bounds ``H_res``'s gains by 1
        (the causal arm, see the module doc).

    A bad value is a ``ValueError`` that names the setting. :class:`reference.models.Architecture`
    (and so every model and run configuration) is a ``MixerSpec`` with the model's other settings.
    """

    mixer: str = "mhc"
    n_streams: int = 4
    backend: str = BACKENDS[0]
    init: str = INITS[0]
    sk_order: str = SK_ORDERS[0]
    favoured: str = FAVOURED[0]
    mixer_norm: str = MIXER_NORMS[0]
    res_bound: str = RES_BOUNDS[0]

    def __post_init__(self) -> None:
        _lookup(self.mixer)
        count(self.n_streams, "n_streams", low=1)
        for option, options in (("backend", BACKENDS), ("init", INITS), ("sk_order", SK_ORDERS),
                                ("favoured", FAVOURED), ("mixer_norm", MIXER_NORMS), ("res_bound", RES_BOUNDS)):
            check_choice(option, getattr(self, option), options)
        if self.res_bound != RES_BOUNDS[0] and self.mixer != "hc":
            raise ValueError(f"res_bound {self.res_bound!r} is HC's causal arm; mixer {self.mixer!r} takes 'none'")
        limit = STREAM_LIMITS[self.backend]
        if limit is not None and self.streams > limit:
            raise ValueError(f"backend {self.backend!r} handles at most {limit} streams, "
                             f"got n_streams = {self.streams}")

    @property
    def streams(self) -> int:
        """The streams the mixer runs on: 1 for ``residual`` and ``rezero``, else ``n_streams``."""
        return stream_count(self.mixer, self.n_streams)

    def build(self, C: int, layer_index: int = 0) -> Mixer:
        """The mixer module for streams of width ``C`` at global sublayer index ``layer_index``."""
        return MIXERS[self.mixer](self.n_streams, C, layer_index, get_backend(self.backend), init=self.init,
                                 sk_order=self.sk_order, favoured=self.favoured, mixer_norm=self.mixer_norm,
                                 res_bound=self.res_bound)


def make_mixer(name: str, n_streams: int, C: int, layer: int = 0, backend: str = BACKENDS[0],
               init: str = INITS[0], sk_order: str = SK_ORDERS[0], favoured: str = FAVOURED[0],
               mixer_norm: str = MIXER_NORMS[0]) -> Mixer:
    """The mixer ``name`` for ``n_streams`` streams of width ``C`` at global sublayer index ``layer``:
    ``MixerSpec(...).build(C, layer)`` (the settings are checked by :class:`MixerSpec`; a stream
    count beyond what the backend's kernels handle is refused here, when the model is built)."""
    spec = MixerSpec(mixer=name, n_streams=n_streams, backend=backend, init=init, sk_order=sk_order,
                     favoured=favoured, mixer_norm=mixer_norm)
    return spec.build(C, layer)


def mixing_params(name: str, n_streams: int, C: int, mixer_norm: str = MIXER_NORMS[0]) -> int:
    """Mixing parameters per layer of mixer ``name`` on ``n = n_streams`` streams of width ``C``, closed
    form (tests check it against the modules).

    residual 0; rezero 1; hc ``n^2 + 2n + C(n+2) + 2`` (``+ 2C``: its LayerNorm, with
    ``mixer_norm="source"``); and with ``common(R) = nC(2n + R) + 2n + R + 3`` (``+ nC``: the
    RMSNorm gain, with ``mixer_norm="source"``): mhc ``common(n^2)`` (``~n^3 C``), mhc_lite
    ``common(n!)`` (``~nC n!``), kromhc ``common(sum_k n_k!)`` (``2 log2(n)`` for powers of
    two: ``~2 n^2 C`` from pre/post), behc ``common(n)`` (``~3 n^2 C``).
    """
    return _lookup(name).closed_form(stream_count(name, n_streams), C, mixer_norm)
