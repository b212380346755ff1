"""Public GPU API: ``torch.autograd.Function`` wrappers around the Triton kernels.

Every op accepts fp32 or bf16 (and fp64 for gradient checks) and accumulates in fp32.
Tensors must be on one device where Triton runs (CUDA, or CPU under
``TRITON_INTERPRET=1``). Every entry checks types, dtypes, shapes and devices first and
raises ``TypeError`` / ``ValueError`` with the offending argument named. The torch twin
of each op, same name and signature, is in :mod:`gpu.eager`.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

import triton
import triton.language as tl

from birkhoff.validate import MAX_ITER, count, real

from .backend import STREAM_LIMITS
from .kernels import bvn_combine as _bvn
from .kernels import hc_coeffs as _coef
from .kernels import hc_mixing as _hc
from .kernels import kron_apply as _kron
from .kernels import screen_batch as _screen
from .kernels import sinkhorn as _sk
from .kernels import token_mix as _tm
from .eager import BatchStats

__all__ = ["MAX_STREAMS", "sinkhorn", "hc_coeffs", "hc_pre", "hc_post_res", "kron_apply", "bvn_combine",
           "screen_batch", "certify_batch", "BatchStats", "token_mix"]


FLOATS = (torch.float32, torch.bfloat16, torch.float64)
MAX_STREAMS = STREAM_LIMITS["triton"]


def _inputs(**named: torch.Tensor) -> torch.device:
    """Check that every named input is a float tensor and that all share one device Triton runs on."""
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in FLOATS:
            raise TypeError(f"{name} must be float32, bfloat16 or float64, got {t.dtype}")
        if t.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor, got layout {t.layout}")
    devices = {t.device for t in named.values()}
    if len(devices) > 1:
        raise ValueError("inputs are on different devices: "
                         + ", ".join(f"{k} on {t.device}" for k, t in named.items()))
    device = devices.pop()
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("gpu.ops on CPU tensors runs under Triton's interpreter: set TRITON_INTERPRET=1 "
                           "before triton is imported, or use CUDA tensors")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"gpu.ops runs on CUDA (or CPU under the interpreter), got device {device}")
    return device


def _shape(name: str, t: torch.Tensor, expected: tuple[int, ...], what: str) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {what} = {tuple(expected)}, got {tuple(t.shape)}")


def _grid(batch: int, per_program: int) -> tuple[int]:
    return (max(1, -(-batch // per_program)),)


class _Sinkhorn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, iters: int) -> torch.Tensor:
        n = logits.shape[-1]
        L = logits.reshape(-1, n, n).contiguous()
        P = torch.empty_like(L)
        bb, bn, warps = _sk.block_sizes(n)
        _sk.sinkhorn_fwd_kernel[_grid(L.shape[0], bb)](L, P, L.shape[0], n, iters, BLOCK_B=bb, BLOCK_N=bn,
                                                        FP64=L.dtype == torch.float64, num_warps=warps)
        ctx.save_for_backward(L)
        ctx.iters = iters
        return P.view(logits.shape)

    @staticmethod
    def backward(ctx, dP: torch.Tensor):
        (L,) = ctx.saved_tensors
        n = L.shape[-1]
        dPc = dP.reshape(-1, n, n).contiguous()
        dL = torch.empty_like(L)
        bb, bn, warps = _sk.block_sizes(n)
        acc = torch.float64 if L.dtype == torch.float64 else torch.float32
        scratch = torch.empty(L.shape[0], 2 * ctx.iters, bn, dtype=acc, device=L.device)
        _sk.sinkhorn_bwd_kernel[_grid(L.shape[0], bb)](L, dPc, dL, scratch, L.shape[0], n, ctx.iters,
                                                        BLOCK_B=bb, BLOCK_N=bn, FP64=L.dtype == torch.float64,
                                                        num_warps=warps)
        return dL.view(dP.shape), None


def sinkhorn(logits: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """``SK_t(exp(logits))`` over ``(..., n, n)``, ``n <= 16``; Triton forward and backward."""
    _inputs(logits=logits)
    if logits.ndim < 2 or logits.shape[-1] != logits.shape[-2] or not 1 <= logits.shape[-1] <= MAX_STREAMS:
        raise ValueError(f"logits must have shape (..., n, n) with 1 <= n <= {MAX_STREAMS}, "
                         f"got {tuple(logits.shape)}")
    return _Sinkhorn.apply(logits, count(iters, "iters", high=MAX_ITER))


def _acc(t: torch.Tensor):
    return tl.float64 if t.dtype == torch.float64 else tl.float32


class _HcCoeffs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, phi: torch.Tensor, gates: torch.Tensor, bias: torch.Tensor, eps: float):
        n, C = x.shape[-2:]
        K, M = phi.shape
        xf = x.reshape(-1, K).contiguous()
        T = xf.shape[0]
        out_dtype = torch.float64 if torch.float64 in (x.dtype, phi.dtype) else torch.float32
        out = torch.empty(T, M, dtype=out_dtype, device=x.device)
        z, r = torch.empty_like(out), torch.empty(T, dtype=out_dtype, device=x.device)
        bt, bk, mp = _coef.block_sizes(K, M)
        _coef.hc_coeffs_fwd_kernel[_grid(T, bt)](
            xf, phi.contiguous(), gates.contiguous(), bias.contiguous(), out, z, r, T, K,
            eps, N=n, M=M, MP=mp, BLOCK_T=bt, BLOCK_K=bk, ACC=_acc(out))
        ctx.save_for_backward(xf, phi, gates, out, z, r)
        ctx.x_shape, ctx.n = x.shape, n
        lead = x.shape[:-2]
        return out[:, :n].view(*lead, n), out[:, n:2 * n].view(*lead, n), out[:, 2 * n:].view(*lead, M - 2 * n)

    @staticmethod
    def backward(ctx, d_pre, d_post, d_res):
        xf, phi, gates, out, z, r = ctx.saved_tensors
        n, (T, K), M = ctx.n, xf.shape, phi.shape[1]
        grads = [torch.zeros(T, w, dtype=out.dtype, device=out.device) if g is None else g.reshape(T, w).to(out.dtype)
                 for g, w in ((d_pre, n), (d_post, n), (d_res, M - 2 * n))]
        H = out
        slope = torch.cat([H[:, :n] * (1 - H[:, :n]), H[:, n:2 * n] * (1 - 0.5 * H[:, n:2 * n]),
                           torch.ones_like(H[:, 2 * n:])], dim=1)
        da = torch.cat(grads, dim=1) * slope                                  # dL/da, (T, M)
        group = torch.cat([torch.zeros(n), torch.ones(n), torch.full((M - 2 * n,), 2.0)]).long().to(out.device)
        dz = da * gates.to(out.dtype)[group]
        dgates = torch.zeros(3, dtype=out.dtype, device=out.device).index_add_(0, group, (da * z).sum(0))
        dm = (dz * r[:, None]).contiguous()
        c = (-(dz * z).sum(1) * r * r / K).contiguous()
        dx = torch.empty_like(xf)
        dphi = torch.zeros(K, M, dtype=out.dtype, device=out.device)
        bt, bk, mp = _coef.block_sizes(K, M)
        _coef.hc_coeffs_bwd_kernel[_grid(T, bt)](xf, phi.contiguous(), dm, c, dx, dphi, T, K, M=M, MP=mp,
                                                  BLOCK_T=bt, BLOCK_K=bk, ACC=_acc(out))
        return dx.view(ctx.x_shape), dphi.to(phi.dtype), dgates.to(gates.dtype), da.sum(0).to(phi.dtype), None


def hc_coeffs(x: torch.Tensor, phi: torch.Tensor, gates: torch.Tensor, bias: torch.Tensor,
              eps: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mHC's dynamic coefficients ``(H_pre, H_post, a_res)`` from ``x (..., n, C)``, fused (one
    launch forward, one backward; :mod:`gpu.kernels.hc_coeffs`). Twin: :func:`gpu.eager.hc_coeffs`."""
    _inputs(x=x, phi=phi, gates=gates, bias=bias)
    if x.ndim < 2 or not 1 <= x.shape[-2] <= MAX_STREAMS:
        raise ValueError(f"x must have shape (..., n, C) with 1 <= n <= {MAX_STREAMS}, got {tuple(x.shape)}")
    n, C = x.shape[-2:]
    if phi.ndim != 2 or phi.shape[0] != n * C or phi.shape[1] < 2 * n:
        raise ValueError(f"phi must have shape (n C, 2n + R) = ({n * C}, >= {2 * n}), got {tuple(phi.shape)}")
    _shape("gates", gates, (3,), "(3,)")
    _shape("bias", bias, (phi.shape[1],), "(2n + R,)")
    eps = float(torch.finfo(x.dtype).eps) if eps is None else real(eps, "eps", positive=True)
    return _HcCoeffs.apply(x, phi, gates, bias, eps)


