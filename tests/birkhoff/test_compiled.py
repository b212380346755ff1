"""The compiled kernels (birkhoff/_compiled, numba) against their numpy reference: bit-identical
results over shapes, zero patterns and dtypes; when they load; and that ``import birkhoff`` stays
free of numba."""

import json
import subprocess
import sys
from collections import defaultdict

import numba  # noqa: F401  a dependency: without it these tests would compare numpy with itself
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from birkhoff import _compiled, sinkhorn, sinkhorn_logits
from birkhoff.cli import main
from birkhoff.sweeps import CHUNK, fixed_sweeps, fixed_sweeps_logits

pytestmark = pytest.mark.xdist_group("numba")  # one worker compiles (or loads) the kernels


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """Kernels these tests load (BIRKHOFF_COMPILED=1) stay out of the other tests of the worker."""
    monkeypatch.setattr(_compiled, "_LOADED", dict(_compiled._LOADED))
    monkeypatch.setattr(_compiled, "_SPENT", defaultdict(float, _compiled._SPENT))


def both(fn, monkeypatch, *args):
    """``fn(*args)`` on the numpy path and on the compiled one."""
    monkeypatch.setenv("BIRKHOFF_COMPILED", "0")
    reference = fn(*args)
    monkeypatch.setenv("BIRKHOFF_COMPILED", "1")
    return reference, fn(*args)


def identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 16])
@pytest.mark.parametrize("B", [1, 7, 129, CHUNK + 3])
def test_sweeps_are_bit_identical_to_numpy(n, B, monkeypatch):
    rng = np.random.default_rng(n * 1000 + B)
    A = np.exp(2 * rng.standard_normal((B, n, n)))
    identical(*both(fixed_sweeps, monkeypatch, A, 20))
    # a zero in the second chunk only: one chunk takes the positive path, the other accumulates
    Z = A.copy()
    Z[-1, 0, :] = 0.0
    Z[-1, :, -1] *= rng.integers(0, 2, n)
    identical(*both(fixed_sweeps, monkeypatch, Z, 7))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_sweeps_with_zero_patterns_and_scales_are_bit_identical(n, B, iters, seed):
    rng = np.random.default_rng(seed)
    A = rng.random((B, n, n)) * 10.0 ** rng.integers(-150, 150, (B, 1, 1))
    A[rng.random((B, n, n)) < 0.3] = 0.0
    with pytest.MonkeyPatch.context() as mp:
        identical(*both(fixed_sweeps, mp, A, iters))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(0, 25), st.integers(0, 2**32 - 1), st.sampled_from([0, 30, 300]))
def test_positive_4x4_blocks_are_bit_identical(B, iters, seed, spread):
    """mHC's case, which the compiled path sweeps a whole matrix at a time: positive 4x4 matrices whose
    entries span up to 10^(2 spread) (scalings that overflow included), blocks cut anywhere."""
    rng = np.random.default_rng(seed)
    A = rng.random((B, 4, 4)) * 10.0 ** rng.integers(-spread, spread + 1, (B, 4, 4)) + 1e-300
    with pytest.MonkeyPatch.context() as mp, np.errstate(all="ignore"):      # scalings may overflow
        identical(*both(fixed_sweeps, mp, A, iters))
        identical(*both(fixed_sweeps_logits, mp, np.log(A), iters, np.log(1e300)))


def test_float32_input_and_logits_are_bit_identical(monkeypatch):
    rng = np.random.default_rng(1)
    A32 = np.exp(rng.standard_normal((300, 4, 4))).astype(np.float32)
    identical(*both(fixed_sweeps, monkeypatch, A32, 20))
    L = 3 * rng.standard_normal((CHUNK + 50, 4, 4))
    L[5] *= 500                                      # logits spanning more than the linear path takes
    L[6, 0, 0] = -1e4
    identical(*both(fixed_sweeps_logits, monkeypatch, L, 20, np.log(1e300)))
    # the public functions: every output and the info fields
    for fn, x in ((sinkhorn, np.exp(L[:3000] / 10)), (sinkhorn_logits, L)):
        (p0, i0), (p1, i1) = both(lambda a: fn(a, iters=20, return_info=True), monkeypatch, x)
        identical((p0, i0.row_residual, i0.col_residual, i0.log_r, i0.log_c),
                  (p1, i1.row_residual, i1.col_residual, i1.log_r, i1.log_c))


