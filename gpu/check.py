"""``python -m gpu.check [--quick]``: every kernel, forward and backward, against the reference.

References are float64 and take exactly the inputs the kernel gets (bf16 inputs are
upcast exactly), so the error is the kernel's own arithmetic: ``birkhoff.sinkhorn_logits``
for the Sinkhorn forward and ``birkhoff.certify_batch`` for the statistics, torch
autograd through the kernel's twin in :mod:`gpu.eager` otherwise.
Tolerance: ``u (1 + max|ref|)`` with, for bf16 outputs, ``u = 2^-8`` (half-ulp rounding,
doubled) on a GPU and ``u = 2^-7`` under the interpreter (which truncates), and
``u = 2^-17`` for fp32 (accumulation over up to ~100 terms). Each gradient is checked on
its own graph, so autograd's own bf16 accumulation never enters the error. One row per
(kernel, dtype, shape): max abs error, max rel error, tolerance, PASS/FAIL; exit 1 on
any FAIL. Without CUDA the kernels run under ``TRITON_INTERPRET=1`` (set here), where
``--quick`` keeps the shapes small. ``--peers`` checks the peers' kernels instead
(:mod:`gpu.peers`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from birkhoff import (all_permutations, certify_batch, cyclic_permutations,  # noqa: E402
                      kron_factor_sizes, sinkhorn_logits)

from . import eager, ops  # noqa: E402

# Triton's interpreter converts fp32 -> bf16 by truncation (checked: 1 + 3 2^-8 -> 1 + 2^-7;
# it ignores fp_downcast_rounding), i.e. up to one ulp = 2^-7 relative; compiled Triton
# rounds to nearest even (half an ulp; we allow 2^-8).
BF16_UNIT = 2.0 ** -7 if os.environ.get("TRITON_INTERPRET") == "1" else 2.0 ** -8
UNIT = {torch.float32: 2.0 ** -17, torch.bfloat16: BF16_UNIT}


def _errors(got: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    """(max abs error, max rel error, max |ref|)."""
    r = ref.detach().double()
    d = (got.detach().double() - r).abs()
    return float(d.max()), float((d / r.abs().clamp_min(1e-6)).max()), float(r.abs().max())


def _cases(quick: bool):
    """Stream counts, batch shapes and widths; ``quick`` (the interpreter) keeps mHC's 4 streams and one
    batch with a ragged tail (kron_apply: 8 streams, three factors): the tests in ``tests/gpu/`` cover the
    other shapes."""
    ns = (4,) if quick else (2, 4, 8, 16)
    batches = ((7,),) if quick else ((1,), (7,), (3, 129), (1031,))
    Cs = (5, 64) if quick else (5, 64, 1000)
    return ns, batches, Cs


def check_sinkhorn(device, dtype, quick):
    ns, batches, _ = _cases(quick)
    iters = 4 if quick else 20
    for n in ns:
        for batch in batches:
            L = (2 * torch.randn(*batch, n, n)).to(dtype).to(device).requires_grad_()
            ref_in = L.detach().double().cpu().requires_grad_()       # the very same values
            P = ops.sinkhorn(L, iters)
            ref = torch.from_numpy(sinkhorn_logits(ref_in.detach().numpy(), iters))
            yield "sinkhorn fwd", dtype, (*batch, n, n), *_errors(P.cpu(), ref)
            g = torch.randn(*batch, n, n).to(dtype).double()
            (P * g.to(device, dtype)).sum().backward()
            (eager.sinkhorn(ref_in, iters) * g).sum().backward()
            yield "sinkhorn bwd", dtype, (*batch, n, n), *_errors(L.grad.cpu(), ref_in.grad)


def _leaves(shapes, dtype, device, positive_from: int):
    """Random inputs rounded to ``dtype``: (ours on ``device``, the same values in float64)."""
    vals = [torch.randn(sh).to(dtype) for sh in shapes]
    vals = [v.abs() if i >= positive_from else v for i, v in enumerate(vals)]
    return ([v.detach().clone().to(device).requires_grad_() for v in vals],
            [v.detach().double().requires_grad_() for v in vals])


def _fwd_bwd(name, fn, ref_fn, shapes, dtype, device, shape, positive_from):
    """Forward and backward rows for one op; each gradient is one kernel output."""
    ours, ref = _leaves(shapes, dtype, device, positive_from)
    out, expected = fn(*ours), ref_fn(*ref)
    yield f"{name} fwd", dtype, shape, *_errors(out.cpu(), expected)
    g = torch.randn_like(expected).to(dtype).double()
    (out * g.to(device, dtype)).sum().backward()
    (expected * g).sum().backward()
    yield f"{name} bwd", dtype, shape, *max((_errors(a.grad.cpu(), b.grad) for a, b in zip(ours, ref)),
                                           key=lambda e: e[0] / (1 + e[2]))


def check_hc(device, dtype, quick):
    ns, batches, Cs = _cases(quick)
    for n in ns:
        for batch in batches[:2]:
            for C in Cs:
                shape = (*batch, n, C)
                yield from _fwd_bwd("hc_pre", ops.hc_pre, eager.hc_pre,
                                    [(*batch, n, C), (*batch, n)], dtype, device, shape, 1)
                yield from _fwd_bwd("hc_post_res", ops.hc_post_res, eager.hc_post_res,
                                    [(*batch, n, C), (*batch, C), (*batch, n, n), (*batch, n)],
                                    dtype, device, shape, 2)


def check_coeffs(device, dtype, quick):
    ns, batches, Cs = _cases(quick)
    for n in ns[:3]:
        for batch in batches[:2]:
            for C in Cs[:2]:
                M = 2 * n + n * n
                shapes = [(*batch, n, C), (n * C, M), (3,), (M,)]
                eps = torch.finfo(dtype).eps                  # the RMS eps of the kernel's input dtype
                yield from _fwd_bwd("hc_coeffs", lambda *a: torch.cat(ops.hc_coeffs(*a), -1),
                                    lambda *a: torch.cat(eager.hc_coeffs(*a, eps=eps), -1), shapes, dtype,
                                    device, (*batch, n, C), 99)


def check_bvn(device, dtype, quick):
    ns, batches, _ = _cases(quick)
    for n in ns:
        perms = torch.tensor(all_permutations(n) if n <= (4 if quick else 6) else cyclic_permutations(n))
        for batch in batches:
            shape = (*batch, len(perms), n)
            yield from _fwd_bwd("bvn_combine", lambda w: ops.bvn_combine(w, perms.to(w.device)),
                                lambda w: eager.bvn_combine(w, perms),
                                [(*batch, len(perms))], dtype, device, shape, 0)


def check_kron(device, dtype, quick):
    ns, batches, Cs = _cases(quick)
    for n in (8,) if quick else ns:
        sizes = kron_factor_sizes(n)
        for batch in batches[:2]:
            for C in Cs:
                shapes = [(*batch, n, C)] + [(*batch, m, m) for m in sizes]
                yield from _fwd_bwd("kron_apply", lambda x, *U: ops.kron_apply(U, x),
                                    lambda x, *U: eager.kron_apply(U, x),
                                    shapes, dtype, device, (*batch, n, C), 1)


def check_certify(device, dtype, quick):
    """Float statistics vs ``birkhoff.certify_batch`` (rigorous, float64) on the same values;
    fp32 sums whatever the input dtype, so the fp32 unit applies."""
    ns, batches, _ = _cases(quick)
    for n in ns:
        for batch in batches + (() if quick else ((100003,),)):
            M = (torch.from_numpy(sinkhorn_logits(torch.randn(*batch, n, n).numpy(), 3))
                 + 1e-3 * torch.randn(*batch, n, n)).to(dtype)
            got = ops.screen_batch(M.to(device))
            ref = certify_batch(M.double().numpy())
            Md = M.double()
            expected = (ref.row_residual, ref.col_residual, Md.amin((-2, -1)).numpy(),
                        ref.gain_forward.mean(-1), ref.gain_backward.mean(-1))
            errs = [_errors(g.cpu(), torch.as_tensor(e)) for g, e in zip(got[:5], expected)]
            abs_err, rel_err, scale = max(errs, key=lambda e: e[0] / (1 + e[2]))
            if not bool(got.finite.all()):
                abs_err = float("inf")
            yield "screen_batch", dtype, (*batch, n, n), abs_err, rel_err, scale, UNIT[torch.float32]


def check_token_mix(device, dtype, quick):
    _, _, Cs = _cases(quick)
    for B, N in ((2, 300),) if quick else ((1, 37), (2, 300), (1, 4096), (3, 1031)):
        shifts = eager.power_of_two_shifts(N)
        for C in Cs:
            yield from _fwd_bwd("token_mix", lambda x, w: ops.token_mix(x, w, shifts),
                                lambda x, w: eager.token_mix(x, w, shifts),
                                [(B, N, C), (len(shifts), C)], dtype, device, (B, N, C), 1)


CHECKS = (check_sinkhorn, check_coeffs, check_hc, check_kron, check_bvn, check_certify, check_token_mix)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpu.check", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (CI / CPU interpreter)")
    ap.add_argument("--peers", action="store_true",
                    help="check the peers' mHC kernels instead (Liger-Kernel, hyper-connections; gpu.peers)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU (TRITON_INTERPRET=1)'}\n")
    if args.peers:
        from .peers import report

        print("\n".join(report(device, args.quick)))
        return 0
    print(f"{'kernel':<22} {'dtype':<9} {'shape':<18} {'max abs err':>12} {'max rel err':>12} {'tol':>8}  result")
    failed = 0
    for dtype in (torch.float32, torch.bfloat16):
        for kernel, dt, shape, abs_err, rel_err, scale, *unit in itertools.chain(
                *(check(device, dtype, args.quick) for check in CHECKS)):
            tol = (unit[0] if unit else UNIT[dt]) * (1.0 + scale)
            ok = abs_err <= tol
            failed += not ok
            print(f"{kernel:<22} {str(dt).replace('torch.', ''):<9} {str(shape):<18} {abs_err:>12.2e} "
                  f"{rel_err:>12.2e} {tol:>8.1e}  {'PASS' if ok else 'FAIL'}")
    print(f"\n{'all PASS' if not failed else f'{failed} FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
