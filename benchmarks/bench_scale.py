"""How single large-matrix calls scale with n: seconds per call and peak RSS, one process per row.

    python benchmarks/bench_scale.py                 # n = 125 .. 2000 (about 2 min; bvn stops past 40 s)
    python benchmarks/bench_scale.py --quick         # n = 32, 64

Inputs: ``A = rng.random((n, n))`` (seed 0), ``P = sinkhorn(A, tol=1e-13)``, and
``N = rng.standard_normal((n, n))`` for the projection. No peer: these rows say where
the time goes (docs/BENCHMARKS.md, "Scale").
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CALLS = {
    "certify(A)": "certify(A)",
    "certify(P)": "certify(P)",
    "certify(A - 0.5)": "certify(A - 0.5)",
    "certify_product(P[None])": "certify_product(P[None])",
    "project(N)": "project(N)",
    "certify_projection(N, project(N))": "certify_projection(N, p)",
    "bvn_decompose(P)": "bvn_decompose(P)",
}


def worker(call: str, sizes: list[int], limit: float) -> dict:
    import numpy as np

    from birkhoff import bvn_decompose, certify, certify_product, certify_projection, project, sinkhorn

    rng = np.random.default_rng(0)
    times = []
    for n in sizes:
        A = rng.random((n, n))
        P, N = sinkhorn(A, tol=1e-13), rng.standard_normal((n, n))
        p = project(N)
        env = dict(A=A, P=P, N=N, p=p, certify=certify, certify_product=certify_product, project=project,
                   certify_projection=certify_projection, bvn_decompose=bvn_decompose)
        t0 = time.perf_counter()
        eval(CALLS[call], env)
        times.append(time.perf_counter() - t0)
        if times[-1] > limit:
            break
    return {"call": call, "times": times, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--limit", type=float, default=40.0, help="stop a row after a call slower than this (s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [32, 64] if args.quick else [125, 250, 500, 1000, 2000]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes, args.limit)))
        return
    print("| call | " + " | ".join(f"n = {n}" for n in sizes) + " | peak RSS (MB) |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for call in CALLS:
        out = subprocess.run([sys.executable, __file__, "--worker", call, "--limit", str(args.limit)]
                             + (["--quick"] if args.quick else []), capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        cells = [f"{t:.2f}" for t in r["times"]] + [""] * (len(sizes) - len(r["times"]))
        print(f"| `{call}` | " + " | ".join(cells) + f" | {r['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