def _streams(x: torch.Tensor) -> tuple[int, int, int]:
    """``(tokens, n, C)`` of ``x (..., n, C)``."""
    if x.ndim < 2 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape (..., n, C) with C >= 1, got {tuple(x.shape)}")
    n, C = x.shape[-2:]
    if not 1 <= n <= MAX_STREAMS:
        raise ValueError(f"hc ops handle 1 <= n <= {MAX_STREAMS} streams, got n = {n}")
    return x.numel() // (n * C), n, C


class _HCPre(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, H_pre: torch.Tensor) -> torch.Tensor:
        M, n, C = _streams(x)
        xc, hc = x.reshape(M, n, C).contiguous(), H_pre.reshape(M, n).contiguous()
        y = torch.empty(M, C, dtype=x.dtype, device=x.device)
        bm, bc = _hc.blocks(C)
        _hc.hc_pre_fwd_kernel[(triton.cdiv(M, bm), triton.cdiv(C, bc))](
            xc, hc, y, M, C, N=n, BLOCK_M=bm, BLOCK_C=bc, ACC=_acc(xc))
        ctx.save_for_backward(xc, hc)
        ctx.shapes = (x.shape, H_pre.shape)
        return y.view(*x.shape[:-2], C)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        xc, hc = ctx.saved_tensors
        M, n, C = xc.shape
        dx, dh = torch.empty_like(xc), torch.empty_like(hc)
        bm, bc = _hc.blocks(C)
        _hc.hc_pre_bwd_kernel[(triton.cdiv(M, bm),)](
            xc, hc, dy.reshape(M, C).contiguous(), dx, dh, M, C, N=n,
            NP=triton.next_power_of_2(n), BLOCK_M=bm, BLOCK_C=bc, ACC=_acc(xc))
        return dx.view(ctx.shapes[0]), dh.view(ctx.shapes[1])


