"""Conformance checks for anyone's mHC kernels: the checks ``python -m gpu.check --peers`` runs on Liger-Kernel
and hyper-connections, as a public API.

    from gpu.conformance import check_sinkhorn
    report = check_sinkhorn(my_sinkhorn, order="cols_rows", device="cuda")   # my_sinkhorn(L) -> H_res
    print(report.markdown()); assert report.within(abs_err=1e-5)

* :func:`check_sinkhorn` - a kernel ``fn(L) -> H`` that maps logits ``L (B, n, n)`` to ``SK_t(exp(L))``;
* :func:`check_pre` - ``fn(x, H_pre) -> sum_j H_pre[j] x_j`` (``x (B, n, C)``, ``H_pre (B, n)``);
* :func:`check_post_res` - ``fn(x, f_out, H_res, H_post) -> H_res x + H_post^T f_out``.

Each runs the kernel forward and backward on random inputs (in ``dtype`` on ``device``) and reports the
max abs / rel error against float64 autograd of the same algorithm (its arithmetic error); the Sinkhorn
check adds the error against exact mHC (``birkhoff.sinkhorn_logits`` in float64: the algorithm's own
bias, e.g. an eps in the divisions) and rigorous facts about the returned matrices
(:func:`ds_findings`: certified DS residuals, the certified gains of a ``CHAIN``-layer product).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from birkhoff import certify, certify_batch, certify_product, sinkhorn_logits

from . import eager

__all__ = ["CHAIN", "Conformance", "check_sinkhorn", "check_pre", "check_post_res", "ds_findings",
           "errors", "forward_backward"]

CHAIN = 1000
ORDERS = ("cols_rows", "rows_cols")


@dataclass
class Conformance:
    """What a check found: ``rows`` of ``(op, shape, max abs err, max rel err)``; ``findings``: the certified
    facts of :func:`ds_findings` (Sinkhorn only)."""

    name: str
    rows: list[tuple[str, tuple, float, float]] = field(default_factory=list)
    findings: dict | None = None

    def within(self, abs_err: float, against: str = "") -> bool:
        """Every row whose op name contains ``against`` within ``abs_err``."""
        return all(row[2] <= abs_err for row in self.rows if against in row[0])

    def markdown(self) -> str:
        lines = ["| kernel | shape | max abs err | max rel err |", "|---|---|---:|---:|"]
        lines += [f"| {op} | {tuple(shape)} | {a:.2e} | {r:.2e} |" for op, shape, a, r in self.rows]
        if self.findings:
            f = self.findings
            lines += ["", f"- {self.name}: H_res row residual <= {f['row_residual']:.2e}, column residual <= "
                      f"{f['col_residual']:.2e}; {CHAIN}-layer product: gain fwd in [{f['gain_forward'][0]:.6g}, "
                      f"{f['gain_forward'][1]:.6g}], bwd in [{f['gain_backward'][0]:.6g}, {f['gain_backward'][1]:.6g}]"]
        return "\n".join(lines)


def errors(got: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Max abs and max rel (against ``max(|ref|, 1e-6)``) error of ``got``."""
    d = (got.detach().double().cpu() - ref.detach().double().cpu()).abs()
    return float(d.max()), float((d / ref.detach().double().cpu().abs().clamp_min(1e-6)).max())


def ds_findings(H: torch.Tensor) -> dict:
    """Rigorous facts about a batch of ``H_res``: worst DS residual (certify_batch, then certify on the worst
    matrix) and the certified gains of a ``CHAIN``-layer product of them (the batch in turn)."""
    M = H.detach().double().cpu().reshape(-1, H.shape[-1], H.shape[-1]).numpy()
    batch = certify_batch(M)
    worst = int(np.argmax(np.maximum(batch.row_residual, batch.col_residual)))
    one = certify(M[worst])
    chain = certify_product(M[np.arange(CHAIN) % len(M)])
    return {"row_residual": one.row_residual, "col_residual": one.col_residual,
            "col_sum_min": float(M.sum(-2).min()), "gain_forward": chain.gain_forward,
            "gain_backward": chain.gain_backward}