def test_kernels_load_when_they_pay(monkeypatch):
    monkeypatch.setattr(_compiled, "_LOADED", {})
    monkeypatch.setattr(_compiled, "_SPENT", defaultdict(float))
    half = int(0.6 * _compiled.AUTO_SECONDS / _compiled.COST["sweeps"])         # 0.3 s of numpy work
    monkeypatch.setenv("BIRKHOFF_COMPILED", "0")
    assert _compiled.kernels("sweeps", 10 * half) is None
    monkeypatch.setenv("BIRKHOFF_COMPILED", "auto")
    assert _compiled.kernels("sweeps", 16 * 20) is None                         # a one-shot call: numpy
    assert _compiled.kernels("sweeps", half) is None
    assert _compiled.kernels("sweeps", half) is not None                        # the work adds up
    monkeypatch.setattr(_compiled, "_LOADED", {})
    monkeypatch.setenv("BIRKHOFF_COMPILED", "1")
    assert _compiled.kernels("sweeps", 1) is not None


def test_import_birkhoff_does_not_import_numba():
    code = "import sys, birkhoff; birkhoff.sinkhorn([[1.0, 2.0], [3.0, 4.0]]); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_warmup_command(capsys, monkeypatch):
    # two families here: the others compile in their own test groups (their benchmarks warm them up),
    # so that no two workers compile the same family at once
    monkeypatch.setattr(_compiled, "FAMILIES", ("sweeps", "project"))
    assert main(["warmup", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "birkhoff.warmup/1" and set(report["families"]) == set(_compiled.FAMILIES)
    assert all(r["seconds"] >= 0 for r in report["families"].values())
    assert main(["warmup", "-q"]) == 0 and capsys.readouterr().out == ""


def test_projection_newton_agrees_with_numpy_and_hands_back_what_it_cannot_solve(monkeypatch):
    from birkhoff import project
    from birkhoff._compiled import project as compiled_project

    rng = np.random.default_rng(3)
    for n, B in ((2, 500), (3, 500), (4, 500), (8, 200), (16, 20), (64, 3)):   # the block round first above 8
        A = rng.standard_normal((B, n, n)) * 10.0 ** rng.integers(-3, 4, (B, 1, 1))
        p0, p1 = both(project, monkeypatch, A)
        assert p1.converged.all() and (p1.residual <= 1e-10).all()
        assert np.abs(p0.X - p1.X).max() <= 1e-12 * max(1.0, np.abs(A).max())
        # the duals are not unique (u + a, v - a; more where X's support is disconnected, or an entry
        # sits at 0 within the tolerance), but where X is clearly positive u_i + v_j = A_ij - X_ij
        s0, s1 = (p.u[:, :, None] + p.v[:, None, :] for p in (p0, p1))
        support = (p0.X > 1e-8) & (p1.X > 1e-8)
        assert np.allclose(s0[support], s1[support], rtol=1e-9, atol=1e-9 * max(1.0, np.abs(A).max()))
    real = compiled_project.newton_batch

    def failing(A, tol, scale, max_iter):             # a singular Newton system on every other matrix
        u, v, it, failed = real(A, tol, scale, max_iter)
        failed[::2] = True
        u[::2] = np.nan
        return u, v, it, failed

    monkeypatch.setattr(compiled_project, "newton_batch", failing)
    A = rng.standard_normal((20, 4, 4))
    p0, p1 = both(project, monkeypatch, A)
    assert np.abs(p0.X - p1.X).max() <= 1e-12 and p1.converged.all()
    from birkhoff.project import _solve                 # the handed-back members are solved, not left NaN

    u, v, _ = _solve(A, np.full(20, 1e-10), np.ones(20), 1000, compiled_project)
    assert np.isfinite(u).all() and np.isfinite(v).all()


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 8, 16])
def test_projection_centring_and_checks_are_the_numpy_paths(n):
    """The compiled centring and quality checks against the numpy formulas: bit-identical below n = 8
    (numpy sums short rows in order), within rounding above (numpy sums pairwise); the bounds hold
    either way. NaN duals, overflowing shifts and tolerances that force the entrywise bound included."""
    from birkhoff._compiled import project as K
    from birkhoff.project import _EPS, _gap, _quality

    rng = np.random.default_rng(n)
    B = 300
    A = rng.standard_normal((B, n, n)) * 10.0 ** rng.integers(-5, 6, (B, 1, 1))
    C, rows, cols, mean, size, top = K.centre_batch(A)
    rows0, cols0 = (A / n).sum(-1), (A / n).sum(-2)
    mean0 = (rows0 / n).sum(-1)
    C0 = A - rows0[:, :, None] - cols0[:, None, :] + mean0[:, None, None]
    exact = n < 8
    for x, y in ((C, C0), (rows, rows0), (cols, cols0), (mean, mean0), (size, np.abs(C0).max(axis=(1, 2))),
                 (top, np.abs(A).max(axis=(1, 2)))):
        assert np.array_equal(x, y) if exact else np.allclose(x, y, rtol=1e-13, atol=1e-13 * np.abs(A).max())
    u, v = rng.standard_normal((B, n)) * 0.1, rng.standard_normal((B, n)) * 0.1
    u[0, 0], u[1, 0], v[2, -1] = np.nan, 1e308, -1e308                  # NaN and overflowing shifts
    rep = (2.0 * n + 8.0) * _EPS * top
    for tol in (1e-10, 1e-300):                                         # 1e-300: every bound entrywise
        with np.errstate(all="ignore"):
            X0, res0, kkt0 = _quality(C, u, v, rep[:, None, None], tol)
            gap0 = _gap(X0, u, v)
            X1, res1, kkt1, gap1 = K.quality_batch(C, u, v, rep, tol)
        assert np.array_equal(X0, X1, equal_nan=True) and np.array_equal(kkt0, kkt1)
        assert np.array_equal(res0, res1) if exact else np.allclose(res0, res1, rtol=1e-12)
        assert np.allclose(gap0, gap1, rtol=1e-12, atol=1e-300, equal_nan=True)
        assert np.isinf(res1[0]) and np.isinf(kkt1[0]) and (res1[1:3] >= 0.5).all()   # they fail the check


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([2, 3, 4, 5, 8, 9, 17]), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_projection_compiled_path_passes_the_same_check(n, B, seed):
    from birkhoff import project

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((B, n, n)) * 10.0 ** rng.integers(-8, 9, (B, 1, 1))
    A[rng.random((B, n, n)) < 0.2] = 0.0
    with pytest.MonkeyPatch.context() as mp:
        p0, p1 = both(project, mp, A)
    assert p1.converged.all() and (p1.residual <= 1e-10).all()
    # two results each within the solver's tolerance (1e-10) of the projection
    assert np.abs(p0.X - p1.X).max() <= 4e-10


