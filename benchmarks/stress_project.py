"""Stress run of ``project`` + ``certify_projection`` over random inputs at every scale.

    python benchmarks/stress_project.py --count 100000     # the run quoted in docs/BENCHMARKS.md
    python benchmarks/stress_project.py --count 2000       # a quick one

Each input is ``rng.random((n, n)) * 10**e`` (half of them shifted to mean 0), with
``n`` in 1..64 and ``e`` uniform in [-300, 300]. A *crash* is any exception; an
*invalid* result is a non-finite ``X``/duals, an unconverged result, or a certified
interval with ``lo > hi`` (the interval is rigorous, so the optimum lies in it whenever
``lo <= hi``). Prints the counts and the widest relative interval.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections import Counter

import numpy as np

from birkhoff import certify_projection, project


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    crashes, invalid, widest, t0 = Counter(), 0, 0.0, time.perf_counter()
    for k in range(args.count):
        n, e = int(rng.integers(1, 65)), float(rng.uniform(-300, 300))
        A = rng.random((n, n)) * 10.0 ** e
        if k % 2:
            A -= A.mean()
        try:
            p = project(A)
            lo, hi = certify_projection(A, p)
        except Exception as exc:                     # noqa: BLE001 - counting every kind of failure
            where = traceback.extract_tb(exc.__traceback__)[-1]
            crashes[f"{type(exc).__name__} at {where.name}:{where.lineno} (n={n}, e={e:.0f})"] += 1
            continue
        ok = p.converged and all(np.isfinite(x).all() for x in (p.X, p.u, p.v)) and 0 <= lo <= hi
        invalid += not ok
        widest = max(widest, (hi - lo) / hi if hi > 0 else 0.0)
    print(f"{args.count} inputs in {time.perf_counter() - t0:.0f} s: {sum(crashes.values())} crashes, "
          f"{invalid} invalid results, widest certified interval {widest:.1e} (relative)")
    for what, count in crashes.most_common():
        print(f"  {count} x {what}")


if __name__ == "__main__":
    main()
