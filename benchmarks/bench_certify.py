"""Certificate cost and tightness: ``certify`` against one numpy SVD and the mpmath oracle, and the
relative width of every interval per matrix class.

    python benchmarks/bench_certify.py            # n = 4, 16, 64; widths up to n = 128 (about 3 min)
    python benchmarks/bench_certify.py --quick    # n = 4 only

Time: best of several calls of ``certify(M)``, ``np.linalg.svd(M)`` and the oracle
(``birkhoff.testing.oracle.truth`` at 30 digits: mpmath eig and two SVDs) on one ``signed``
matrix per n. Widths: ``(hi - lo) / hi`` of ``spectral_norm``, ``spectral_radius`` and ``sigma2``,
the maximum over 20 seeds per class and n (containment of the truth is the suite's job:
``tests/birkhoff/test_certify_oracle.py``).
"""

from __future__ import annotations

import argparse

import numpy as np

from _timing import best_time
from birkhoff import certify
from birkhoff.testing.oracle import CLASSES, signed, truth

FIELDS = ("spectral_norm", "spectral_radius", "sigma2")


def width(iv: tuple[float, float]) -> float:
    lo, hi = iv
    return 0.0 if hi == lo else (hi - lo) / hi if np.isfinite(hi) and hi > 0 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [4] if args.quick else [4, 16, 64]
    print("| n | certify (ms) | numpy svd (ms) | ratio | mpmath oracle, 30 digits (ms) | oracle / certify |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        M = signed(np.random.default_rng(0), n)
        t_cert, _ = best_time(lambda: certify(M), 20)
        t_svd, _ = best_time(lambda: np.linalg.svd(M), 200)
        t_orc, _ = best_time(lambda: truth(M, dps=30), 1 if n >= 64 else 3)
        print(f"| {n} | {t_cert * 1e3:.2f} | {t_svd * 1e3:.3f} | {t_cert / t_svd:.0f}x | {t_orc * 1e3:.0f} | "
              f"{t_orc / t_cert:.0f}x |")
    print()
    print("| class | n | " + " | ".join(f"max width {f}" for f in FIELDS) + " |")
    print("|---|---:|" + "---:|" * len(FIELDS))
    for name, make in CLASSES.items():
        for n in ([4] if args.quick else [4, 16, 64, 128]):
            worst = {f: 0.0 for f in FIELDS}
            for seed in range(20):
                c = certify(make(np.random.default_rng(seed), n))
                for f in FIELDS:
                    worst[f] = max(worst[f], width(getattr(c, f)))
            print(f"| {name} | {n} | " + " | ".join(f"{worst[f]:.1e}" for f in FIELDS) + " |")


if __name__ == "__main__":
    main()