def _assign(cost):
    from birkhoff._compiled.bvn import _assignment

    n = cost.shape[0]
    sigma = np.empty(n, dtype=np.int64)
    ok = _assignment(np.asarray(cost, dtype=np.float64), n, sigma, np.empty(3 * n),
                     np.empty(3 * n, dtype=np.int64), np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.bool_))
    return sigma if ok else None


@pytest.mark.xdist_group("bvn")                   # with the module's "numba": the worker compiling the bvn family
@settings(max_examples=300, deadline=None)
@given(st.integers(1, 24), st.sampled_from(["01", "powers", "uniform", "sparse"]), st.integers(0, 2**32 - 1))
def test_assignment_is_scipys(n, kind, seed):
    """The compiled assignment returns scipy's ``linear_sum_assignment`` column for column, ties included
    (the costs the decomposition builds: 0/1 patterns, powers of two up to 2**1000 with inf)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    if kind == "01":
        cost = (rng.random((n, n)) < rng.random()).astype(float)
    elif kind == "powers":
        cost = np.ldexp(1.0, rng.integers(1, 11) * rng.integers(0, 1000 // 10, (n, n)))
        cost[rng.random((n, n)) < 0.3] = np.inf
    elif kind == "uniform":
        cost = rng.integers(0, 3, (n, n)).astype(float)
    else:
        cost = np.where(rng.random((n, n)) < 0.5, rng.random((n, n)), np.inf)
    try:
        expected = linear_sum_assignment(cost)[1]
    except ValueError:                               # infeasible
        expected = None
    got = _assign(cost)
    assert (got is None) == (expected is None)
    if expected is not None:
        assert np.array_equal(got, expected)


@pytest.mark.xdist_group("bvn")
@settings(max_examples=300, deadline=None)
@given(st.integers(1, 24), st.integers(0, 2**32 - 1))
def test_matching_is_scipys_zero_cost_assignment(n, seed):
    """The matching test (the assignment of the 0/1 cost ``R < t`` with its early exit and without the
    potentials): a permutation exactly when the optimum costs nothing, and then scipy's, column for column."""
    from scipy.optimize import linear_sum_assignment

    from birkhoff._compiled.bvn import _matching

    rng = np.random.default_rng(seed)
    R = np.where(rng.random((n, n)) < rng.random(), 0.0, rng.random((n, n)))
    t = rng.choice(R.ravel()) if rng.random() < 0.8 else rng.random()
    cost = (R < t).astype(float)
    expected = linear_sum_assignment(cost)[1]
    free = cost[np.arange(n), expected].sum() == 0.0
    sigma = np.empty(n, dtype=np.int64)
    assert _matching(R, t, n, sigma, np.empty(3 * n), np.empty(3 * n, dtype=np.int64)) == free
    if free:
        assert np.array_equal(sigma, expected)


