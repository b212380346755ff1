from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birkhoff import (ConvergenceError, InvalidArgumentError, InvalidMatrixError, certify, certify_projection, from_permutations,
                      project, project_cvxpy, sinkhorn)
from birkhoff.certify import _exact_ds_repair
from birkhoff.testing.checks import kkt_violation


def repair_distance(X: np.ndarray) -> float:
    """``||X - Z||_F`` for the exactly DS ``Z`` that ``certify_projection`` builds from ``X``."""
    Z, E, d = _exact_ds_repair(X)
    Zf = np.array([[float(Fraction(int(z) * 2 ** (E + 200), d * 2 ** 200)) for z in row] for row in Z])
    return float(np.linalg.norm(X - Zf)) + 1e-15 * X.size


def random_matrix(seed, n, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal((n, n))


@given(st.integers(0, 2**32 - 1), st.integers(1, 10), st.sampled_from([0.1, 1.0, 10.0]))
def test_fast_matches_cvxpy(seed, n, scale):
    A = random_matrix(seed, n, scale)
    p, c = project(A), project_cvxpy(A)
    assert abs(p.objective - c.objective) <= 1e-7 * max(1.0, c.objective)
    lo, hi = certify_projection(A, p)
    lo_c, hi_c = certify_projection(A, c)          # rigorous for cvxpy's point too
    assert lo <= hi_c and lo_c <= hi                # both enclose the same true distance
    assert hi - lo <= 1e-9 * (1 + hi)              # ours is certified tight
    # Strong convexity: a DS Z with ||Z - A|| <= h is within sqrt(h^2 - dist^2) of the projection.
    # Both X are certified that close to it (cvxpy's, at gap 1e-10, to ~1e-5 only), so the two are
    # compared within what their certificates allow, not at a fixed threshold.
    low = max(lo, lo_c)
    ours, theirs = (np.sqrt(max(h * h - low * low, 0.0)) + repair_distance(X) for h, X in ((hi, p.X), (hi_c, c.X)))
    assert np.linalg.norm(p.X - c.X) <= (ours + theirs) * (1 + 1e-6) + 1e-9
    d = np.sqrt(c.objective)                        # cvxpy's value, accurate to ~1e-8
    assert lo <= d * (1 + 1e-7) + 1e-12 and d <= hi * (1 + 1e-7) + 1e-12


@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_kkt_and_gap(seed, n):
    A = random_matrix(seed, n, 3.0)
    p = project(A)
    assert kkt_violation(A, p) <= 1e-9 and abs(p.gap) <= 1e-8 * (1 + p.objective)


@given(st.integers(0, 2**32 - 1), st.integers(2, 12), st.data())
def test_permutation_equivariance(seed, n, data):
    A = random_matrix(seed, n)
    r = np.array(data.draw(st.permutations(range(n))))
    c = np.array(data.draw(st.permutations(range(n))))
    np.testing.assert_allclose(project(A[r][:, c]).X, project(A).X[r][:, c], atol=1e-9)


@given(st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_ds_is_its_own_projection(seed, n):
    rng = np.random.default_rng(seed)
    P = from_permutations(rng.dirichlet(np.ones(n)), np.array([rng.permutation(n) for _ in range(n)]))
    p = project(P)
    assert np.abs(p.X - P).max() <= 1e-14 and p.iterations == 0
    lo, hi = certify_projection(P, p)
    assert 0.0 <= lo <= hi <= 1e-14        # float "DS" is DS only to rounding: lo may be > 0


@pytest.mark.parametrize("name, A", [
    ("all-equal", np.full((5, 5), 3.0)),
    ("huge", random_matrix(1, 8, 1e8)),
    ("tiny", random_matrix(2, 8, 1e-8)),
    ("rank-one", np.outer(np.arange(1.0, 7.0), np.arange(2.0, 8.0))),
    ("n=1", np.array([[7.0]])),
    ("negative", -np.ones((4, 4))),
    ("permutation", np.eye(5)[[1, 2, 0, 4, 3]]),
    ("sinkhorn", sinkhorn(np.random.default_rng(3).random((6, 6)), tol=1e-15)),
])
def test_degenerate_inputs(name, A):
    p = project(A)
    lo, hi = certify_projection(A, p)
    assert hi - lo <= 1e-8 * (1 + np.linalg.norm(A))
    assert kkt_violation(A, p) <= 1e-9 * max(1.0, np.abs(A).max()) * A.shape[0]
    ref = project_cvxpy(A, "SCS")                    # Clarabel reports 'infeasible' at 1e8
    assert abs(p.objective - ref.objective) <= 1e-7 * max(1.0, ref.objective)


def test_batched_equals_single():
    A = np.random.default_rng(4).standard_normal((3, 5, 4, 4))
    p = project(A)
    assert p.X.shape == A.shape and p.u.shape == (3, 5, 4) and p.objective.shape == (3, 5)
    for idx in [(0, 0), (2, 4), (1, 3)]:
        np.testing.assert_allclose(p.X[idx], project(A[idx]).X, atol=1e-12)


@pytest.mark.parametrize("n", [32, 128])
def test_certified_width(n):
    A = random_matrix(n, n)
    lo, hi = certify_projection(A, project(A))
    assert 0 < lo <= hi and hi - lo <= 1e-8 * (1 + np.linalg.norm(A))


def test_certify_distance_field():
    c = certify([[0.5, 0.5], [0.5, 0.5]], distance=True)
    assert c.distance == (0.0, 0.0)
    c = certify([[1.0, 0.0], [1.0, 0.0]], distance=True)
    assert c.distance[0] <= 1.0 <= c.distance[1] and c.distance[1] - c.distance[0] < 1e-12


def test_errors():
    with pytest.raises(InvalidMatrixError):
        project(np.ones((2, 3)))
    with pytest.raises(InvalidArgumentError):
        project(np.eye(2), tol=0)
    p = project(np.eye(3))
    with pytest.raises(InvalidMatrixError):
        certify_projection(np.eye(4), p)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([1, 2, 3, 4, 6, 9, 16, 33, 64]),
       st.sampled_from([-300, -100, -8, 0, 3, 5, 6, 8, 12, 17, 50, 100, 150, 155, 200, 250, 300]),
       st.booleans(), st.integers(0, 2 ** 32 - 1))
def test_no_crash_across_scales(n, e, signed, seed):
    """Random inputs from 1e-300 to 1e300, n up to 64: a converged projection and a certified
    interval that is valid and tight (relative width <= 1e-6)."""
    rng = np.random.default_rng(seed)
    A = rng.random((n, n)) * 10.0 ** e
    if signed:
        A -= A.mean()
    p = project(A)
    assert p.converged and np.isfinite(p.X).all() and np.isfinite(p.u).all() and np.isfinite(p.v).all()
    lo, hi = certify_projection(A, p)
    assert 0 <= lo <= hi < np.inf and hi - lo <= 1e-6 * hi + 1e-12


@pytest.mark.parametrize("scale", [1e6, 1e8])
@pytest.mark.parametrize("n", [3, 8, 16])
def test_vertex_path_agrees_with_newton(monkeypatch, n, scale):
    """At large scale the projection is the optimal assignment (0/1, exact margins); Newton,
    forced on the same input, gives the same matrix within its effective tolerance."""
    import importlib

    from scipy.optimize import linear_sum_assignment

    A = random_matrix(n, n, scale)
    p = project(A)
    rows, sigma = linear_sum_assignment(A, maximize=True)
    assert p.iterations == 0 and (p.X[rows, sigma] == 1).all() and p.X.sum() == n      # the assignment, 0/1
    monkeypatch.setattr(importlib.import_module("birkhoff.project"), "_VERTEX_SIZE", np.inf)
    q = project(A, max_iter=5000)
    assert q.iterations > 0 or n == 1
    assert np.abs(p.X - q.X).max() <= 8 * n * np.finfo(float).eps * 4 * scale
    lo, hi = certify_projection(A, p)
    lo_q, hi_q = certify_projection(A, q)
    assert max(lo, lo_q) <= min(hi, hi_q)


@settings(max_examples=25)
@given(st.integers(2, 5), st.sampled_from([-3, 0, 1, 2]), st.integers(0, 2 ** 32 - 1))   # Clarabel fails above ~1e4
def test_certified_interval_contains_the_cvxpy_optimum(n, e, seed):
    A = np.random.default_rng(seed).random((n, n)) * 10.0 ** e
    lo, hi = certify_projection(A, project(A))
    ref = np.sqrt(project_cvxpy(A).objective)
    assert lo <= ref * (1 + 1e-6) + 1e-9 and ref <= hi * (1 + 1e-6) + 1e-9      # cvxpy itself is float


def test_huge_trivial_inputs():
    assert np.array_equal(project(np.array([[1e17]])).X, [[1.0]])
    A = np.array([[1e17, 0.0], [0.0, 1.0]])                # optimum I: distance exactly 1e17 - 1
    lo, hi = certify_projection(A, project(A))
    assert lo <= 10 ** 17 - 1 <= hi and hi - lo <= 64
    for s in (1e5, 1e6, 1e17):                          # scales that used to raise LinAlgError
        for seed in range(20):
            assert project(np.random.default_rng(seed).random((6, 6)) * s).converged


def exact_marginal_error(X: np.ndarray) -> Fraction:
    """``max |X 1 - 1|, |X^T 1 - 1|`` in rational arithmetic."""
    Q = np.vectorize(Fraction, otypes=[object])(X)
    return max(abs(s - 1) for s in list(Q.sum(0)) + list(Q.sum(1)))


def test_one_dominant_entry_is_projected_exactly():
    """diag(1e16, 0, 0) used to give row sums 1.056 and 1.028 with converged=True: the float
    centring had lost the O(1) entries. The projection is 1 at the spike, the rest J/2."""
    for s in (1e16, 1e100, 1e300):
        p = project(np.diag([s, 0.0, 0.0]))
        assert p.converged and exact_marginal_error(p.X) <= 16 * 3 * np.finfo(float).eps
        np.testing.assert_allclose(p.X, [[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]], atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(2, 6), st.sampled_from([1e14, 1e16, 1e40, 1e300]))
def test_a_dominant_entry_leaves_the_other_block_to_its_own_projection(seed, n, spike):
    """With one entry far above the rest, X has 1 there and the projection of the remaining
    (n-1) x (n-1) block elsewhere (random N(0, 1) 4x4 with one 1e14 used to miss by 0.39)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    i, j = rng.integers(n, size=2)
    A[i, j] = spike
    p = project(A)
    keep_r, keep_c = np.arange(n) != i, np.arange(n) != j
    block = project(A[keep_r][:, keep_c])
    assert p.X[i, j] == pytest.approx(1.0, abs=1e-10)                 # the stated tolerance
    np.testing.assert_allclose(p.X[keep_r][:, keep_c], block.X, atol=1e-9)
    assert exact_marginal_error(p.X) <= 1e-10 and p.residual <= 1e-10


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 8),
       st.sampled_from(["span", "dominant", "signed", "rank-one", "tiny"]))
def test_ill_scaled_inputs_are_right_or_refused(seed, n, kind):
    """Entries spanning 1e-300..1e300, one dominant entry, signed, rank one: a returned result
    passed its check (marginals within tol in exact arithmetic, X >= 0, a tight certified
    distance) or a ConvergenceError says it did not: never a wrong 'converged'."""
    rng = np.random.default_rng(seed)
    if kind == "span":
        A = 10.0 ** rng.uniform(-300, 300, (n, n)) * rng.choice([-1, 1], (n, n))
    elif kind == "dominant":
        A = rng.random((n, n))
        A[rng.integers(n), rng.integers(n)] = 10.0 ** rng.uniform(10, 300)
    elif kind == "signed":
        A = rng.standard_normal((n, n)) * 10.0 ** rng.uniform(-300, 300)
    elif kind == "rank-one":
        A = np.outer(rng.standard_normal(n), rng.standard_normal(n)) * 10.0 ** rng.uniform(-150, 150)
    else:
        A = rng.random((n, n)) * 1e-300
    try:
        p = project(A)
    except ConvergenceError:
        return
    assert p.converged and (p.X >= 0).all()
    assert exact_marginal_error(p.X) <= max(1e-10, 16 * n * np.finfo(float).eps) and p.residual <= 1e-10
    lo, hi = certify_projection(A, p)
    assert 0 <= lo <= hi and hi - lo <= 1e-6 * hi + 1e-9


def test_a_result_that_fails_its_check_is_refused(monkeypatch):
    """A solver that returns garbage duals is caught by the check, not reported converged."""
    import importlib

    mod = importlib.import_module("birkhoff.project")
    def garbage(A, tol, scale, max_iter, start=None):
        return np.zeros(A.shape[:-1]), np.zeros(A.shape[:-1]), 1

    monkeypatch.setattr(mod, "_newton", garbage)
    monkeypatch.setattr(mod, "_solve", garbage)          # the fast path, numpy or compiled
    with pytest.raises(ConvergenceError, match="did not pass its check"):
        project(np.random.default_rng(0).standard_normal((4, 4)))
