"""Certificates never claim less than the exact truth (Fractions / mpmath at 40 digits)."""

import json
from fractions import Fraction as F

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from birkhoff import (InvalidArgumentError, InvalidMatrixError, certify, certify_batch, certify_product,
                      composite_lipschitz_bound, from_permutations, hc_lipschitz_bound, sinkhorn)
from strategies import exact_ds, positive_matrix, square

fr = np.vectorize(F, otypes=[object])


def truth(M):
    """Exact residuals/gains (Fractions) and rho, ||.||_2 at 40 digits beyond the entries' own decimal
    span (mpmath; more if its QR stalls). The span matters: at 40 digits mpmath's QR deflates an entry
    1e-57 times the norm as zero, and [[0, 1], [e, 0]] then has "radius" 0 instead of sqrt(e)."""
    Q = fr(M) if M.dtype != object else M
    rows, cols = Q.sum(1), Q.sum(0)
    sizes = [abs(x) for x in Q.flat if x != 0]
    span = int(mpmath.log10(max(sizes) / min(sizes))) + 1 if sizes else 0
    for dps in (40 + span, 80 + span, 160 + span):      # QR can stall on entries ~1e-40 apart at 40 digits
        with mpmath.workdps(dps):
            A = mpmath.matrix([[mpmath.mpf(x.numerator) / x.denominator for x in r] for r in Q])
            try:
                E = mpmath.eig(A, left=False, right=False)
            except RuntimeError:
                continue
            rho = max(abs(ev) for ev in (E[0] if isinstance(E, tuple) else E))
            norm = max(mpmath.svd_r(A, compute_uv=False))
            break
    return dict(row_res=max(abs(r - 1) for r in rows), col_res=max(abs(c - 1) for c in cols),
                gf=max(sum(abs(x) for x in r) for r in Q), gb=max(sum(abs(x) for x in c) for c in Q.T),
                rho=rho, norm=norm)


def inside(iv, x):
    """lo <= x <= hi, with x known to ~40 digits (a 1e-30 slack covers mpmath's own error)."""
    lo, hi = iv
    with mpmath.workdps(40):
        slack = mpmath.mpf(10) ** -30
        return mpmath.mpf(lo) - slack <= x <= mpmath.mpf(hi) + slack


def check_against_truth(M, cert):
    t = truth(M)
    assert F(cert.row_residual) >= t["row_res"] and F(cert.col_residual) >= t["col_res"]
    assert cert.exact == (t["row_res"] == 0 and t["col_res"] == 0)
    assert F(cert.gain_forward[0]) <= t["gf"] <= F(cert.gain_forward[1])
    assert F(cert.gain_backward[0]) <= t["gb"] <= F(cert.gain_backward[1])
    assert inside(cert.spectral_radius, t["rho"])
    assert inside(cert.spectral_norm, t["norm"])


@given(exact_ds())
def test_exact_ds_certifies_exact(P):
    c = certify(P)
    assert c.exact and c.doubly_stochastic and c.nonnegative
    assert c.spectral_radius == (1.0, 1.0) and c.spectral_norm == (1.0, 1.0)
    assert c.gain_forward == (1.0, 1.0) and c.gain_backward == (1.0, 1.0)


@given(square(st.floats(0, 10), n_max=5))
def test_nonnegative_float_bounds_contain_truth(M):
    check_against_truth(M, certify(M))


@given(square(st.floats(-1e3, 1e3), n_max=5))
def test_signed_float_bounds_contain_truth(M):
    check_against_truth(M, certify(M))


@given(positive_matrix(n_max=5, log10_span=3.0))
def test_sinkhorn_like_bounds_are_tight(M):
    from birkhoff import sinkhorn
    P = sinkhorn(M)
    c = certify(P, tol=1e-11)
    check_against_truth(P, c)
    assert c.doubly_stochastic
    assert c.spectral_radius[1] - c.spectral_radius[0] < 1e-11


def test_issue_rows():
    c = certify([[0.1, 0.2, 0.7], [0.7, 0.1, 0.2], [0.2, 0.7, 0.1]])
    assert not c.exact and c.row_residual > 0 and not c.doubly_stochastic
    assert certify([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]]).exact


def test_tol_and_non_ds():
    c = certify([[0.5, 0.5], [0.25, 0.75]])
    assert c.row_residual == 0 and c.col_residual == 0.25 and not c.doubly_stochastic
    assert certify([[0.5, 0.5], [0.25, 0.75]], tol=0.25).doubly_stochastic
    assert not certify([[1.5, -0.5], [-0.5, 1.5]]).doubly_stochastic  # exact margins, signed
    with pytest.raises(InvalidArgumentError):
        certify(np.eye(2), tol=-1)


def test_exact_rational_input_is_not_rounded():
    third = F(1, 3)
    c = certify(np.array([[third, 1 - third], [1 - third, third]], dtype=object))
    assert c.exact
    c = certify(np.array([[third, third], [third, third]], dtype=object))
    assert not c.exact and c.row_residual >= 1 / 3 and F(c.gain_forward[0]) <= F(2, 3) <= F(c.gain_forward[1])


def test_json_schema_and_str():
    c = certify(np.eye(3))
    d = json.loads(c.to_json())
    assert d["schema"] == "birkhoff.certificate/2" and d["kind"] == "matrix"
    assert set(d) == {"schema", "kind", "n", "nonnegative", "row_residual", "col_residual",
                      "doubly_stochastic", "exact", "spectral_radius", "spectral_norm",
                      "gain_forward", "gain_backward", "sigma2", "sigma_min", "tol", "distance", "min_tol", "infinite"}
    assert d["infinite"] == []
    assert d["spectral_radius"] == [1.0, 1.0] and "exact" in str(c)
    big = certify([[1e308, 1e308], [1e308, 1e308]]).to_dict()
    json.dumps(big, allow_nan=False)  # strict JSON: an infinite end is null, its field listed
    assert big["spectral_norm"][1] is None and "spectral_norm" in big["infinite"]
    assert all(x is None or isinstance(x, float) for k in big["infinite"]
               for x in (big[k] if isinstance(big[k], list) else [big[k]]))


