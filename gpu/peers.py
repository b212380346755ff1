"""The peers' mHC GPU kernels, checked like ours: ``python -m gpu.check --peers``.

Two public implementations, run on the same inputs as ours (compiled on a GPU, under
``TRITON_INTERPRET=1`` on CPU, in fp32 there):

* **Liger-Kernel** 0.8.5 (``liger_kernel.transformers.functional``): ``liger_mhc_coeffs``
  (``x @ phi`` with the RMS scale, sigmoid / ``2 sigmoid``, then an eps-regularised Sinkhorn:
  a row softmax, then ``mat / (sum + eps)`` per half-sweep, ``eps = 1e-6``),
  ``liger_mhc_pre`` and ``liger_mhc_post_res``;
* **hyper-connections** 0.4.x: ``TritonSinkhornFunction`` of
  ``hyper_connections.triton_sinkhorn`` (log domain, columns then rows). Its public
  ``triton_sinkhorn`` runs the kernel only for CUDA tensors; on CPU it falls back to
  torch, so the check calls the kernel's autograd Function directly.

For each kernel: the max abs / rel error, forward and backward, against float64 autograd
of the *same algorithm* (the peer's arithmetic error), and, for the Sinkhorn outputs,
against exact mHC (``birkhoff.sinkhorn_logits`` in float64, eps = 0; the algorithm's own
bias), the rigorous DS residual of the returned ``H_res`` (``birkhoff.certify_batch``, the
worst one re-certified by ``birkhoff.certify``) and the certified composite forward /
backward gain of a ``CHAIN``-layer product of the returned ``H_res`` (the batch's matrices
in turn; ``birkhoff.certify_product``): the helpers of :mod:`gpu.conformance`, which runs the
same checks on anyone's kernel. A peer that is not installed gets one line saying so
(``pip install -e '.[peers]'``).
"""

from __future__ import annotations

import importlib.util
from typing import Iterator

import torch

from birkhoff import sinkhorn_logits

from . import eager, ops
from .conformance import CHAIN, ds_findings, errors as _err, forward_backward as _fwd_bwd

PEERS = {"liger": "liger_kernel", "hyper-connections": "hyper_connections"}


def available(peer: str) -> bool:
    return importlib.util.find_spec(PEERS[peer]) is not None


def liger_reference(x, phi, b, a_pre, a_post, a_res, *, tmax=20, rms_eps=1e-6, sinkhorn_eps=1e-6, post_mult=2.0):
    """Liger's coefficient algorithm in the input's precision (float64 for the check)."""
    n = x.shape[-2]
    flat = x.reshape(x.shape[0], -1)
    mix = (flat @ phi) * torch.rsqrt(flat.pow(2).mean(-1, keepdim=True) + rms_eps)
    pre = torch.sigmoid(mix[:, :n] * a_pre + b[:n])
    post = torch.sigmoid(mix[:, n:2 * n] * a_post + b[n:2 * n]) * post_mult
    mat = torch.softmax(mix[:, 2 * n:].reshape(-1, n, n) * a_res + b[2 * n:].reshape(n, n), dim=-1) + sinkhorn_eps
    mat = mat / (mat.sum(-2, keepdim=True) + sinkhorn_eps)
    for _ in range(tmax - 1):
        mat = mat / (mat.sum(-1, keepdim=True) + sinkhorn_eps)
        mat = mat / (mat.sum(-2, keepdim=True) + sinkhorn_eps)
    return pre, post, mat


