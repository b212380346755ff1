"""Every op in eager torch: the ``"torch"`` backend the mixers run on, and the twin each Triton kernel is
checked against. Any dtype (float64 included), autograd by torch.

Each function here has the name, signature and meaning of its Triton op in
:mod:`gpu.ops`; ``gpu.check`` compares the two on identical inputs and
``gpu.backend("torch")`` hands these to the mixers. No triton import.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

__all__ = ["sinkhorn", "hc_coeffs", "hc_pre", "hc_post_res", "bvn_combine", "kron", "kron_apply", "token_mix",
           "power_of_two_shifts", "screen_batch", "BatchStats"]


def sinkhorn(logits: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """``SK_t(exp(L))`` in the log domain, rows then columns, batched over ``(..., n, n)``.

    ``L <- L - lse_row(L); L <- L - lse_col(L)`` ``t`` times, then ``exp``: the columns of the
    result sum to 1 up to rounding, the rows to within the last sweep's change.
    """
    L = logits
    for _ in range(iters):
        L = L - torch.logsumexp(L, dim=-1, keepdim=True)
        L = L - torch.logsumexp(L, dim=-2, keepdim=True)
    return L.exp()


def hc_coeffs(x: torch.Tensor, phi: torch.Tensor, gates: torch.Tensor, bias: torch.Tensor,
              eps: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mHC's dynamic coefficients from the streams ``x (..., n, C)``: ``(H_pre, H_post, a_res)``.

    ``z = RMSNorm(vec x) @ phi`` (no affine; ``eps`` default ``finfo(x.dtype).eps``, as
    ``nn.RMSNorm``), ``phi (nC, 2n + R)``;
    ``H_pre = sigmoid(g_0 z[:n] + b[:n])``, ``H_post = 2 sigmoid(g_1 z[n:2n] + b[n:2n])``,
    ``a_res = g_2 z[2n:] + b[2n:]`` (the residual logits, ``(..., R)``).
    """
    n = x.shape[-2]
    z = F.rms_norm(x.flatten(-2), (x.shape[-2] * x.shape[-1],), eps=eps) @ phi
    H_pre = torch.sigmoid(gates[0] * z[..., :n] + bias[:n])
    H_post = 2.0 * torch.sigmoid(gates[1] * z[..., n:2 * n] + bias[n:2 * n])
    return H_pre, H_post, gates[2] * z[..., 2 * n:] + bias[2 * n:]


def hc_pre(x: torch.Tensor, H_pre: torch.Tensor) -> torch.Tensor:
    """``y = sum_j H_pre[..., j] x[..., j, :]``: the layer input, ``(..., C)``."""
    return torch.einsum("...n,...nc->...c", H_pre, x)


def hc_post_res(x: torch.Tensor, f_out: torch.Tensor, H_res: torch.Tensor, H_post: torch.Tensor) -> torch.Tensor:
    """``H_res x + H_post^T f_out`` per token: the next streams ``(..., n, C)``."""
    return torch.einsum("...ij,...jc->...ic", H_res, x) + H_post.unsqueeze(-1) * f_out.unsqueeze(-2)


def bvn_combine(weights: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[..., k] P_k`` with ``P_k[i, perms[k, i]] = 1``: ``(..., n, n)``."""
    onehot = F.one_hot(perms.to(device=weights.device, dtype=torch.int64), perms.shape[-1])
    return torch.einsum("...k,kij->...ij", weights, onehot.to(weights.dtype))


def kron(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batched ``U_1 (x) ... (x) U_K`` over ``(..., n_k, n_k)`` factors: ``(..., n, n)``."""
    H = factors[0]
    for U in factors[1:]:                       # (a, b) (x) (c, d) -> (a c, b d)
        a, b = H.shape[-2:]
        c, d = U.shape[-2:]
        H = H[..., :, None, :, None] * U[..., None, :, None, :]
        H = H.reshape(*H.shape[:-4], a * c, b * d)
    return H


def kron_apply(factors: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``(U_1 (x) ... (x) U_K) x`` along the stream axis of ``x (..., n, C)`` (here ``H`` is formed)."""
    return torch.einsum("...ij,...jc->...ic", kron(list(factors)), x)


def power_of_two_shifts(max_len: int) -> tuple[int, ...]:
    """``(0, 1, 2, 4, ..., 2^m)`` with ``2^m < max_len``: ``K = 1 + ceil(log2 max_len)`` shifts."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    shifts = [0]
    while (s := 1 << (len(shifts) - 1)) < max_len:
        shifts.append(s)
    return tuple(shifts)


def token_mix(x: torch.Tensor, w: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """``y[:, t] = sum_k w[k] * x[:, t - s_k]`` (zero before the start), ``x (B, N, d)``, ``w (K, d)``.

    Autograd keeps only views of ``x``: ``O(N d)`` memory.
    """
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, N, d), got {tuple(x.shape)}")
    if w.shape != (len(shifts), x.shape[-1]):
        raise ValueError(f"w must have shape (K, d) = ({len(shifts)}, {x.shape[-1]}), got {tuple(w.shape)}")
    if any(s < 0 for s in shifts):
        raise ValueError(f"shifts must be >= 0 (causal), got {tuple(shifts)}")
    N = x.shape[1]
    y = torch.zeros_like(x)
    for k, s in enumerate(shifts):
        if s < N:  # the product saves a view of x; the padded copy is transient
            y = y + F.pad(w[k] * x[:, :N - s], (0, 0, s, 0))
    return y


class BatchStats(NamedTuple):
    """Float statistics per matrix (batch shape ``B``); see :func:`screen_batch`."""

    row_residual: torch.Tensor
    col_residual: torch.Tensor
    min_entry: torch.Tensor
    gain_forward: torch.Tensor
    gain_backward: torch.Tensor
    finite: torch.Tensor


def screen_batch(M: torch.Tensor) -> BatchStats:
    """``max |M 1 - 1|``, ``max |M^T 1 - 1|``, ``min M``, ``||M||_inf``, ``||M||_1``, finiteness per matrix."""
    A = M.abs()
    return BatchStats((M.sum(-1) - 1).abs().amax(-1), (M.sum(-2) - 1).abs().amax(-1), M.amin((-2, -1)),
                      A.sum(-1).amax(-1), A.sum(-2).amax(-1), torch.isfinite(M).all(-1).all(-1))