class _HCPostRes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f_out, H_res, H_post):
        M, n, C = _streams(x)
        args = (x.reshape(M, n, C).contiguous(), f_out.reshape(M, C).contiguous(),
                H_res.reshape(M, n, n).contiguous(), H_post.reshape(M, n).contiguous())
        out = torch.empty_like(args[0])
        bm, bc = _hc.blocks(C)
        _hc.hc_post_res_fwd_kernel[(triton.cdiv(M, bm), triton.cdiv(C, bc))](
            *args, out, M, C, N=n, BLOCK_M=bm, BLOCK_C=bc, ACC=_acc(args[0]))
        ctx.save_for_backward(*args)
        ctx.shapes = (x.shape, f_out.shape, H_res.shape, H_post.shape)
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, dout):
        x, f, hr, hp = ctx.saved_tensors
        M, n, C = x.shape
        grads = [torch.empty_like(t) for t in (x, f, hr, hp)]
        bm, bc = _hc.blocks(C, n)
        _hc.hc_post_res_bwd_kernel[(triton.cdiv(M, bm),)](
            x, f, hr, hp, dout.reshape(M, n, C).contiguous(), *grads, M, C, N=n,
            NP=triton.next_power_of_2(n), BLOCK_M=bm, BLOCK_C=bc, ACC=_acc(x))
        return tuple(g.view(s) for g, s in zip(grads, ctx.shapes))


def hc_pre(x: torch.Tensor, H_pre: torch.Tensor) -> torch.Tensor:
    """``sum_n H_pre[..., n] x[..., n, :]``: the layer input of an HC layer, ``(..., C)``."""
    _inputs(x=x, H_pre=H_pre)
    _streams(x)
    _shape("H_pre", H_pre, x.shape[:-1], "x.shape[:-1]")
    return _HCPre.apply(x, H_pre)


