"""Birkhoff-von Neumann decomposition: birkhoff vs the PyPI package `birkhoff` 0.0.5 (jfinkels).

Same inputs, same run. The peer's import name clashes with ours and it needs
``numpy<1.24`` and ``networkx<3``, so it runs in its own virtualenv
(``$XDG_CACHE_HOME/birkhoff-hc/peer-birkhoff-0.0.5``, default ``~/.cache/...``, created on
first use, outside the project tree) in a subprocess.

Shim, stated as the benchmark's one deviation from the released peer: with
numpy >= 1.23 its ``to_permutation_matrix`` indexes with ``list(zip(...))``, which
numpy reads as one array index; we monkeypatch that one line to ``tuple(zip(...))``
(the intended behaviour).

    python benchmarks/bench_bvn.py            # n = 8, 16, 32, 64
    python benchmarks/bench_bvn.py --quick    # n = 8, 16

Inputs: ``sum_k w_k P_k`` over ``n**2`` random permutations with Dirichlet weights
(DS to rounding, which the peer needs: it zeroes entries below ``10 eps``), plus one
Sinkhorn-made matrix per size to show what happens on DS-within-1e-14 input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np

from _timing import on_both_paths, warm
from birkhoff import bvn_decompose, from_permutations, marcus_ree_bound, sinkhorn

PEER_ENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "birkhoff-hc" / "peer-birkhoff-0.0.5"
PEER_REQS = ["numpy<1.24", "networkx<3", "birkhoff==0.0.5"]
PEER_RUNNER = '''
import json, sys, time
import numpy as np
import birkhoff

def to_permutation_matrix(matches):  # shim: tuple(...) instead of list(...)
    n = len(matches)
    P = np.zeros((n, n))
    P[tuple(zip(*(matches.items())))] = 1
    return P

birkhoff.to_permutation_matrix = to_permutation_matrix
D = np.load(sys.argv[1])
try:
    t0 = time.perf_counter()
    terms = birkhoff.birkhoff_von_neumann_decomposition(D)
    t = time.perf_counter() - t0
    R = sum(c * P for c, P in terms)
    print(json.dumps({"time": t, "terms": len(terms), "err": float(np.abs(R - D).max())}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
'''


def peer_python() -> Path:
    py = PEER_ENV / "bin" / "python"
    if not py.exists():
        PEER_ENV.parent.mkdir(parents=True, exist_ok=True)
        venv.create(PEER_ENV, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_REQS], check=True)
    return py


def run_peer(py: Path, D: np.ndarray, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "D.npy"
        np.save(path, D)
        script = Path(tmp) / "run.py"
        script.write_text(PEER_RUNNER)
        try:
            out = subprocess.run([str(py), str(script), str(path)], capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timeout after {timeout:g} s"}
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"error": out.stderr.strip().splitlines()[-1]}


def ours(D: np.ndarray, repeat: int) -> tuple[float, float, int, float]:
    """Best times of the numpy path and of the compiled kernels (warm), the terms and the
    reconstruction error; the two paths must give the same terms (they are the same algorithm)."""
    (t, d), (tc, dc) = on_both_paths(lambda: bvn_decompose(D), repeat)
    if not (np.array_equal(d.perms, dc.perms) and np.array_equal(d.weights, dc.weights)):
        raise SystemExit("the compiled BvN gave other terms than the numpy path")
    return t, tc, len(d), float(np.abs(d.matrix() - D).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0, help="per peer run (s)")
    args = ap.parse_args()
    py = peer_python()
    rng = np.random.default_rng(0)
    warm("bvn")
    print("| input | n | birkhoff, numpy path (ms) | birkhoff, compiled (ms) | peer (ms) | speed-up, numpy path "
          "| speed-up, compiled | terms ours / peer | Marcus-Ree bound | recon. err ours / peer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in ((8, 16) if args.quick else (8, 16, 32, 64)):
        K = n * n
        perms = np.array([rng.permutation(n) for _ in range(K)])
        cases = {"convex comb. of n^2 perms": from_permutations(rng.dirichlet(np.ones(K)), perms),
                 "Sinkhorn, tol 1e-14": sinkhorn(rng.random((n, n)) + 1e-3, tol=1e-14)}
        for label, D in cases.items():
            t, tc, terms, err = ours(D, args.repeat)
            p = run_peer(py, D, args.timeout)
            if "error" in p:
                peer_cols = f"fails: {p['error'][:60]} | - | - | {terms} / - "
                errs = f"{err:.1e} / -"
            else:
                peer_cols = (f"{p['time'] * 1e3:.1f} | {p['time'] / t:.0f}x | {p['time'] / tc:.0f}x "
                             f"| {terms} / {p['terms']} ")
                errs = f"{err:.1e} / {p['err']:.1e}"
            print(f"| {label} | {n} | {t * 1e3:.1f} | {tc * 1e3:.1f} | {peer_cols}| {marcus_ree_bound(n)} | {errs} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
