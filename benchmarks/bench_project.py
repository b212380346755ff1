"""Projection onto the Birkhoff polytope: birkhoff.project vs cvxpy (Clarabel, SCS).

Same inputs (standard normal matrices), same run. cvxpy is timed the ways a user would
run it:

* **one-off**: build the textbook QP and ``solve()`` it, per matrix (what
  ``project_cvxpy`` does); at each solver's defaults (Clarabel gap/feasibility 1e-8, SCS
  eps 1e-4) and, for Clarabel, at our reference accuracy (1e-10);
* **compiled once**: one problem with ``A`` a ``cp.Parameter`` (DPP), canonicalised once
  and re-solved per matrix with a new parameter value, Clarabel at its defaults;
* **Clarabel's own solve time** in that loop (``solver_stats.solve_time``): the solver
  without cvxpy around it.

The objective difference is relative to ours, ``|obj_peer - obj_ours| / obj_ours``; our own
accuracy is certified by ``certify_projection`` (the width, in the "ours" row).

    python benchmarks/bench_project.py           # n = 8 .. 256 and 10 000 4x4
    python benchmarks/bench_project.py --quick   # n = 8, 32 and 200 4x4

The batch of 4x4 matrices is one vectorised ``project`` call for us; cvxpy solves one
problem per matrix, timed on the first ``--loop-subset`` and scaled linearly.
"""

from __future__ import annotations

import argparse

import cvxpy as cp
import numpy as np

from _timing import best_time, compiled_path, warm
from birkhoff import certify_projection, project, project_cvxpy
from birkhoff.project import _COMPILED_MAX_N

CLARABEL_DEFAULT = {"tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "tol_feas": 1e-8}
ONE_OFF = [("cvxpy + Clarabel, one-off, default tol", "CLARABEL", CLARABEL_DEFAULT),
           ("cvxpy + Clarabel, one-off, tol 1e-10", "CLARABEL", {}),
           ("cvxpy + SCS, one-off, default eps 1e-4", "SCS", {"eps_abs": 1e-4, "eps_rel": 1e-4})]


class Compiled:
    """The projection QP compiled once (DPP): ``A`` is a parameter, re-solved per matrix."""

    def __init__(self, n: int) -> None:
        self.A = cp.Parameter((n, n))
        self.X = cp.Variable((n, n))
        self.problem = cp.Problem(cp.Minimize(cp.sum_squares(self.X - self.A)),
                                  [cp.sum(self.X, axis=1) == 1, cp.sum(self.X, axis=0) == 1, self.X >= 0])
        assert self.problem.is_dpp()
        self.solve(np.eye(n))                                       # canonicalise (not timed)

    def solve(self, A: np.ndarray) -> tuple[float, float]:
        """(objective ||X - A||^2, Clarabel's own solve time in s)."""
        self.A.value = A
        self.problem.solve(solver="CLARABEL", **CLARABEL_DEFAULT)
        return float(np.sum((self.X.value - A) ** 2)), float(self.problem.solver_stats.solve_time)


def line(case: str, label: str, t: float, ours_t: float, rel: str) -> str:
    ratio = t / ours_t
    return f"| {case} | {label} | {t * 1e3:.2f} | {ratio:.{0 if ratio >= 10 else 1}f}x | {rel} |"


def rel_diff(obj: np.ndarray, ours: np.ndarray) -> str:
    return f"{np.max(np.abs(obj - ours) / np.maximum(ours, 1e-300)):.1e}"


def compare(case: str, A: np.ndarray, repeat: int, subset: int) -> list[str]:
    """Rows for ``A`` (one matrix or a batch; peers loop over the first ``subset`` matrices)."""
    batch = A.reshape(-1, A.shape[-1], A.shape[-1])
    k = min(subset, batch.shape[0])
    scale = batch.shape[0] / k
    with compiled_path("1"):                 # the numba Newton where it applies, else the numpy path
        t, p = best_time(lambda: project(A), repeat)
    ours = np.atleast_1d(p.objective)[:k]
    widths = [np.subtract(*certify_projection(batch[i], project(batch[i]))[::-1]) for i in range(min(k, 5))]
    path = ", compiled Newton (numba)" if batch.shape[-1] <= _COMPILED_MAX_N else ""
    rows = [line(case, f"birkhoff `project`{path} (certified width {max(widths):.1e})", t, t, "-")]
    if path:
        with compiled_path("0"):
            tn, pn = best_time(lambda: project(A), repeat)
        rows.append(line(case, "birkhoff `project`, numpy path", tn, t, rel_diff(np.atleast_1d(pn.objective)[:k], ours)))
    peer_repeat = repeat if batch.shape[-1] < 128 and k == 1 else 1
    for label, solver, settings in ONE_OFF:
        tc, objs = best_time(lambda: np.array([project_cvxpy(batch[i], solver, **settings).objective
                                               for i in range(k)]), peer_repeat)
        rows.append(line(case, label, tc * scale, t, rel_diff(objs, ours)))
    compiled = Compiled(batch.shape[-1])
    tc, results = best_time(lambda: [compiled.solve(batch[i]) for i in range(k)], peer_repeat)
    objs, solve_times = map(np.array, zip(*results))
    rows.append(line(case, "cvxpy + Clarabel, compiled once (DPP), default tol", tc * scale, t, rel_diff(objs, ours)))
    rows.append(line(case, "Clarabel's own solve time in that loop", solve_times.sum() * scale, t, "-"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop-subset", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    warm("project")
    for _, solver, settings in ONE_OFF:          # warm-up: cvxpy's first call compiles
        project_cvxpy(np.eye(3), solver, **settings)
    print(f"cvxpy {cp.__version__}, numpy {np.__version__}\n")
    print("| input | implementation | time (ms) | time / ours | obj. diff |")
    print("|---|---|---:|---:|---:|")
    for n in ((8, 32) if args.quick else (8, 32, 64, 128, 256)):
        for row in compare(f"n = {n}", rng.standard_normal((n, n)), args.repeat, 1):
            print(row, flush=True)
    B = 200 if args.quick else 10_000
    k = min(args.loop_subset, B)
    case = f"{B} x (4 x 4) batch" + (f" (cvxpy timed on {k}, x{B / k:g})" if k < B else "")
    for row in compare(case, rng.standard_normal((B, 4, 4)), args.repeat, k):
        print(row, flush=True)


if __name__ == "__main__":
    main()