def hc_post_res(x: torch.Tensor, f_out: torch.Tensor, H_res: torch.Tensor,
                H_post: torch.Tensor) -> torch.Tensor:
    """``H_res x + H_post^T f_out`` per token: the next residual streams ``(..., n, C)``."""
    _inputs(x=x, f_out=f_out, H_res=H_res, H_post=H_post)
    _, n, C = _streams(x)
    lead = tuple(x.shape[:-2])
    _shape("f_out", f_out, (*lead, C), "(..., C)")
    _shape("H_res", H_res, (*lead, n, n), "(..., n, n)")
    _shape("H_post", H_post, (*lead, n), "(..., n)")
    return _HCPostRes.apply(x, f_out, H_res, H_post)


class _BvnCombine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
        K, n = perms.shape
        w = weights.reshape(-1, K).contiguous()
        # a copy, never the caller's tensor: the backward must use the permutations that were checked
        p = perms.to(device=weights.device, dtype=torch.int32, copy=True).contiguous()
        M = w.shape[0]
        H = torch.empty(M, n, n, dtype=weights.dtype, device=weights.device)
        bm = _bvn.block_m(n)
        _bvn.bvn_combine_fwd_kernel[(triton.cdiv(M, bm),)](
            w, p, H, M, K, n, NP=triton.next_power_of_2(n), BLOCK_M=bm, ACC=_acc(w))
        ctx.save_for_backward(p)
        ctx.shape = weights.shape
        return H.view(*weights.shape[:-1], n, n)

    @staticmethod
    def backward(ctx, dH: torch.Tensor):
        (p,) = ctx.saved_tensors
        K, n = p.shape
        dHc = dH.reshape(-1, n, n).contiguous()
        M = dHc.shape[0]
        dw = torch.empty(M, K, dtype=dH.dtype, device=dH.device)
        bm = _bvn.block_m(n)
        _bvn.bvn_combine_bwd_kernel[(triton.cdiv(M, bm),)](
            dHc, p, dw, M, K, n, NP=triton.next_power_of_2(n), BLOCK_M=bm, ACC=_acc(dHc))
        return dw.view(ctx.shape), None


