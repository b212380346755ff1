"""Sinkhorn: birkhoff vs a plain numpy loop vs POT (single + batched API) vs `sinkhorn-knopp`.

Same inputs, same run. Prints markdown tables (times are the best of ``--repeat`` runs,
wall clock, this machine) with time ratios and the marginal error each result reached.

    python benchmarks/bench_sinkhorn.py            # all cases
    python benchmarks/bench_sinkhorn.py --quick    # smaller sizes (smoke test)

Case A: (100 000, 4, 4) x 20 sweeps (mHC's SK_20 on a token batch), from the matrices
``exp(H)`` and, for ``sinkhorn_logits``, from the logits ``H``. The baseline is the plain
numpy loop a user would write (``r = 1 / A c``, ``c = 1 / A^T r`` with ``einsum``). POT's
``ot.sinkhorn`` and ``SinkhornKnopp.fit`` take one matrix per call; they are timed on the
first ``--loop-subset`` matrices and scaled linearly (stated in the row).
Case B: (8, 256, 256) to tol 1e-9 in max marginal error, uniform and log-normal. Each
library stops by its own rule (POT checks every 10 sweeps and overshoots), so besides the
same requested tolerance, birkhoff is also run at the accuracy POT actually reached
("equal achieved accuracy") and POT's ratio is given against that run too.
Case C: hard inputs, to tol 1e-10: entries spanning 1e-300..1e300, a nearly decomposable
2x2 (cross-ratio 1e7) and an 8x8 two-block matrix coupled by 1e-7. Time to tolerance, or
"fails" with the error reached when the sweep budget (100 000) runs out.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import ot
import ot.batch
from sinkhorn_knopp.sinkhorn_knopp import SinkhornKnopp

from _timing import best_time, compiled_path, warm
from birkhoff import ConvergenceError, sinkhorn, sinkhorn_logits

BUDGET = 100_000          # sweeps before a method "fails" (case C; --quick: 2000)


def numpy_loop(A: np.ndarray, iters: int | None, tol: float) -> np.ndarray:
    """The plain numpy loop: ``iters`` sweeps, or sweeps until the row error is <= tol."""
    c = np.ones(A.shape[:-1])
    for _ in range(iters or 10_000):
        r = 1.0 / np.einsum("...ij,...j->...i", A, c)
        c = 1.0 / np.einsum("...ij,...i->...j", A, r)
        if not iters and np.abs(r * np.einsum("...ij,...j->...i", A, c) - 1).max() <= tol:
            break
    return A * r[..., :, None] * c[..., None, :]


def pot_single(A: np.ndarray, iters: int | None, tol: float, method: str = "sinkhorn",
               budget: int = 10_000) -> np.ndarray:
    """ot.sinkhorn with K = A (M = -log A, reg = 1), unit marginals, one matrix per call."""
    n = A.shape[-1]
    ones = np.ones(n)
    out = np.empty_like(A)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # POT warns when it stops at numItermax
        for i in range(A.shape[0]):
            out[i] = ot.sinkhorn(ones, ones, -np.log(A[i]), reg=1.0, method=method,
                                 numItermax=iters or budget, stopThr=0.0 if iters else tol)
    return out


def pot_batch(A: np.ndarray, iters: int | None, tol: float, budget: int = 10_000) -> np.ndarray:
    ones = np.ones(A.shape[:-1])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = ot.batch.bregman_projection_batch(A, a=ones, b=ones, max_iter=iters or budget,
                                                tol=0.0 if iters else tol)
    return np.asarray(res["T"] if isinstance(res, dict) else res)


def sk_package(A: np.ndarray, iters: int | None, tol: float) -> np.ndarray:
    out = np.empty_like(A)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(A.shape[0]):
            out[i] = SinkhornKnopp(max_iter=iters or 100_000, epsilon=tol if not iters else 1e-300).fit(A[i])
    return out


def max_marginal(P: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        err = max(np.abs(P.sum(-1) - 1).max(), np.abs(P.sum(-2) - 1).max())
    return float(err) if np.isfinite(err) else float("nan")


def row(case: str, label: str, t: float, base: float, P: np.ndarray, ref: np.ndarray | None) -> str:
    diff = "-" if ref is None else f"{float(np.abs(P - ref[: P.shape[0]]).max()):.1e}"
    return f"| {case} | {label} | {t * 1e3:.1f} | {t / base:.2f} | {max_marginal(P):.1e} | {diff} |"


def case_a(B: int, subset: int, repeat: int) -> list[str]:
    H = np.random.default_rng(0).standard_normal((B, 4, 4))
    A = np.exp(H)
    case = f"({B}, 4, 4) x 20 sweeps"
    base, P0 = best_time(lambda: numpy_loop(A, 20, 0.0), repeat)
    rows = [row(case, "plain numpy loop (baseline)", base, base, P0, None)]
    for path in ("0", "1"):               # the numpy reference path, then the compiled kernels (warm)
        name = "numpy path" if path == "0" else "compiled, numba"
        for label, fn in ((f"birkhoff `sinkhorn(A, iters=20)`, {name}", lambda: sinkhorn(A, iters=20)),
                          (f"birkhoff `sinkhorn_logits(H, 20)`, {name}", lambda: sinkhorn_logits(H, 20))):
            with compiled_path(path):
                t, P = best_time(fn, repeat)
            rows.append(row(case, label, t, base, P, P0))
    t, P = best_time(lambda: pot_batch(A, 20, 0.0), repeat)
    rows.append(row(case, "POT `ot.batch.bregman_projection_batch`", t, base, P, P0))
    k = min(subset, B)
    for label, fn in (("POT `ot.sinkhorn` (loop)", pot_single), ("`sinkhorn-knopp` `SinkhornKnopp.fit` (loop)",
                                                                  sk_package)):
        t, P = best_time(lambda: fn(A[:k], 20, 0.0), 1)
        rows.append(row(case, f"{label} (timed on {k}, x{B / k:g})", t * B / k, base, P, P0))
    return rows


def case_b(nb: int, repeat: int) -> list[str]:
    rng = np.random.default_rng(0)
    inputs = {"uniform U(0,1)+1e-3": rng.random((nb, 256, 256)) + 1e-3,
              "lognormal exp(2 N(0,1))": np.exp(2.0 * rng.standard_normal((nb, 256, 256)))}
    rows = []
    for kind, A in inputs.items():
        case = f"({nb}, 256, 256) {kind} to tol 1e-9"
        base, ours = best_time(lambda: sinkhorn(A, tol=1e-9), repeat)
        rows.append(row(case, "birkhoff `sinkhorn` (batched)", base, base, ours, None))
        t, P = best_time(lambda: numpy_loop(A, None, 1e-9), repeat)
        rows.append(row(case, "plain numpy loop (batched, checks every sweep)", t, base, P, ours))
        for label, fn in (("POT `ot.batch.bregman_projection_batch`", pot_batch), ("POT `ot.sinkhorn` (loop)", pot_single),
                          ("`sinkhorn-knopp` `SinkhornKnopp.fit` (loop)", sk_package)):
            t, P = best_time(lambda: fn(A, None, 1e-9), repeat)
            rows.append(row(case, label, t, base, P, ours))
            if label == "POT `ot.sinkhorn` (loop)":
                reached = max(max_marginal(P), 1e-15)
                t_eq, ours_eq = best_time(lambda: sinkhorn(A, tol=reached), repeat)
                rows.append(row(case, f"birkhoff `sinkhorn` at POT's achieved accuracy (tol={reached:.1e}); "
                                      f"POT `ot.sinkhorn` / this = {t / t_eq:.2f}", t_eq, base, ours_eq, ours))
    return rows


def attempt(fn) -> tuple[float, np.ndarray | None, str]:
    """Time one call; a ConvergenceError (or a result above tol) is a failure, with its error."""
    t0 = time.perf_counter()
    try:
        P = fn()
    except ConvergenceError as exc:
        return time.perf_counter() - t0, None, str(exc).split("(max marginal error ")[-1].rstrip(")")
    return time.perf_counter() - t0, P, ""


def case_c(count: int, budget: int) -> list[str]:
    rng = np.random.default_rng(1)
    block = np.kron(np.eye(2), rng.uniform(0.1, 1, (4, 4))) + 1e-7 * rng.random((8, 8))
    inputs = {f"exp(U(-690, 690)), {count} x 6x6": np.exp(rng.uniform(-690, 690, (count, 6, 6))),
              "2x2 cross-ratio 1e7": np.array([[[1.0, 1e-7], [1.0, 1.0]]]),
              "8x8 two blocks + 1e-7": block[None]}
    tol = 1e-10
    rows = []
    for kind, A in inputs.items():
        for label, fn in (
                ("birkhoff `sinkhorn` (auto)", lambda: sinkhorn(A, tol=tol)),
                ("birkhoff `sinkhorn(method='newton')`", lambda: sinkhorn(A, tol=tol, method="newton")),
                ("birkhoff sweeps only (`method='sinkhorn'`)",
                 lambda: sinkhorn(A, tol=tol, method="sinkhorn", max_iter=budget)),
                ("POT `ot.sinkhorn(method='sinkhorn_log')` (loop)",
                 lambda: pot_single(A, None, tol, "sinkhorn_log", budget)),
                ("POT `ot.batch.bregman_projection_batch`", lambda: pot_batch(A, None, tol, budget))):
            t, P, failure = attempt(fn)
            err = max_marginal(P) if P is not None else float("nan")
            if P is not None and not err <= tol:
                failure = f"{err:.1e}"
            verdict = f"fails (error {failure} after {budget} sweeps, {t:.1f} s)" if failure else f"{t * 1e3:.1f}"
            rows.append(f"| {kind} | {label} | {verdict} | {'-' if failure else f'{err:.1e}'} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop-subset", type=int, default=2000)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"POT {ot.__version__}\n")
    warm("sweeps")
    print()
    print("| case | implementation | time (ms) | time / first row | max marginal err | max abs diff vs first row |")
    print("|---|---|---:|---:|---:|---:|")
    for line in case_a(2000 if args.quick else 100_000, args.loop_subset, args.repeat):
        print(line)
    for line in case_b(2 if args.quick else 8, args.repeat):
        print(line)
    print("\n| hard input (tol 1e-10) | implementation | time (ms) | max marginal err |")
    print("|---|---|---:|---:|")
    for line in case_c(3 if args.quick else 20, 500 if args.quick else BUDGET):
        print(line)


if __name__ == "__main__":
    main()
