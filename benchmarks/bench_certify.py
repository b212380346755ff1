"""Certificate cost and tightness: ``certify`` against one numpy SVD and the mpmath oracle,
``certify_batch`` against numpy's batched SVD, and the relative width of every interval per class.

    python benchmarks/bench_certify.py            # n = 4, 16, 64; 100 000 4x4; widths up to n = 512
    python benchmarks/bench_certify.py --quick    # n = 4 only, 2 000 4x4
    python benchmarks/bench_certify.py --times    # the two timing tables only (no width table)

Time: best of several calls of ``certify(M)`` on both of birkhoff's paths (numpy, and the compiled
kernels, warm: ``BIRKHOFF_COMPILED=0`` / ``1``; the kernels take n <= 16), ``np.linalg.svd(M)`` and the oracle (``birkhoff.testing.oracle.truth``
at 30 digits: mpmath eig and two SVDs) and an arb certificate of the same quantities (python-flint at 53
bits, :func:`arb_certificate`: balls for the radius, ``||M||_2``, ``sigma_min``, ``sigma2`` and the
residuals) on one ``signed`` and one ``SK_20`` matrix per n; and of
``certify_batch`` of ``SK_20(exp(N(0, 1)))`` 4x4 matrices (every field) against
``np.linalg.svd`` of the same batch, with and without the singular vectors. Widths: ``(hi - lo) / hi`` of ``spectral_norm``, ``spectral_radius``, ``sigma2`` and
``sigma_min``, median and worst per class at n = 4, 64, 256, 257 and 512 (:func:`width_table`; containment
of the truth at every n the suite's oracle tests reach is ``tests/birkhoff/test_certify_oracle.py``'s job).
"""

from __future__ import annotations

import argparse

import flint
import numpy as np

from _timing import best_time, on_both_paths, warm
from birkhoff import certify, certify_batch, sinkhorn
from birkhoff.testing.oracle import CLASSES, contains, signed, sk20, truth

FIELDS = ("spectral_norm", "spectral_radius", "sigma2")


def arb_certificate(M: np.ndarray, prec: int = 53) -> dict[str, flint.arb]:
    """The certificate's quantities as arb balls at ``prec`` bits: the radius from ``acb_mat.eig``, the
    singular values from the eigenvalues of ``M^T M`` and ``D^T D`` (``D = M - J/n``), the residuals by
    ball sums."""
    flint.ctx.prec = prec
    n = M.shape[0]
    A = flint.arb_mat(M.tolist())
    D = A - flint.arb_mat(n, n, [flint.arb(1) / n] * (n * n))

    def singular(X: flint.arb_mat) -> list[flint.arb]:
        return sorted((e.real.sqrt() for e in flint.acb_mat(X.transpose() * X).eig()), key=lambda b: b.mid())

    sv = singular(A)
    return {"spectral_radius": max((abs(e) for e in flint.acb_mat(A).eig()), key=lambda b: b.mid()),
            "spectral_norm": sv[-1], "sigma_min": sv[0], "sigma2": singular(D)[-1],
            "row_residual": max((abs(sum((A[i, j] for j in range(n)), flint.arb(0)) - 1) for i in range(n)),
                                key=lambda b: b.mid())}


def arb_width(ball: flint.arb) -> float:
    hi = float(ball.upper())
    return float(ball.upper() - ball.lower()) / hi if hi > 0 else 0.0


def width(iv: tuple[float, float]) -> float:
    lo, hi = iv
    return 0.0 if hi == lo else (hi - lo) / hi if np.isfinite(hi) and hi > 0 else float("inf")


WIDTH_SIZES = {4: 20, 64: 5, 256: 2, 257: 2, 512: 1}      # n: matrices per class
WIDTH_FIELDS = (*FIELDS, "sigma_min")