def check_liger(device, quick: bool) -> Iterator[tuple]:
    """Rows ``(op, shape, max abs, max rel)`` and, last, ``("findings", ...)``."""
    from liger_kernel.transformers.functional import liger_mhc_coeffs, liger_mhc_post_res, liger_mhc_pre

    N, n, C = (16, 4, 32) if quick else (4096, 4, 1024)
    M = 2 * n + n * n
    x = torch.randn(N, n, C)
    phi, b = torch.randn(n * C, M) / (n * C) ** 0.5, torch.randn(M)     # x @ phi ~ N(0, 1) after the RMS scale
    alphas = [torch.tensor(1.0) for _ in range(3)]        # residual logits ~ N(0, 2): a non-trivial H_res
    shape = (N, n, C)

    def coeffs(x, phi, b, *al):
        return liger_mhc_coeffs(x, phi, b, *al, allow_fp32=True)

    for row in _fwd_bwd("liger_mhc_coeffs", coeffs, liger_reference, [x, phi, b, *alphas], device):
        yield (*row[:1], shape, *row[1:])
    with torch.no_grad():
        _, _, H = coeffs(x.to(device), phi.to(device), b.to(device), *(a.to(device) for a in alphas))
        xd, phid, bd = x.double(), phi.double(), b.double()
        flat = xd.reshape(N, -1)
        mix = (flat @ phid) * torch.rsqrt(flat.pow(2).mean(-1, keepdim=True) + 1e-6)
        logits = (mix[:, 2 * n:].reshape(-1, n, n) + bd[2 * n:].reshape(n, n)).numpy()
    exact = torch.from_numpy(sinkhorn_logits(logits, 20))
    yield ("liger H_res vs exact mHC (eps = 0)", (N, n, n), *_err(H, exact))
    h_pre, h_post = torch.rand(N, n), 2 * torch.rand(N, n)
    f_out = torch.randn(N, C)
    for row in _fwd_bwd("liger_mhc_pre", liger_mhc_pre, eager.hc_pre, [x, h_pre], device):
        yield (*row[:1], shape, *row[1:])
    for row in _fwd_bwd("liger_mhc_post_res", liger_mhc_post_res,
                        lambda x, f, hp, hr: eager.hc_post_res(x, f, hr, hp), [x, f_out, h_post, exact.float()], device):
        yield (*row[:1], shape, *row[1:])
    yield ("findings", ds_findings(H), ds_findings(ops.sinkhorn(torch.from_numpy(logits).float().to(device), 20)))


def check_hyper_connections(device, quick: bool) -> Iterator[tuple]:
    """Rows ``(op, shape, max abs, max rel)`` and, last, ``("findings", ...)``."""
    from hyper_connections.triton_sinkhorn import TritonSinkhornFunction

    N, n = (16, 4) if quick else (4096, 4)
    L = 2.0 * torch.randn(N, n, n)

    def reference(L):                     # columns then rows, in the log domain (their algorithm)
        for _ in range(20):
            L = torch.log_softmax(torch.log_softmax(L, dim=-2), dim=-1)
        return L.exp()

    for row in _fwd_bwd("hyper_connections triton_sinkhorn", lambda L: TritonSinkhornFunction.apply(L, 20),
                        reference, [L], device):
        yield (*row[:1], (N, n, n), *row[1:])
    with torch.no_grad():
        H = TritonSinkhornFunction.apply(L.to(device), 20)
    exact = torch.from_numpy(sinkhorn_logits(L.double().mT.numpy(), 20)).mT   # the same order, birkhoff
    yield ("hyper_connections H_res vs exact SK_20", (N, n, n), *_err(H, exact))
    yield ("findings", ds_findings(H), ds_findings(ops.sinkhorn(L.mT.contiguous().to(device), 20).mT))


CHECKS = {"liger": check_liger, "hyper-connections": check_hyper_connections}


def report(device, quick: bool) -> list[str]:
    """The ``--peers`` section of ``gpu.check``: markdown lines."""
    lines = ["| peer kernel | shape | max abs err | max rel err |", "|---|---|---:|---:|"]
    notes = []
    for peer, check in CHECKS.items():
        if not available(peer):
            notes.append(f"- {peer}: not installed (pip install -e '.[peers]')")
            continue
        for row in check(device, quick):
            if row[0] == "findings":
                theirs, ours = row[1], row[2]
                for who, f in ((peer, theirs), ("ours (gpu.ops.sinkhorn, same logits and order)", ours)):
                    notes.append(
                        f"- {who}: H_res row residual <= {f['row_residual']:.2e}, column residual <= "
                        f"{f['col_residual']:.2e} (smallest column sum {f['col_sum_min']:.8f}); "
                        f"{CHAIN}-layer product: gain fwd in [{f['gain_forward'][0]:.6g}, {f['gain_forward'][1]:.6g}], "
                        f"bwd in [{f['gain_backward'][0]:.6g}, {f['gain_backward'][1]:.6g}]")
                continue
            name, shape, abs_err, rel_err = row
            lines.append(f"| {name} | {tuple(shape)} | {abs_err:.2e} | {rel_err:.2e} |")
    return lines + [""] + notes
