"""The spectral radius where LAPACK's eigenvector basis is singular or far from it (issue 39's cliffs):
rank-one, Jordan-like, nilpotent, near-reducible and mixed-magnitude matrices get tight intervals
that contain the 60-digit truth (``birkhoff.testing.oracle``)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from birkhoff import certify
from birkhoff.enclose import power_radius_bounds, schur_radius_bounds
from birkhoff.testing.oracle import contains, truth


def tight(M: np.ndarray, width: float) -> tuple[float, float]:
    lo, hi = certify(M).spectral_radius
    t = truth(M)["spectral_radius"]
    assert contains(lo, hi, t), (lo, hi, t)
    assert mpmath.mpf(hi) - mpmath.mpf(lo) <= width * t, (lo, hi, t)
    return lo, hi


def test_integer_rank_one_of_the_issue():
    """An 8x8 ``u v^T`` with radius 7 got ``[0.875, 38.9]``, a 64x64 one with radius 34 ``[0.53, 276]``."""
    rng = np.random.default_rng(0)
    for n, rho in ((8, 7), (64, 34)):
        while True:
            u, v = rng.integers(-3, 4, n), rng.integers(-3, 4, n)
            if abs(u @ v) == rho:
                break
        lo, hi = certify(np.outer(u, v).astype(float)).spectral_radius      # the radius is |u . v| exactly
        assert lo <= rho <= hi and hi - lo <= 1e-9 * rho, (n, lo, hi)


def test_rank_one_sample_has_no_trivial_interval():
    """The issue's sample: one in four signed small-integer rank-one matrices fell back to ``[|tr|/n, ||M||]``;
    now every non-nilpotent one is within 1e-9, a nilpotent one (radius 0) within ``sqrt(u) ||M||``."""
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 12))
        u, v = rng.integers(-3, 4, n), rng.integers(-3, 4, n)
        M = np.outer(u, v).astype(float)
        lo, hi = certify(M).spectral_radius
        rho = abs(float(u @ v))
        assert lo <= rho <= hi
        assert hi - lo <= (1e-9 * rho if rho else 1e-7 * np.linalg.norm(M, 2)), (seed, lo, hi, rho)


def test_jordan_block_with_a_tiny_corner():
    """``[1, 1.879]`` for ``1 + 1e-75`` before; now ``||J^m||^(1/m)`` bounds it to 1e-11."""
    J = np.eye(4) + np.eye(4, k=1)
    J[3, 0] = 1e-300
    lo, hi = certify(J).spectral_radius
    assert lo <= 1.0 <= hi and hi - lo <= 1e-11
    for k in (10, 30, 60):
        J = np.eye(8) + np.eye(8, k=1)
        J[-1, 0] += 10.0 ** -k
        tight(J, 1e-9)


def test_near_reducible_with_subnormal_zeros():
    """The issue's 4x4 with 1e-322 off its reducible pattern: ``[0.559, 1.215]`` for 0.5593."""
    R = np.array([[0.3, 0.2, 0, 0], [0.1, 0.5, 0, 0], [0.2, 0.1, 0.4, 0.3], [0.3, 0.2, 0.2, 0.1]])
    R[R == 0] = 1e-322
    tight(R, 1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_mixed_magnitudes_are_balanced(seed):
    """Entries ``N(0, 1) 2**k``, ``k`` in -300..300: balancing by powers of two first (a similarity)."""
    rng = np.random.default_rng(seed)
    M = np.ldexp(rng.standard_normal((6, 6)), rng.integers(-300, 300, (6, 6)))
    tight(M, 1e-9)


@pytest.mark.parametrize("seed", [8, 27, 58, 73])
def test_mixed_magnitudes_the_similarity_bounds_lost(seed):
    """4 of the 7 of 100 such matrices (``k`` in -300..300) whose radius kept ``|tr| / n`` as its lower end
    (0.83 and 1.0 wide: seeds 8 and 58, two equal moduli; 2.6e-8 and 5.3e-7: seeds 27 and 73, three equal
    moduli; the other three are in docs/BENCHMARKS.md): a real eigenvalue proved by a sign change of the exact
    characteristic polynomial raises it to within 1e-11; ``sigma_min`` (10 of the 100 were up to
    ``[0, 1e73]``) comes from the exact inverse where the float bounds are wider than 1e-6, within 1e-9
    either way; both contain the truth."""
    rng = np.random.default_rng(seed)
    M = np.ldexp(rng.standard_normal((6, 6)), rng.integers(-300, 301, (6, 6)))
    tight(M, 1e-11)
    lo, hi = certify(M).sigma_min
    assert contains(lo, hi, truth(M)["sigma_min"]) and hi - lo <= 1e-9 * hi


@pytest.mark.parametrize("lam, delta", [(3.0, 2.0 ** -40), (-7.5e200, 2.0 ** -40), (1e-300, 2.0 ** -20)])
def test_a_real_eigenvalue_is_proved_by_a_sign_change(lam, delta):
    """``diag(lam, 1, -2)`` in a rational basis: the floor is ``|lam| (1 - delta)`` for an estimate ``lam``
    off by less than ``delta / 2``, and None for an estimate nowhere near an eigenvalue."""
    from birkhoff.certify import _real_eigenvalue_floor
    from birkhoff.exact_chain import exact_chain

    V = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]])
    M = V @ np.diag([lam, 1.0, -2.0]) @ np.linalg.inv(V)            # float: the eigenvalues move a little
    N, d = exact_chain(M[None])
    estimate = float(np.linalg.eigvals(M).real[np.argmax(np.abs(np.linalg.eigvals(M)))])
    floor = _real_eigenvalue_floor(N, d, estimate)
    assert floor is not None and floor <= abs(estimate) and abs(estimate) - floor <= 2 * delta * abs(estimate)
    with mpmath.workdps(400):
        ev = mpmath.eig(mpmath.matrix(M.tolist()))[0]
    assert max(abs(x) for x in ev) >= floor
    assert _real_eigenvalue_floor(N, d, 1.5 * estimate) is None


