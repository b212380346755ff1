"""Certificates against the mpmath oracle on both of birkhoff's paths, over many matrices: a soundness sweep.

    python benchmarks/soundness_sweep.py            # 30 matrices a family, n = 1-9
    python benchmarks/soundness_sweep.py --quick    # 1 a family

Every interval of ``certify`` (spectral radius, norm, ``sigma2``, ``sigma_min``) must contain the
60-digit truth (``birkhoff.testing.oracle.truth``), with ``BIRKHOFF_COMPILED=0`` (numpy) and ``=1``
(the compiled kernels, which hand back what they do not certify). Families: the oracle's classes;
rank-two, rotation-like, signed Jordan, nilpotent-perturbed, mixed-scale and nearly singular doubly
stochastic matrices; matrices with prescribed singular values down to 1e-18 and exact zeros. The
suite's oracle tests run a few of each under hypothesis; this runs many, for a release or a change of
the enclosures. Exit 1 when any interval misses.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from birkhoff import certify
from birkhoff.testing.oracle import CLASSES, contains, truth


def _rotation(r: np.random.Generator, n: int) -> np.ndarray:
    """Planar rotations (a dominant complex pair of modulus 1) in a random orthogonal basis."""
    M = np.zeros((n, n))
    th = r.uniform(0, np.pi)
    for i in range(0, n - 1, 2):
        M[i:i + 2, i:i + 2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    if n % 2:
        M[-1, -1] = r.choice([-1, 1]) * r.uniform(0.5, 1)
    Q, _ = np.linalg.qr(r.standard_normal((n, n)))
    return Q @ M @ Q.T


def _singular(r: np.random.Generator, n: int) -> np.ndarray:
    """Prescribed singular values ``10**U(-18, 0)`` (one exactly 0 in five), scaled by ``10**(-100..100)``."""
    U, _ = np.linalg.qr(r.standard_normal((n, n)))
    V, _ = np.linalg.qr(r.standard_normal((n, n)))
    s = np.sort(10.0 ** r.uniform(-18, 0, n))[::-1]
    if r.random() < 0.2:
        s[-1] = 0.0
    return (U * s) @ V.T * 10.0 ** int(r.integers(-100, 100))


FAMILIES = {
    **CLASSES,
    "rank two": lambda r, n: (r.integers(-3, 4, (n, 2)) @ r.integers(-3, 4, (2, n))).astype(float),
    "rotation": _rotation,
    "signed jordan": lambda r, n: (-np.eye(n) * r.uniform(0.5, 2) + np.eye(n, k=1) * r.uniform(0.5, 5)
                                   + np.eye(n, k=1 - n) * 10.0 ** -float(r.integers(5, 200))),
    "nilpotent perturbed": lambda r, n: np.triu(r.standard_normal((n, n)), 1) + 1e-13 * r.standard_normal((n, n)),
    "mixed scales": lambda r, n: np.ldexp(r.standard_normal((n, n)), r.integers(-100, 100, (n, n))),
    "singular DS": lambda r, n: 0.5 * np.eye(n)[r.permutation(n)] + 0.5 * np.eye(n)[r.permutation(n)],
    "prescribed singular values": _singular,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    per_family = 1 if args.quick else 30
    checked, missed = 0, []
    for f, (name, make) in enumerate(FAMILIES.items()):
        for k in range(per_family):
            r = np.random.default_rng([args.seed, f, k])
            M = make(r, int(r.integers(1, 10)))
            if not np.isfinite(M).all():
                continue
            expected = truth(M)
            for path in ("0", "1"):
                os.environ["BIRKHOFF_COMPILED"] = path
                c = certify(M)
                for field, value in expected.items():
                    checked += 1
                    lo, hi = getattr(c, field)
                    if not contains(lo, hi, value):
                        missed.append(f"{name} (seed {args.seed}, {k}), path {path}: {field} [{lo!r}, {hi!r}] "
                                      f"misses {value}")
    print(f"{checked} intervals over {len(FAMILIES)} families x {per_family} matrices x 2 paths: "
          f"{len(missed)} missed the truth")
    for line in missed:
        print("  " + line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
