"""Certificates against an independent high-precision oracle (``birkhoff.testing.oracle``: mpmath at
60 digits from the exact rationals the floats denote), class by class.

For every class: each interval contains the truth, and the relative width of the spectral
norm and radius is at most 1e-8 (an ``inf`` end only where the truth overflows). The class and
scale tests run on both paths: the numpy reference and the compiled kernels (``BIRKHOFF_COMPILED=1``;
the members those hand back are certified by the numpy path).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birkhoff import _compiled, certify, certify_batch, certify_product, hc_lipschitz_bound
from birkhoff.sinkhorn import sinkhorn_logits
from birkhoff.testing.oracle import CLASSES, DPS, contains, nonnormal, reducible, signed, sk20, truth

WIDTH = 1e-8
PATHS = ["numpy", "compiled"]


def check(M: np.ndarray, width: float = WIDTH, path: str = "numpy") -> None:
    with pytest.MonkeyPatch.context() as mp:           # the compiled kernels stay out of the worker's other tests
        mp.setattr(_compiled, "_LOADED", dict(_compiled._LOADED))
        mp.setenv("BIRKHOFF_COMPILED", "1" if path == "compiled" else "0")
        c = certify(M)
    truths = truth(M)
    # a defective eigenvalue at 0 (a nilpotent u v^T) comes out of the oracle's eig as about the square root of
    # its precision, not 0: radii below that are checked for containment only
    resolved = mpmath.mpf(10) ** (-DPS // 2 + 5) * truths["spectral_norm"]
    for name, t in truths.items():
        lo, hi = getattr(c, name)
        assert contains(lo, hi, t), (name, lo, hi, t)
        if name in ("spectral_radius", "spectral_norm") and t > 0 and (name == "spectral_norm" or t > resolved):
            assert np.isfinite(hi), (name, lo, hi, t)
            assert (mpmath.mpf(hi) - mpmath.mpf(lo)) / t <= width, (name, lo, hi, t)


# every class on both paths (what the compiled kernels hand back is certified by the numpy path)
CASES = [(name, path) for name in sorted(CLASSES) for path in PATHS]


@pytest.mark.xdist_group("numba")
@pytest.mark.xdist_group("certify")      # the group "certify_numba": one worker compiles the certify family
@pytest.mark.parametrize("name, path", CASES)
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8))
def test_class_contains_truth_and_is_tight(name, path, seed, n):
    check(CLASSES[name](np.random.default_rng(seed), n), path=path)


@pytest.mark.xdist_group("numba")
@pytest.mark.xdist_group("certify")      # the group "certify_numba": one worker compiles the certify family
@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), exponent=st.integers(-300, 300))
def test_every_scale_is_finite_and_tight(path, seed, n, exponent):
    """Power-of-two prescaling: 1e-300 .. 1e300 entries certify as tightly as 1 (a doubly stochastic
    matrix too, which the compiled kernels certify themselves)."""
    rng = np.random.default_rng(seed)
    check(signed(rng, n) * 10.0 ** exponent, path=path)
    check(np.ldexp(sk20(rng, n), int(exponent * 3.3)), path=path)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e200, 1e300])
def test_extreme_scales_of_a_fixed_matrix(scale):
    check(np.array([[1.0, 2.0], [3.0, -1.0]]) * scale)


def test_minus_a_derangement_has_radius_one():
    P = -np.roll(np.eye(5), 1, axis=0)
    c = certify(P)
    assert c.spectral_radius == (1.0, 1.0) or c.spectral_radius[1] - c.spectral_radius[0] <= 1e-12
    check(P)


@pytest.mark.parametrize("n", [16, pytest.param(32, marks=pytest.mark.heavy)])
def test_issue_examples_of_loose_classes_are_tight(n):
    """The reducible and near-Jordan-free cases of the arb sweep: widths now <= 1e-8. Both sizes take the
    same path (n <= ``DECOMPOSE_MAX_N``); n = 32 (7 s of mpmath ``eig`` for the truth) is heavy."""
    rng = np.random.default_rng(7)
    check(reducible(rng, n))
    check(signed(rng, n))


def test_triangular_radius_is_exact_from_the_frobenius_normal_form():
    """A triangular matrix with a strong upper part: eigenvectors too ill-conditioned for any
    similarity at n = 64, but its strongly connected blocks are 1 x 1: rho = max |M_ii|."""
    M = nonnormal(np.random.default_rng(5), 64)
    assert certify(M).spectral_radius == (np.abs(np.diag(M)).max(),) * 2
    P = np.random.default_rng(6).permutation(64)
    assert certify(M[np.ix_(P, P)]).spectral_radius == (np.abs(np.diag(M)).max(),) * 2   # hidden by a permutation
    check(nonnormal(np.random.default_rng(7), 16))


def test_overflowing_truth_may_be_inf():
    c = certify(np.full((2, 2), 1e308))
    assert c.spectral_norm[1] == np.inf and c.spectral_norm[0] >= 1.7e308


def test_sigma2_of_a_product_of_ten_sk20_factors():
    rng = np.random.default_rng(0)
    Ms = [sinkhorn_logits(rng.standard_normal((4, 4))) for _ in range(10)]
    c = certify_product(Ms)
    assert c.sigma2[1] <= 1e-3
    with mpmath.workdps(DPS):
        P = mpmath.eye(4)
        for M in Ms:
            P = mpmath.matrix([[mpmath.mpf(float(x)) for x in row] for row in M]) * P
        t = max(mpmath.svd_r(P - mpmath.ones(4, 4) / 4, compute_uv=False))
    assert contains(*c.sigma2, t)


def test_sigma2_product_of_exact_factors_uses_the_factor_bound():
    from fractions import Fraction as F
    H = np.array([[F(3, 4), F(1, 4)], [F(1, 4), F(3, 4)]], dtype=object)    # sigma2 = 1/2 exactly
    c = certify_product([H] * 30)
    assert c.exact and c.factor_sigma2 <= 2.0 ** -30 * (1 + 1e-12)
    assert c.sigma2[0] <= 2.0 ** -30 <= c.sigma2[1] <= c.factor_sigma2


def test_batch_agrees_with_single_on_the_new_fields():
    rng = np.random.default_rng(3)
    Ms = np.stack([signed(rng, 4), sk20(rng, 4), reducible(rng, 4) * 1e250])
    b = certify_batch(Ms)
    for i in range(3):
        c = certify(Ms[i])
        for name in ("sigma2", "sigma_min", "spectral_norm", "spectral_radius"):
            assert tuple(getattr(b, name)[i]) == getattr(c, name)


def test_lipschitz_bound_is_finite_at_large_scale():
    H = np.eye(3) * 1e300
    bound = hc_lipschitz_bound(H, [1e300] * 3, [1e-300] * 3)
    assert np.isfinite(bound) and 1e300 <= bound <= 1e300 * (1 + 1e-12) + 3


def test_batch_of_one_unbatched_matrix():
    """``certify_batch`` of one ``(n, n)`` matrix: 0-d fields, the same intervals as ``certify``."""
    M = np.random.default_rng(0).random((3, 3)) - 0.5
    b, c = certify_batch(M), certify(M)
    assert b.nonnegative.shape == () and tuple(b.spectral_radius) == c.spectral_radius
    assert tuple(b.sigma2) == c.sigma2


@pytest.fixture
def past_the_decompositions(monkeypatch):
    """The thresholds of the decompositions set below n = 300 (they are 1024 and 512): the cheap bounds' path
    that larger matrices take, tested at a size that keeps the test fast."""
    import sys

    module = sys.modules["birkhoff.certify"]
    monkeypatch.setattr(module, "SVD_MAX_N", 256)
    monkeypatch.setattr(module, "DECOMPOSE_MAX_N", 256)


def test_large_reducible_radius_from_a_shifted_perron_vector(past_the_decompositions):
    """n = 300, past the decompositions: a block triangular matrix whose Perron vector has zeros.
    ``rho = 400`` exactly (the leading block is ``400 J / 128``); Collatz-Wielandt on the support and
    at shifted witnesses gives it, where one positivised witness gave ``[0, 1600]``-wide intervals."""
    rng = np.random.default_rng(0)
    M = rng.random((300, 300))
    M[:128, :128] = 400 / 128
    M[128:, :128] = 0.0
    lo, hi = certify(M).spectral_radius
    assert lo <= 400 <= hi and hi - lo <= 1e-8 * 400, (lo, hi)


def test_large_sk20_norm_from_the_schur_test(past_the_decompositions):
    """n = 300 ``SK_20`` output of large logits (no proved SVD at this size): the Schur test at the ARPACK
    singular vectors (nonnegative for a nonnegative matrix) meets the witness lower bound, around numpy's
    float value."""
    M = sk20(np.random.default_rng(1), 300)
    lo, hi = certify(M).spectral_norm
    s = np.linalg.svd(M, compute_uv=False)[0]
    assert lo <= s * (1 + 1e-12) and s * (1 - 1e-12) <= hi and hi - lo <= 1e-8 * hi, (lo, hi, s)


def test_no_cliff_at_257():
    """n = 300 keeps the proved SVD (``sigma2`` was 0.5 wide and ``sigma_min`` ``[0, ||M||]`` past 256): both
    within 1e-6, around numpy's float values."""
    M = sk20(np.random.default_rng(2), 300)
    c = certify(M)
    s = np.linalg.svd(M, compute_uv=False)
    s2 = np.linalg.svd(M - 1 / 300, compute_uv=False)[0]
    for (lo, hi), value in ((c.sigma2, s2), (c.sigma_min, s[-1]), (c.spectral_norm, s[0])):
        assert lo <= value * (1 + 1e-10) and value * (1 - 1e-10) <= hi and hi - lo <= 1e-6 * hi, (lo, hi, value)