def test_many_loose_members_keep_their_float_bounds():
    """The exact refinements run within one work budget a call: 60 such 6 x 6 in one batch exceed it and
    keep the float bounds (the first one alone gets the exact ones)."""
    from birkhoff import certify_batch

    rng = np.random.default_rng(10)
    M = np.ldexp(rng.standard_normal((6, 6)), rng.integers(-300, 301, (6, 6)))
    batch = certify_batch(np.stack([M] * 60))
    single = certify(M)
    assert (batch.spectral_radius[0][1] - batch.spectral_radius[0][0]) > 1e-3 * batch.spectral_radius[0][1]
    assert single.spectral_radius[1] - single.spectral_radius[0] <= 1e-11 * single.spectral_radius[1]


def test_schur_and_power_bounds_directly():
    M = np.outer([1.0, 2, -1, 3, 0, 1, 2, -2], [3.0, -1, 2, 0, 1, 1, -1, 2])     # radius 6
    lo, hi = schur_radius_bounds(M, M, M)
    assert lo <= 6.0 <= hi and hi - lo <= 1e-10
    N = np.outer([1.0, 1.0], [1.0, -1.0])                                          # nilpotent: radius 0
    lo, hi = power_radius_bounds(N, N)
    assert lo == 0.0 and hi <= 1e-7                     # about sqrt(u): N @ N is 0, enclosed with its rounding
    P = np.random.default_rng(1).random((6, 6))
    lo, hi = power_radius_bounds(P, P)
    t = truth(P)["spectral_radius"]
    assert contains(lo, hi, t) and hi - lo <= 1e-8 * hi


@pytest.mark.parametrize("kappa", [1e6, 1e10, 1e14])
def test_sigma_min_is_relative_not_floored(kappa):
    """``sigma_min`` below ``n u ||M||`` was ``[0, ...]``; through an inverse it is about ``kappa n u`` wide."""
    rng = np.random.default_rng(int(np.log10(kappa)))
    U, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    V, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    M = U @ np.diag([1, 0.5, 0.2, 0.1, 1 / kappa]) @ V.T
    lo, hi = certify(M).sigma_min
    t = truth(M)["sigma_min"]
    assert contains(lo, hi, t) and lo > 0, (lo, hi, t)
    assert mpmath.mpf(hi) - mpmath.mpf(lo) <= 100 * kappa * 2.0 ** -53 * 5 * t, (lo, hi, t)


@pytest.mark.parametrize("n, seed", [(4, 0), (4, 1), (9, 2), (16, 3)])
def test_sigma_min_of_mixed_magnitudes_is_relative_to_its_own_scale(n, seed):
    """``D S D^-1`` with ``D`` spanning ``2**+-250`` (the oracle's ``mixed 1e+-150`` class): kappa about 1e87,
    so an inverse's 2-norm residual is useless; equilibrated by powers of two, ``M^-1`` is enclosed entry by
    entry at its own scale and ``sigma_min`` (about 1e-44 .. 1e-72 here) comes out 1e-11 wide."""
    from birkhoff.testing.oracle import mixed

    M = mixed(np.random.default_rng(seed), n)
    c = certify(M)
    t = truth(M)["sigma_min"]
    lo, hi = c.sigma_min
    assert contains(lo, hi, t), (lo, hi, t)
    assert mpmath.mpf(hi) - mpmath.mpf(lo) <= 1e-11 * t and t < 1e-30 * c.spectral_norm[0], (lo, hi, t)


def test_equilibrated_sigma_min_on_row_and_column_scalings():
    """``D1 S D2`` with independent row and column scalings (not a similarity), and a whole batch at once."""
    rng = np.random.default_rng(7)
    S = rng.standard_normal((6, 8, 8))
    M = np.ldexp(S, rng.integers(-200, 200, (6, 8, 1)) + rng.integers(-200, 200, (6, 1, 8)))
    from birkhoff import certify_batch

    batch = certify_batch(M)
    for k in range(len(M)):
        lo, hi = batch.sigma_min[k]
        t = truth(M[k])["sigma_min"]
        assert contains(lo, hi, t) and hi - lo <= 1e-10 * hi, (k, lo, hi, t)