def bvn_combine(weights: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``H_res = sum_k weights[..., k] P_k`` (``P_k[i, perms[k, i]] = 1``): ``(..., n, n)``.

    ``perms (K, n)``, ``K >= 1``, integer rows, each a permutation of ``0..n-1``, checked on
    every call (an out-of-range index would read or write outside ``H``; a repeated one
    gives a matrix that is not DS). The check reads ``perms`` on the host: free for CPU
    tensors, one small device-to-host copy for CUDA ones.
    """
    _inputs(weights=weights)
    if not isinstance(perms, torch.Tensor) or perms.dtype.is_floating_point or perms.is_complex() \
            or perms.dtype == torch.bool:
        raise TypeError(f"perms must be an integer torch.Tensor, got {getattr(perms, 'dtype', type(perms).__name__)}")
    if perms.ndim != 2 or weights.ndim < 1 or weights.shape[-1] != perms.shape[0]:
        raise ValueError(f"weights (..., K) and perms (K, n) do not match: {tuple(weights.shape)}, "
                         f"{tuple(perms.shape)}")
    if not 1 <= perms.shape[1] <= MAX_STREAMS or perms.shape[0] < 1:
        raise ValueError(f"bvn_combine needs perms (K, n) with K >= 1 and 1 <= n <= {MAX_STREAMS}, "
                         f"got {tuple(perms.shape)}")
    _check_perms(perms)
    return _BvnCombine.apply(weights, perms)


def _check_perms(perms: torch.Tensor) -> None:
    """Every row of ``perms`` is a permutation of ``0..n-1`` (read now: no cache that an edit through a
    shared numpy array or ``.data`` could get past)."""
    p = perms.detach().cpu().numpy()
    wrong = (np.sort(p, axis=1) != np.arange(p.shape[1])).any(axis=1)
    if wrong.any():
        bad = int(np.flatnonzero(wrong)[0])
        raise ValueError(f"perms[{bad}] = {p[bad].tolist()} is not a permutation of 0..{p.shape[1] - 1}")


@lru_cache(maxsize=None)
def _kron_tables(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``T (K, N, N)``: packed offset of ``U_k[i_k, j_k]`` for ``H[i, j]``; ``O (K + 1)``: factor offsets."""
    offsets = np.concatenate([[0], np.cumsum([m * m for m in sizes])]).astype(np.int32)
    digits = np.array(np.unravel_index(np.arange(math.prod(sizes)), sizes))       # (K, N)
    T = offsets[:-1, None, None] + digits[:, :, None] * np.array(sizes)[:, None, None] + digits[:, None, :]
    return T.astype(np.int32), offsets


@lru_cache(maxsize=None)
def _kron_tables_on(sizes: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_kron_tables` on ``device``, copied there once."""
    return tuple(torch.from_numpy(a).to(device) for a in _kron_tables(sizes))


class _KronApply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, *factors: torch.Tensor) -> torch.Tensor:
        M, n, C = _streams(x)
        sizes = tuple(U.shape[-1] for U in factors)
        lead = x.shape[:-2]
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        F = torch.cat([U.to(acc).expand(*lead, m, m).reshape(M, m * m) for U, m in zip(factors, sizes)],
                      dim=1).contiguous()
        T, O = _kron_tables_on(sizes, x.device)
        xc = x.reshape(M, n, C).contiguous()
        y = torch.empty_like(xc)
        bm, bc = _hc.blocks(C)
        _kron.kron_apply_fwd_kernel[(triton.cdiv(M, bm), triton.cdiv(C, bc))](
            xc, F, T, y, M, C, F.shape[1], N=n, K=len(sizes), BLOCK_M=bm, BLOCK_C=bc, ACC=_acc(xc))
        ctx.save_for_backward(xc, F, T, O)
        ctx.sizes = sizes
        ctx.factor_shapes = [(U.shape, U.dtype) for U in factors]
        ctx.x_shape = x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        xc, F, T, O = ctx.saved_tensors
        M, n, C = xc.shape
        dx, dF = torch.empty_like(xc), torch.empty_like(F)
        bm, bc = _hc.blocks(C, n)
        K = T.shape[0]
        _kron.kron_apply_bwd_kernel[(triton.cdiv(M, bm),)](
            xc, F, T, O, dy.reshape(M, n, C).contiguous(), dx, dF, M, C, F.shape[1], N=n, K=K,
            NP=triton.next_power_of_2(n), BLOCK_M=bm, BLOCK_C=bc, ACC=_acc(xc))
        grads = []
        offsets = _kron_tables(ctx.sizes)[1]                                # host copy: no sync
        for k, (shape, dtype) in enumerate(ctx.factor_shapes):
            m = shape[-1]
            g = dF[:, offsets[k]:offsets[k + 1]].reshape(*ctx.x_shape[:-2], m, m)
            g = g.sum_to_size(shape) if g.shape != shape else g            # shared factors
            grads.append(g.to(dtype))
        return (dx.view(ctx.x_shape), *grads)


def kron_apply(factors: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``(U_1 (x) ... (x) U_K) x`` along the stream axis of ``x (..., n, C)``, ``H`` never formed.

    Each factor is ``(n_k, n_k)`` (shared) or ``(..., n_k, n_k)`` with the token dimensions
    of ``x``; ``prod n_k = n <= 16``, at most 4 factors. Differentiable in ``x`` and factors.
    """
    factors = list(factors)
    _inputs(x=x, **{f"factors[{k}]": U for k, U in enumerate(factors)})
    if not 1 <= len(factors) <= _kron.MAX_FACTORS:
        raise ValueError(f"kron_apply takes 1 to {_kron.MAX_FACTORS} factors, got {len(factors)}")
    lead = x.shape[:-2]
    for k, U in enumerate(factors):
        if U.ndim < 2 or U.shape[-1] != U.shape[-2] or U.shape[:-2] not in ((), lead):
            raise ValueError(f"factor {k} has shape {tuple(U.shape)}; expected (m, m) or "
                             f"{(*lead, 'm', 'm')} for x of shape {tuple(x.shape)}")
    n = math.prod(U.shape[-1] for U in factors)
    if x.ndim < 2 or x.shape[-2] != n:
        raise ValueError(f"x must have shape (..., {n}, C) for factors of sizes "
                         f"{[U.shape[-1] for U in factors]}, got {tuple(x.shape)}")
    return _KronApply.apply(x, *factors)


def screen_batch(M: torch.Tensor) -> BatchStats:
    """Per-matrix ``max |M 1 - 1|``, ``max |M^T 1 - 1|``, ``min M``, ``||M||_inf``, ``||M||_1``, finiteness.

    ``M (..., n, n)``, ``n <= 64``, any float dtype; fp32 sums (fp64 for fp64). Float
    screening for millions of matrices, not a certificate: values carry rounding error
    ~``n u max|M|``, and are meaningless where ``finite`` is False. Rigorous bounds:
    ``birkhoff.certify_batch``.
    """
    _inputs(M=M)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"M must have shape (..., n, n), got {tuple(M.shape)}")
    n = M.shape[-1]
    Mc = M.reshape(-1, n, n).contiguous()
    acc = torch.float64 if M.dtype == torch.float64 else torch.float32
    out = torch.empty(Mc.shape[0], len(_screen.FIELDS), dtype=acc, device=M.device)
    bb, bn = _screen.block_sizes(n)
    if Mc.shape[0]:
        _screen.screen_batch_kernel[_grid(Mc.shape[0], bb)](Mc, out, Mc.shape[0], n, BLOCK_B=bb,
                                                             BLOCK_N=bn, ACC=_acc(Mc))
    cols = out.unbind(-1)
    batch = M.shape[:-2]
    return BatchStats(*(c.reshape(batch) for c in cols[:-1]), cols[-1].reshape(batch) > 0.5)


certify_batch = screen_batch       # the design's name for this op (a float screen: birkhoff.certify_batch certifies)


@lru_cache(maxsize=None)
def _shifts_on(shifts: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(shifts, dtype=torch.int32, device=device)


class _TokenMix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
        B, N, D = x.shape
        xc, wc = x.contiguous(), w.contiguous()
        s = _shifts_on(shifts, x.device)
        y = torch.empty_like(xc)
        bt, bc = _tm.blocks(D)
        _tm.shift_mix_kernel[(B * triton.cdiv(N, bt), triton.cdiv(D, bc))](
            xc, wc, s, y, N, D, len(shifts), REVERSE=False, BLOCK_T=bt, BLOCK_C=bc, ACC=_acc(xc))
        ctx.save_for_backward(xc, wc, s)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, w, s = ctx.saved_tensors
        B, N, D = x.shape
        K = s.shape[0]
        dyc = dy.contiguous()
        bt, bc = _tm.blocks(D)
        dx = torch.empty_like(x)
        _tm.shift_mix_kernel[(B * triton.cdiv(N, bt), triton.cdiv(D, bc))](
            dyc, w, s, dx, N, D, K, REVERSE=True, BLOCK_T=bt, BLOCK_C=bc, ACC=_acc(x))
        chunk = bt * max(1, triton.cdiv(N, bt * 64))                     # <= 64 partials per sequence
        programs = B * triton.cdiv(N, chunk)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        part = torch.empty(programs, K, D, dtype=acc, device=x.device)
        _tm.shift_mix_dw_kernel[(programs, triton.cdiv(D, bc))](
            x, dyc, s, part, N, D, K, chunk, KP=triton.next_power_of_2(K), BLOCK_T=bt, BLOCK_C=bc,
            ACC=_acc(x))
        return dx, part.sum(0).to(w.dtype), None


def token_mix(x: torch.Tensor, w: torch.Tensor, shifts) -> torch.Tensor:
    """BE-HC token mixing ``y[:, t] = sum_k w[k] x[:, t - s_k]`` (zero before the start).

    ``x (B, N, d)``, ``w (K, d)`` (same dtype), ``shifts`` K integers ``>= 0``; Triton
    forward and backward, the ``N x N`` matrix never formed. Torch reference:
    ``gpu.eager.token_mix``.
    """
    _inputs(x=x, w=w)
    shifts = tuple(count(v, "shifts", high=2 ** 31 - 1) for v in shifts)     # the kernel's int32
    if x.ndim != 3 or w.shape != (len(shifts), x.shape[-1]):
        raise ValueError(f"x (B, N, d) and w (K, d) with K = {len(shifts)} shifts do not match: "
                         f"{tuple(x.shape)}, {tuple(w.shape)}")
    if not shifts or min(shifts) < 0:
        raise ValueError(f"shifts must be a non-empty tuple of integers >= 0, got {shifts}")
    return _TokenMix.apply(x, w.to(x.dtype), shifts)