def width_table(sizes, per_class: int | None = None) -> str:
    """Per class and n (``per_class`` matrices each, else :data:`WIDTH_SIZES`'), the median and the worst
    relative width of each interval, and at n = 4 (mpmath at 60 digits; slow beyond;
    ``tests/birkhoff/test_certify_arb.py`` checks every class at n = 16 against arb) whether every
    interval contains the oracle's truth. A ``sigma_min`` enclosed as ``[0, hi]`` with
    ``hi <= n^2 u ||M||`` is counted as ``0*``: numerically singular in double precision, past the exact
    inverse's work budget (or exactly singular: ``[0, 0]``)."""
    lines = ["| class | n | matrices | " + " | ".join(f"{f}: median / worst width" for f in WIDTH_FIELDS)
             + " | contains the oracle's truth |", "|---|---:|---:|" + "---:|" * len(WIDTH_FIELDS) + "---|"]
    for name, make in CLASSES.items():
        for n in sizes:
            count = per_class or WIDTH_SIZES.get(n, 1)
            widths = {f: [] for f in WIDTH_FIELDS}
            singular, contained = 0, True
            for seed in range(count):
                M = make(np.random.default_rng(seed), n)
                c = certify(M)
                for f in WIDTH_FIELDS:
                    widths[f].append(width(getattr(c, f)))
                singular += c.sigma_min[0] == 0 and c.sigma_min[1] <= n * n * 2.0 ** -53 * c.spectral_norm[1]
                if n <= 4:
                    t = truth(M)
                    contained &= all(contains(*getattr(c, f), t[f]) for f in WIDTH_FIELDS)
            cells = [f"{np.median(w):.1e} / {max(w):.1e}" for w in widths.values()]
            if singular:
                cells[-1] += f" (0* in {singular})"
            verdict = "-" if n > 4 else "yes" if contained else "NO"
            lines.append(f"| {name} | {n} | {count} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--times", action="store_true", help="the timing tables only")
    args = ap.parse_args()
    sizes = [4] if args.quick else [4, 16, 64]
    warm("certify")
    print()
    print("| n | matrix | certify, numpy path (ms) | certify, compiled (ms) | numpy svd (ms) | ratio, numpy path "
          "| ratio, compiled | mpmath oracle, 30 digits (ms) | oracle / certify, compiled | arb, 53 bits (ms) "
          "| arb / certify, compiled | widest interval, certify / arb |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for label, M in (("signed", signed(np.random.default_rng(0), n)), ("SK_20", sk20(np.random.default_rng(0), n))):
            times = [t for t, _ in on_both_paths(lambda: certify(M), 20)]
            t_svd, _ = best_time(lambda: np.linalg.svd(M), 200)
            t_orc, _ = best_time(lambda: truth(M, dps=30), 1 if n >= 64 else 3)
            t_arb, balls = best_time(lambda: arb_certificate(M), 1 if n >= 64 else 20)
            ours = certify(M)
            w_ours = max(width(getattr(ours, f)) for f in WIDTH_FIELDS)
            w_arb = max(arb_width(balls[f]) for f in WIDTH_FIELDS)
            print(f"| {n} | {label} | {times[0] * 1e3:.3f} | {times[1] * 1e3:.3f} | {t_svd * 1e3:.4f} | "
                  f"{times[0] / t_svd:.0f}x | {times[1] / t_svd:.1f}x | {t_orc * 1e3:.0f} | {t_orc / times[1]:.0f}x | "
                  f"{t_arb * 1e3:.3f} | {t_arb / times[1]:.1f}x | {w_ours:.1e} / {w_arb:.1e} |")
    B = 2000 if args.quick else 100_000
    A = sinkhorn(np.exp(np.random.default_rng(1).standard_normal((B, 4, 4))), iters=20)
    times = [t for t, _ in on_both_paths(lambda: certify_batch(A), 3)]
    t_full, _ = best_time(lambda: np.linalg.svd(A), 3)
    t_vals, _ = best_time(lambda: np.linalg.svd(A, compute_uv=False), 3)
    print()
    print("| workload | certify_batch, numpy path (s) | certify_batch, compiled (s) | svd with vectors (s) "
          "| svd, values only (s) | compiled / svd with vectors | compiled / values only | numpy path / compiled |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| ({B}, 4, 4) SK_20, every field | {times[0]:.3f} | {times[1]:.3f} | {t_full:.3f} | {t_vals:.3f} | "
          f"{times[1] / t_full:.2f}x | {times[1] / t_vals:.2f}x | {times[0] / times[1]:.1f}x |")
    if not args.times:
        print()
        print()
        print(width_table([4], per_class=2) if args.quick else width_table(WIDTH_SIZES))

if __name__ == "__main__":
    main()