@pytest.mark.xdist_group("bvn")
@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1100), st.sampled_from(["spread", "ties", "one exponent", "subnormal"]), st.integers(0, 2**32 - 1))
def test_radix_order_sorts_positive_floats(m, kind, seed):
    """The lexicographic step's ranks come from a radix sort of the keys' bits: it orders any positive
    floats (values across the float range, many equal, one binade, subnormal) as numpy's sort does."""
    from birkhoff._compiled.bvn import _ascending

    rng = np.random.default_rng(seed)
    if kind == "spread":
        keys = np.ldexp(rng.random(m) + 0.5, rng.integers(-1070, 1020, m))
    elif kind == "ties":
        keys = rng.choice(rng.random(max(1, m // 7)) + 1e-300, m)
    elif kind == "one exponent":
        keys = 1.0 + rng.random(m)
    else:
        keys = rng.integers(1, 2**52, m).view(np.float64) if m else np.empty(0)
    buffer = np.concatenate([keys, rng.random(5)])                 # the kernel sorts a prefix of its scratch
    order = _ascending(buffer, m)
    assert np.array_equal(np.sort(order), np.arange(m)) and np.array_equal(keys[order], np.sort(keys))


def _bvn_inputs():
    from birkhoff import sinkhorn

    rng = np.random.default_rng(38)
    yield np.ones((1, 1))
    yield np.full((7, 7), 1 / 7)                                      # every permutation ties
    for n in (2, 3, 5, 8, 13, 21, 32, 40):
        w = rng.dirichlet(np.ones(n * n))                             # a dense convex combination
        yield np.einsum("k,kij->ij", w, np.eye(n)[np.array([rng.permutation(n) for _ in range(n * n)])])
        w = rng.integers(1, 4, 3) / 1.0                               # three permutations, equal weights
        yield np.einsum("k,kij->ij", w / w.sum(), np.eye(n)[np.array([rng.permutation(n) for _ in range(3)])])
        A = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
        A = A + A[:, ::-1].T + np.eye(n) + np.eye(n)[::-1]             # sparse with total support
        yield sinkhorn(A, tol=1e-13)                                  # balanced to 1e-13


@pytest.mark.xdist_group("bvn")
def test_bvn_compiled_terms_are_the_numpy_paths(monkeypatch):
    """Term for term: the same permutations, the same weights, the same residual."""
    from birkhoff import bvn_decompose

    for P in _bvn_inputs():
        for limit in (None, 3):
            d0, d1 = both(lambda M: bvn_decompose(M, max_terms=limit), monkeypatch, P)
            assert np.array_equal(d0.perms, d1.perms) and np.array_equal(d0.weights, d1.weights)
            assert d0.residual == d1.residual and d1.weights.dtype == np.float64
    # exact mode stays on the Fraction path
    from fractions import Fraction

    F = np.array([[Fraction(1, 3), Fraction(2, 3)], [Fraction(2, 3), Fraction(1, 3)]], dtype=object)
    d0, d1 = both(bvn_decompose, monkeypatch, F)
    assert d1.exact and list(d0.weights) == list(d1.weights)


INTERVALS = ("spectral_radius", "spectral_norm", "sigma_min", "sigma2", "gain_forward", "gain_backward")


def _certify_inputs(rng, n, B):
    from birkhoff.testing.oracle import dyadic_ds, reducible, signed, sk20

    yield "sk20", np.stack([sk20(rng, n) for _ in range(B)])
    yield "sk20 tiny", np.ldexp(np.stack([sk20(rng, n) for _ in range(B)]), -900)
    yield "dyadic DS", np.stack([dyadic_ds(rng, n) for _ in range(B)]) * 2.0 ** rng.integers(-900, 900)
    yield "mixed", np.stack([signed(rng, n), reducible(rng, n), np.ldexp(sk20(rng, n), -1040),  # subnormal entries
                             np.abs(signed(rng, n)), signed(rng, n) * 2.0 ** rng.integers(-900, 900)])


@pytest.mark.xdist_group("certify")               # with the module's "numba": the worker compiling certify
@settings(max_examples=25, deadline=None)
@given(st.integers(1, 16), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_certify_compiled_agrees_with_numpy(n, B, seed):
    """Every field within a few ulps of the numpy path's (the same bounds, other summation orders and a
    Jacobi basis for LAPACK's); what the kernel hands back is the numpy path's exactly; the doubly
    stochastic inputs are certified by the kernel itself."""
    from birkhoff import certify_batch
    from birkhoff._compiled import certify as compiled_certify

    rng = np.random.default_rng(seed)
    for label, A in _certify_inputs(rng, n, B):
        with pytest.MonkeyPatch.context() as mp:
            c0, c1 = both(certify_batch, mp, A)
        handback = compiled_certify.certify_batch(A)[1]
        if label != "mixed":                         # handed back only where sigma_min is nearly singular
            with pytest.MonkeyPatch.context() as mp:     # the float bounds, before any exact inverse
                mp.setenv("BIRKHOFF_COMPILED", "0")
                mp.setattr(sys.modules["birkhoff.certify"], "_exact_sigma_min_where_wide", lambda M, smin: smin)
                smin = certify_batch(A).sigma_min
            with np.errstate(invalid="ignore"):
                wide = ~(smin[..., 1] - smin[..., 0] <= 1e-10 * smin[..., 1])    # kappa n u past ~1e-10
            assert not (handback & ~wide).any(), label
        for name in ("nonnegative", "doubly_stochastic", "exact"):
            assert np.array_equal(getattr(c0, name), getattr(c1, name)), (label, name)
        for name in ("row_residual", "col_residual"):
            assert np.allclose(getattr(c0, name), getattr(c1, name), rtol=1e-12, atol=0), (label, name)
        for name in INTERVALS:
            x, y = getattr(c0, name), getattr(c1, name)
            assert np.array_equal(x[handback], y[handback]), (label, name)
            width = np.maximum(x[..., 1] - x[..., 0], y[..., 1] - y[..., 0])[..., None]
            # the ends agree to the wider interval's width plus 1e-12 relative
            assert (np.abs(x - y) <= width + 1e-12 * np.abs(x) + 1e-300).all(), (label, name, x, y)


@pytest.mark.xdist_group("certify")
def test_certify_kernel_certifies_signed_matrices_itself():
    """A signed matrix's radius (|tr| / n and the similarity-Gershgorin enclosure in LAPACK's eigenbasis) is
    the kernel's own: none of 300 random signed 4x4 (complex eigenvalues among them) is handed back, and
    every interval agrees with the numpy path's to the wider one's width; radius, norm and sigma2 within 1e-12."""
    from birkhoff import certify_batch
    from birkhoff._compiled import certify as compiled_certify
    from birkhoff.testing.oracle import signed

    rng = np.random.default_rng(3)
    A = np.stack([signed(rng, 4) for _ in range(300)])
    assert (np.iscomplex(np.linalg.eigvals(A)).any(-1)).sum() > 50
    fields, handback = compiled_certify.certify_batch(A)
    assert not handback.any() and not fields["nonnegative"].any()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIRKHOFF_COMPILED", "0")
        c0 = certify_batch(A)
    for name in INTERVALS:
        x, y = getattr(c0, name), fields[name]
        width = np.maximum(x[..., 1] - x[..., 0], y[..., 1] - y[..., 0])[..., None]
        assert (np.abs(x - y) <= width + 1e-12 * np.abs(x)).all(), name
    for name in ("spectral_radius", "spectral_norm", "sigma2"):
        assert (fields[name][:, 1] - fields[name][:, 0] <= 1e-12 * fields[name][:, 1]).all(), name


@settings(max_examples=300)
@given(st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308,
                                                              1.7976931348623157e308, -1.7976931348623157e308])))
def test_certify_kernels_outward_steps_are_one_or_two_ulps(x):
    """The kernels' ``_up`` / ``_down`` (Rump et al.'s successor): strictly past ``x``, at most two ulps."""
    from birkhoff._compiled import certify as compiled_certify

    up, down = compiled_certify._up(x), compiled_certify._down(x)
    if np.isinf(x):
        assert (up, down) == ((x, np.finfo(float).max) if x > 0 else (-np.finfo(float).max, x))
        return
    with np.errstate(over="ignore"):                  # nextafter(MAX, inf) is inf
        assert x < up <= np.nextafter(np.nextafter(x, np.inf), np.inf)
        assert np.nextafter(np.nextafter(x, -np.inf), -np.inf) <= down < x
