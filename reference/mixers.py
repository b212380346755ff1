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
* ``behc`` - same pre/post; ``H_res = sum_k softmax(.)_k P_k`` over a fixed set of ``K``
  permutations: by default the ``n`` cyclic shifts ``i -> i + k mod n`` (shift 0 is the
  identity), so ``K = n``. Exactly DS.

Common init (our choice, stated because identity-like ``H_res`` matters at depth):
``phi`` ~ N(0, 0.02^2), gates ``a = 0.01``; ``b_pre = logit(1/n)`` (``H_pre = 1/n``: the
mean of the streams), ``b_post = 0`` (``H_post = 1``: every stream gets ``F``'s output),
and ``b_res`` puts 0.99 of the mass on the identity: ``mhc`` diagonal logit
``log(99 (n - 1))`` (``SK(exp(.))`` of it is exactly ``0.99 I + 0.01 (J - I)/(n - 1)``);
the permutation mixers give the identity a softmax weight of 0.99 (per factor for
``kromhc``). With all streams equal at init, every mixer starts as ``x + F(x)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from birkhoff import all_permutations, cyclic_permutations, kron_factor_sizes
from birkhoff.permutations import permutation_matrices

__all__ = ["MIXERS", "BACKENDS", "make_mixer", "mixing_params", "sinkhorn_log", "Mixer", "Ops",
           "backend_ops"]

Block = Callable[[torch.Tensor], torch.Tensor]
SK_ITERS = 20
IDENTITY_MASS = 0.99


def sinkhorn_log(logits: torch.Tensor, iters: int = SK_ITERS) -> torch.Tensor:
    """``SK_t(exp(L))`` in the log domain, rows then columns, batched over ``(..., n, n)``."""
    L = logits
    for _ in range(iters):
        L = L - torch.logsumexp(L, dim=-1, keepdim=True)
        L = L - torch.logsumexp(L, dim=-2, keepdim=True)
    return L.exp()


def kron_torch(factors: list[torch.Tensor]) -> torch.Tensor:
    """Batched ``U_1 (x) ... (x) U_K`` over ``(..., n_k, n_k)`` factors: ``(..., n, n)``."""
    H = factors[0]
    for U in factors[1:]:  # (a, b) (x) (c, d) -> (a c, b d)
        a, b = H.shape[-2:]
        c, d = U.shape[-2:]
        H = H[..., :, None, :, None] * U[..., None, :, None, :]
        H = H.reshape(*H.shape[:-4], a * c, b * d)
    return H


def _pre_torch(x: torch.Tensor, H_pre: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...n,...nc->...c", H_pre, x)


def _post_res_torch(x: torch.Tensor, f_out: torch.Tensor, H_res: torch.Tensor,
                    H_post: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...ij,...jc->...ic", H_res, x) + H_post.unsqueeze(-1) * f_out.unsqueeze(-2)


def _combine_torch(w: torch.Tensor, perms: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...k,kij->...ij", w, onehot.to(w.dtype))


@dataclass(frozen=True)
class Ops:
    """The primitives a hyper-connection layer needs; swapped as a set by ``backend``.

    ``combine(w, perms, onehot)`` is ``sum_k w_k P_k`` (``perms (K, n)`` indices and their
    ``(K, n, n)`` one-hot stack; each backend uses the form it needs).
    """

    sinkhorn: Callable[[torch.Tensor, int], torch.Tensor]
    pre: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    post_res: Callable[..., torch.Tensor]
    combine: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


TORCH_OPS = Ops(sinkhorn_log, _pre_torch, _post_res_torch, _combine_torch)
BACKENDS = ("torch", "triton")


def backend_ops(backend: str) -> Ops:
    """``torch`` (eager reference) or ``triton`` (``gpu.ops`` kernels, imported on demand)."""
    if backend == "torch":
        return TORCH_OPS
    if backend == "triton":
        from gpu import ops
        return Ops(ops.sinkhorn, ops.hc_pre, ops.hc_post_res,
                   lambda w, perms, onehot: ops.bvn_combine(w, perms))
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def _mix(ops: Ops, x: torch.Tensor, H_pre: torch.Tensor, H_post: torch.Tensor,
         H_res: torch.Tensor, block: Block) -> torch.Tensor:
    """``H_res x + H_post^T F(H_pre x)`` for per-token ``H_pre, H_post (.., n)``, ``H_res (.., n, n)``."""
    return ops.post_res(x, block(ops.pre(x, H_pre)), H_res, H_post)


class Mixer(nn.Module):
    """Base class. ``forward(x, block)`` with ``x`` of shape ``(..., n, C)``.

    ``last_h_res`` holds ``H_res`` (detached) for the first ``probe`` tokens of the last
    forward pass, shape ``(probe, n, n)``, for the composite-gain metrics. ``h_res_map``
    (default None) post-processes ``H_res`` before it is used and recorded: the INT8
    experiments (``reference.quantization``) set it to a rounding.
    """

    n_streams: int = 1
    probe: int = 8
    ops: Ops = TORCH_OPS
    h_res_map: Callable[[torch.Tensor], torch.Tensor] | None = None

    def _mapped(self, H_res: torch.Tensor) -> torch.Tensor:
        return H_res if self.h_res_map is None else self.h_res_map(H_res)

    def __init__(self) -> None:
        super().__init__()
        self.last_h_res: torch.Tensor | None = None

    def _record(self, H_res: torch.Tensor) -> None:
        self.last_h_res = H_res.detach().reshape(-1, *H_res.shape[-2:])[: self.probe]

    @staticmethod
    def closed_form(n: int, C: int) -> int:  # overridden
        raise NotImplementedError


class Residual(Mixer):
    """``x + F(x)``: ``H_res = [1]``, no parameters."""

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        self._record(torch.ones(1, 1, 1, dtype=x.dtype, device=x.device))
        return x + block(x[..., 0, :]).unsqueeze(-2)

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return 0


class ReZero(Mixer):
    """``x + alpha F(x)`` with ``alpha = 0`` at init (Bachlechner et al. 2021)."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        self._record(torch.ones(1, 1, 1, dtype=x.dtype, device=x.device))
        return x + self.alpha * block(x[..., 0, :]).unsqueeze(-2)

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return 1


class HC(Mixer):
    """Unconstrained hyper-connections (Zhu et al. 2024), static + dynamic (see module doc)."""

    def __init__(self, n: int, C: int, layer: int) -> None:
        super().__init__()
        self.n_streams = n
        self.norm = nn.RMSNorm(C, elementwise_affine=False)
        A_m = torch.zeros(n)
        A_m[layer % n] = 1.0
        self.A_m = nn.Parameter(A_m)
        self.A_r = nn.Parameter(torch.eye(n))
        self.B = nn.Parameter(torch.ones(n))
        self.W_m = nn.Parameter(torch.zeros(C))
        self.W_r = nn.Parameter(torch.zeros(C, n))
        self.W_b = nn.Parameter(torch.zeros(C))
        self.s_a = nn.Parameter(torch.tensor(0.01))
        self.s_b = nn.Parameter(torch.tensor(0.01))

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        h = self.norm(x)                                                  # (.., n, C)
        H_pre = self.s_a * torch.tanh(h @ self.W_m) + self.A_m            # (.., n)
        A_r = self.s_a * torch.tanh(h @ self.W_r) + self.A_r              # (.., n, n)
        H_post = self.s_b * torch.tanh(h @ self.W_b) + self.B             # (.., n)
        H_res = self._mapped(A_r.transpose(-1, -2))
        self._record(H_res)
        return _mix(self.ops, x, H_pre, H_post, H_res, block)

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return n * n + 2 * n + C * (n + 2) + 2


class _Manifold(Mixer):
    """mHC-style dynamic coefficients; subclasses define the ``H_res`` constraint.

    One projection ``phi`` of width ``2n + R`` from the RMS-normed flattened stream,
    gates ``a_pre, a_post, a_res`` and biases ``b_pre (n), b_post (n), b_res (R)``.
    """

    def __init__(self, n: int, C: int, R: int, b_res: torch.Tensor) -> None:
        super().__init__()
        self.n_streams = n
        self.norm = nn.RMSNorm(n * C, elementwise_affine=False)
        self.phi = nn.Parameter(0.02 * torch.randn(n * C, 2 * n + R))
        self.gates = nn.Parameter(torch.full((3,), 0.01))
        self.b_pre = nn.Parameter(torch.full((n,), math.log(1.0 / (n - 1)) if n > 1 else 10.0))
        self.b_post = nn.Parameter(torch.zeros(n))
        self.b_res = nn.Parameter(b_res)

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:  # overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        n = self.n_streams
        z = self.norm(x.flatten(-2)) @ self.phi                           # (.., 2n + R)
        H_pre = torch.sigmoid(self.gates[0] * z[..., :n] + self.b_pre)
        H_post = 2.0 * torch.sigmoid(self.gates[1] * z[..., n:2 * n] + self.b_post)
        H_res = self._mapped(self.h_res(self.gates[2] * z[..., 2 * n:] + self.b_res))
        self._record(H_res)
        return _mix(self.ops, x, H_pre, H_post, H_res, block)

    @staticmethod
    def _common(n: int, C: int, R: int) -> int:
        return n * C * (2 * n + R) + 3 + 2 * n + R


def _identity_logits(K: int) -> torch.Tensor:
    """Logits over ``K`` permutations (identity first) giving the identity weight 0.99."""
    b = torch.zeros(K)
    if K > 1:
        b[0] = math.log(IDENTITY_MASS / (1 - IDENTITY_MASS) * (K - 1))
    return b


class MHC(_Manifold):
    """DeepSeek mHC: ``H_res = SK_20(exp(H~_res))``."""

    def __init__(self, n: int, C: int) -> None:
        b = torch.zeros(n, n)
        if n > 1:
            b.fill_diagonal_(math.log(IDENTITY_MASS / (1 - IDENTITY_MASS) * (n - 1)))
        super().__init__(n, C, n * n, b.flatten())

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:
        n = self.n_streams
        return self.ops.sinkhorn(logits.unflatten(-1, (n, n)), SK_ITERS)

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return _Manifold._common(n, C, n * n)


class _PermutationMixture(_Manifold):
    """``H_res = sum_k softmax(logits)_k P_k`` over a fixed permutation set (identity first)."""

    def __init__(self, n: int, C: int, perms: np.ndarray) -> None:
        super().__init__(n, C, len(perms), _identity_logits(len(perms)))
        self.register_buffer("perms", torch.tensor(perms), persistent=False)          # (K, n)
        self.register_buffer("P", torch.tensor(permutation_matrices(perms), dtype=torch.float32),
                             persistent=False)                                        # (K, n, n)

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:
        return self.ops.combine(torch.softmax(logits, dim=-1), self.perms, self.P)


class MHCLite(_PermutationMixture):
    """mHC-lite: convex combination of all ``n!`` permutation matrices."""

    def __init__(self, n: int, C: int) -> None:
        super().__init__(n, C, all_permutations(n))

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return _Manifold._common(n, C, math.factorial(n))


class BEHC(_PermutationMixture):
    """BE-HC stream mixing: convex combination of the ``n`` cyclic shifts (identity = shift 0)."""

    def __init__(self, n: int, C: int) -> None:
        super().__init__(n, C, cyclic_permutations(n))

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return _Manifold._common(n, C, n)


class KromHC(_Manifold):
    """KromHC: ``H_res = U_1 (x) ... (x) U_K``, each factor a permutation mixture of its mode."""

    def __init__(self, n: int, C: int) -> None:
        self.sizes = kron_factor_sizes(n)
        counts = [math.factorial(m) for m in self.sizes]
        super().__init__(n, C, sum(counts), torch.cat([_identity_logits(k) for k in counts]))
        self.counts = counts
        for i, m in enumerate(self.sizes):
            perms = all_permutations(m)
            self.register_buffer(f"perms{i}", torch.tensor(perms), persistent=False)
            self.register_buffer(f"P{i}", torch.tensor(permutation_matrices(perms), dtype=torch.float32),
                                 persistent=False)

    def h_res(self, logits: torch.Tensor) -> torch.Tensor:
        return kron_torch([self.ops.combine(torch.softmax(chunk, -1), getattr(self, f"perms{i}"),
                                            getattr(self, f"P{i}"))
                           for i, chunk in enumerate(torch.split(logits, self.counts, dim=-1))])

    @staticmethod
    def closed_form(n: int, C: int) -> int:
        return _Manifold._common(n, C, sum(math.factorial(m) for m in kron_factor_sizes(n)))


MIXERS: dict[str, Callable[..., Mixer]] = {
    "residual": lambda n, C, layer: Residual(),
    "rezero": lambda n, C, layer: ReZero(),
    "hc": lambda n, C, layer: HC(n, C, layer),
    "mhc": lambda n, C, layer: MHC(n, C),
    "mhc_lite": lambda n, C, layer: MHCLite(n, C),
    "kromhc": lambda n, C, layer: KromHC(n, C),
    "behc": lambda n, C, layer: BEHC(n, C),
}
_CLASSES = {"residual": Residual, "rezero": ReZero, "hc": HC, "mhc": MHC,
            "mhc_lite": MHCLite, "kromhc": KromHC, "behc": BEHC}
SINGLE_STREAM = {"residual", "rezero"}


def make_mixer(name: str, n_streams: int, C: int, layer: int = 0, backend: str = "torch") -> Mixer:
    """The mixer ``name`` for ``n_streams`` streams of width ``C`` at depth index ``layer``;
    ``backend="triton"`` runs its Sinkhorn and stream mixing on the ``gpu`` kernels."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; choose from {sorted(MIXERS)}")
    mixer = MIXERS[name](1 if name in SINGLE_STREAM else n_streams, C, layer)
    mixer.ops = backend_ops(backend)
    return mixer


def mixing_params(name: str, n: int, C: int) -> int:
    """Mixing parameters per layer, closed form (tests check it against the modules).

    residual 0; rezero 1; hc ``n^2 + 2n + C(n+2) + 2``; and with
    ``common(R) = nC(2n + R) + 2n + R + 3``: mhc ``common(n^2)`` (``~n^3 C``), mhc_lite
    ``common(n!)`` (``~nC n!``), kromhc ``common(sum_k n_k!)`` (``2 log2(n)`` for powers of
    two: ``~2 n^2 C`` from pre/post), behc ``common(n)`` (``~3 n^2 C``).
    """
    if name not in _CLASSES:
        raise ValueError(f"unknown mixer {name!r}; choose from {sorted(MIXERS)}")
    return _CLASSES[name].closed_form(1 if name in SINGLE_STREAM else n, C)