@given(st.integers(0, 2**32 - 1))
def test_batch_agrees_with_single(seed):
    rng = np.random.default_rng(seed)
    Ms = rng.random((7, 4, 4))
    Ms[0] = 0.25
    Ms[1] = -Ms[1]
    b = certify_batch(Ms)
    assert len(b) == 7 and b.exact[0] and not b.exact[2]
    for i in range(7):
        single, batched = certify(Ms[i]), b[i]
        check_against_truth(Ms[i], batched)
        assert single.exact == batched.exact and single.nonnegative == batched.nonnegative


def test_batch_keeps_leading_shape():
    b = certify_batch(np.full((2, 3, 4, 4), 0.25))
    assert b.exact.shape == (2, 3) and b.spectral_norm.shape == (2, 3, 2) and b.exact.all()


@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_product_bounds_contain_exact_product(seed, L):
    rng = np.random.default_rng(seed)
    Ms = rng.random((L, 3, 3)) + 0.1
    Ms /= Ms.sum(-1, keepdims=True)            # row-stochastic, float rounding left in
    exact = fr(Ms[0])
    for m in Ms[1:]:
        exact = fr(m).dot(exact)
    c = certify_product(Ms)
    check_against_truth(exact, c)
    assert c.depth == L


def test_product_of_exact_ds_is_exact_and_fast():
    rng = np.random.default_rng(0)
    from birkhoff import all_permutations
    w = rng.dirichlet(np.ones(24), size=1000)
    w_q = np.array([[F(int(round(x * 2**20)), 1) for x in row] for row in w[:50]], dtype=object)
    w_q = w_q / w_q.sum(axis=1, keepdims=True)
    chain = from_permutations(w_q, all_permutations(4))        # 50 exact DS factors
    c = certify_product(chain)
    assert c.exact and c.doubly_stochastic and c.gain_forward == (1.0, 1.0)
    assert c.spectral_radius == (1.0, 1.0) and c.spectral_norm == (1.0, 1.0)
    floats = certify_product(from_permutations(w, all_permutations(4)))  # 1000 float factors
    assert floats.depth == 1000 and abs(floats.gain_forward[1] - 1) < 1e-9


def test_product_of_unconstrained_grows():
    rng = np.random.default_rng(1)
    Ms = np.eye(4) + 0.1 * rng.standard_normal((200, 4, 4))
    c = certify_product(Ms)
    assert c.gain_forward[0] > 10 and c.factor_gain_forward >= c.gain_forward[1]


def test_hc_lipschitz_bound_dominates_jacobian():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        n, C = 4, 3
        H_res = rng.random((n, n))
        h_pre, h_post = rng.standard_normal(n), rng.standard_normal(n)
        W = torch.randn(C, C, dtype=torch.float64) / 2
        lip_f = float(torch.linalg.matrix_norm(W, 2))

        def layer(x):
            Hr = torch.as_tensor(H_res)
            hp, hq = torch.as_tensor(h_pre), torch.as_tensor(h_post)
            return Hr @ x + hq[:, None] * torch.tanh((hp @ x) @ W.T)[None, :]

        x = torch.randn(n, C, dtype=torch.float64)
        J = torch.autograd.functional.jacobian(layer, x).reshape(n * C, n * C)
        measured = float(torch.linalg.matrix_norm(J, 2))
        bound = hc_lipschitz_bound(H_res, h_pre, h_post, lip_f=lip_f)
        assert bound >= measured
    two = composite_lipschitz_bound([(H_res, h_pre, h_post, lip_f)] * 2)
    assert two >= bound ** 2 * (1 - 1e-15)


def test_hc_lipschitz_bad_shapes():
    with pytest.raises(InvalidMatrixError):
        hc_lipschitz_bound(np.eye(3), np.ones(2), np.ones(3))
    with pytest.raises(InvalidMatrixError):
        composite_lipschitz_bound([])


@pytest.mark.parametrize("n", [65, 120])
def test_large_matrices_use_power_iteration_witnesses(n):
    """Above DIRECT_MAX_N the witness vectors come from power iterations: bounds stay rigorous and tight."""
    rng = np.random.default_rng(n)
    A = rng.random((n, n))
    P = sinkhorn(A, tol=1e-13)
    for M in (A, P, A - 0.5):
        c = certify(M)
        sigma = np.linalg.svd(M, compute_uv=False)[0]
        rho = np.max(np.abs(np.linalg.eigvals(M)))
        assert c.spectral_norm[0] <= sigma * (1 + 1e-12) and sigma <= c.spectral_norm[1] * (1 + 1e-12)
        assert c.spectral_radius[0] <= rho * (1 + 1e-12) and rho <= c.spectral_radius[1] * (1 + 1e-12)
        assert c.spectral_norm[0] >= sigma * (1 - 1e-9)                        # the witness is good
        if (M >= 0).all():                     # signed matrices: the upper bound is |M|'s (Schur test)
            assert c.spectral_norm[1] - c.spectral_norm[0] <= 1e-6 * sigma
    assert c.spectral_norm[0] > 0
    assert certify(P).spectral_radius[1] - 1 < 1e-12
