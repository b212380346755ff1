"""BE-HC token mixing: causal convex combinations of sequence shifts, ``O(K N d)``.

A **reconstruction**: the BE-HC abstract says tokens are mixed by convex combinations of
permutation matrices in ``O(K N d)``, and nothing more is public. We chose static,
per-channel softmax weights over causal shifts by powers of two (below), made exactly
doubly stochastic by left padding; they are not content-dependent, which is why they
cannot learn recall (docs/BEHC.md).

For a sequence ``x (B, N, d)`` and shifts ``s_0 = 0 < s_1 < ... < s_{K-1}`` the mixer is

    y[:, t, c] = sum_k w[k, c] x[:, t - s_k, c]        (x[:, t] = 0 for t < 0)

with ``w[:, c] = softmax(logits[:, c])`` per channel, so each channel mixes tokens by
``sum_k w_k P_k``. The default shifts are ``0, 1, 2, 4, ...`` (powers of two below
``max_len``): ``L`` stacked layers reach every offset whose binary expansion has at most
``L`` ones, so ``ceil(log2 N)`` layers reach every earlier token.

Why it is causal *and* exactly doubly stochastic: left-pad the sequence with
``S = s_{K-1}`` zero tokens. On the padded length ``N + S``, ``P_k`` is the cyclic shift
by ``s_k``, a permutation matrix, so ``A = sum_k w_k P_k`` is exactly DS (Birkhoff-von
Neumann, ``rho(A) = ||A||_2 = 1``). A real output position ``S + t`` reads
``S + t - s_k >= t >= 0``: never a wrapped entry, never a later token. Only the first
``S`` (padding) outputs wrap around, and they are dropped. The ``N x N`` block acting on
real tokens is lower-triangular Toeplitz; it is never formed: the mixer costs
``K`` shifted multiply-adds, ``O(K N d)`` time and ``O(N d)`` memory, against
attention's ``O(N^2 d)`` time.

:class:`TokenMixBlock` is the sublayer that takes attention's place:
``out(mix(v(h)) * sigmoid(g(h)))`` with ``h = RMSNorm(x)``. The gate is per token and
channel, outside the mixing matrix, which stays ``sum_k w_k P_k``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from birkhoff import quantize

from ._gpu import Backend, backend, power_of_two_shifts, token_mix
from .norms import NORMS, sublayer_norm
from .tap import Tap

__all__ = ["power_of_two_shifts", "token_mix", "quantize_shift_weights",
           "TokenMixBlock"]


def quantize_shift_weights(w: np.ndarray, scale: int = 127) -> np.ndarray:
    """Integers ``q (K, d)`` with ``sum_k q[k, c] = scale`` exactly and ``|q - scale w| < 1``.

    Per channel, ``birkhoff.quantize(..., closest=True)`` of the ``K x K`` circulant
    ``circ(w[:, c])`` (DS when ``sum w = 1``); its first row is the rounding. ``q / scale``
    gives an exactly DS token mixer.
    """
    w = np.asarray(w, dtype=np.float64)
    K, d = w.shape
    idx = (np.arange(K)[None, :] - np.arange(K)[:, None]) % K        # circ[i, j] = w[(j - i) mod K]
    return np.stack([quantize(w[idx, c], scale, tol=1e-6, closest=True)[0][0] for c in range(d)], axis=1)


class TokenMixBlock(nn.Module):
    """BE-HC token mixing sublayer: ``out(token_mix(v(h), softmax(logits)) * sigmoid(g(h)))``.

    Parameters
    ----------
    C : width.
    max_len : longest sequence; sets the shifts ``power_of_two_shifts(max_len)``.
    ops : the :class:`gpu.backend.Backend` whose ``token_mix`` runs the mixing (default torch).
    norm : the input normalisation, ``"pre"`` (RMSNorm) or ``"none"`` (:mod:`reference.norms`).

    ``forward(x, tap)`` hands the weights ``(K, C)`` to ``tap.token_weights`` (the INT8
    experiments round them there) and mixes with what it returns.
    """

    uses_tap = True        # HyperConnected hands it the forward's tap

    def __init__(self, C: int, max_len: int, ops: Backend | None = None, norm: str = NORMS[0]) -> None:
        super().__init__()
        self.shifts = power_of_two_shifts(max_len)
        self.norm = sublayer_norm(C, norm)
        self.v = nn.Linear(C, C)
        self.g = nn.Linear(C, C)
        self.out = nn.Linear(C, C)
        self.logits = nn.Parameter(torch.zeros(len(self.shifts), C))
        self.ops = ops or backend("torch")

    def weights(self) -> torch.Tensor:
        """``w (K, C)``: per channel a probability vector over the shifts."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: torch.Tensor, tap: Tap | None = None) -> torch.Tensor:
        h = self.norm(x)
        w = self.weights() if tap is None else tap.token_weights(self, self.weights())
        mixed = self.ops.token_mix(self.v(h), w.to(h.dtype), self.shifts)
        return self.out(mixed * torch.sigmoid(self.g(h)))