def forward_backward(name: str, fn: Callable, ref: Callable, inputs: list[torch.Tensor], device,
                     dtype: torch.dtype | None = None) -> Iterator[tuple[str, float, float]]:
    """Forward and backward errors of ``fn`` (inputs in ``dtype`` on ``device``) against float64 ``ref`` on the
    same values: ``(name fwd, abs, rel)``, ``(name bwd, abs, rel)``."""
    ours = [x.detach().clone().to(device=device, dtype=dtype or x.dtype).requires_grad_() for x in inputs]
    exact = [x.detach().double().requires_grad_() for x in inputs]
    out, expected = fn(*ours), ref(*exact)
    outs = out if isinstance(out, tuple) else (out,)
    exps = expected if isinstance(expected, tuple) else (expected,)
    yield (f"{name} fwd", *max((errors(o, e) for o, e in zip(outs, exps)), key=lambda e: e[0]))
    seeded = torch.Generator().manual_seed(0)                     # the same cotangents every run
    grads = [torch.randn(e.shape, generator=seeded, dtype=e.dtype) for e in exps]
    sum((o * g.to(o.device, o.dtype)).sum() for o, g in zip(outs, grads)).backward()
    sum((e * g).sum() for e, g in zip(exps, grads)).backward()
    yield (f"{name} bwd", *max((errors(a.grad, b.grad) for a, b in zip(ours, exact)), key=lambda e: e[0]))


def _sinkhorn_reference(order: str, iters: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``SK_iters(exp(L))`` in the log domain, columns then rows (mHC's eq. 9) or rows then columns."""
    first, second = (-2, -1) if order == "cols_rows" else (-1, -2)

    def reference(L: torch.Tensor) -> torch.Tensor:
        for _ in range(iters):
            L = torch.log_softmax(torch.log_softmax(L, dim=first), dim=second)
        return L.exp()
    return reference


def check_sinkhorn(fn: Callable[[torch.Tensor], torch.Tensor], *, n: int = 4, batch: int = 256, iters: int = 20,
                   order: str = "cols_rows", scale: float = 2.0, device="cpu", dtype: torch.dtype = torch.float32,
                   seed: int = 0, name: str = "sinkhorn") -> Conformance:
    """``fn(L) -> SK_iters(exp(L))`` on ``batch`` logit matrices ``scale N(0, 1)`` of size ``n``, ``order``
    ``"cols_rows"`` (mHC, eq. 9) or ``"rows_cols"`` (KromHC's and mHC-lite's code): forward and backward error
    against float64 autograd of the same sweeps, the forward error against exact mHC, and
    :func:`ds_findings` of the returned matrices."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    L = scale * torch.randn(batch, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    report = Conformance(name)
    shape = (batch, n, n)
    for op, a, r in forward_backward(name, fn, _sinkhorn_reference(order, iters), [L], device, dtype):
        report.rows.append((op, shape, a, r))
    with torch.no_grad():
        H = fn(L.to(device=device, dtype=dtype))
    Lx = L.numpy() if order == "rows_cols" else L.mT.numpy()           # birkhoff's sweeps: rows, then columns
    exact = torch.from_numpy(sinkhorn_logits(np.ascontiguousarray(Lx), iters))
    exact = exact if order == "rows_cols" else exact.mT
    report.rows.append((f"{name} vs exact SK_{iters} (float64)", shape, *errors(H, exact)))
    report.findings = ds_findings(H)
    return report


def check_pre(fn: Callable, *, n: int = 4, batch: int = 64, C: int = 32, device="cpu",
              dtype: torch.dtype = torch.float32, seed: int = 0, name: str = "hc_pre") -> Conformance:
    """``fn(x, H_pre) -> sum_j H_pre[..., j] x[..., j, :]`` (``x (B, n, C)``, ``H_pre (B, n)``), forward and backward."""
    g = torch.Generator().manual_seed(seed)
    x, h = torch.randn(batch, n, C, generator=g), torch.rand(batch, n, generator=g)
    report = Conformance(name)
    for op, a, r in forward_backward(name, fn, eager.hc_pre, [x, h], device, dtype):
        report.rows.append((op, (batch, n, C), a, r))
    return report


def check_post_res(fn: Callable, *, n: int = 4, batch: int = 64, C: int = 32, device="cpu",
                   dtype: torch.dtype = torch.float32, seed: int = 0, name: str = "hc_post_res") -> Conformance:
    """``fn(x, f_out, H_res, H_post) -> H_res x + H_post^T f_out`` (``H_res (B, n, n)`` doubly stochastic here),
    forward and backward."""
    g = torch.Generator().manual_seed(seed)
    x, f = torch.randn(batch, n, C, generator=g), torch.randn(batch, C, generator=g)
    H = torch.from_numpy(sinkhorn_logits(2 * torch.randn(batch, n, n, generator=g, dtype=torch.float64).numpy(), 20))
    h_post = 2 * torch.rand(batch, n, generator=g)
    report = Conformance(name)
    for op, a, r in forward_backward(name, fn, eager.hc_post_res, [x, f, H, h_post], device, dtype):
        report.rows.append((op, (batch, n, C), a, r))
    return report
