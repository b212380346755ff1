"""Every solver on ill-scaled input (entries spanning 1e-300..1e300, one dominant entry, signed,
rank one): what it returns passed its own check, in exact arithmetic here, or it raised a typed
error. Never a NaN, never a wrong "converged"."""

from fractions import Fraction

import numpy as np
from hypothesis import example, given, settings

from birkhoff import (BirkhoffError, bvn_decompose, kron, kron_apply, project, quantize, sinkhorn, sinkhorn_logits)
from strategies import ill_scaled

EPS = np.finfo(np.float64).eps


def exact(X) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(X)


def marginal_error(X) -> float:
    Q = exact(X)
    return float(max(abs(s - 1) for s in [*Q.sum(0), *Q.sum(1)]))


@settings(max_examples=60, deadline=None)
@given(ill_scaled())
def test_sinkhorn_bvn_and_quantize(A):
    """Sinkhorn's converged result is DS within tol (its float sums, up to their n eps rounding); its
    BvN decomposition reconstructs it within what its margins allow; its quantization has exact
    margins and stays within 1 of scale * P in rational arithmetic."""
    n = A.shape[0]
    try:
        P, info = sinkhorn(np.abs(A), return_info=True)
    except BirkhoffError:
        return
    assert info.converged and np.isfinite(P).all() and (P >= 0).all()
    assert marginal_error(P) <= 1e-12 + 4 * n * EPS
    d = bvn_decompose(P)
    assert np.abs(d.matrix() - P).max() <= n * (1e-12 + 8 * n * EPS) + 8 * n * EPS
    Q, s = quantize(P)
    assert (Q.sum(0) == s).all() and (Q.sum(1) == s).all() and ((0 <= Q) & (Q <= s)).all()
    assert all(abs(q - s * p) < 1 for q, p in zip(Q.flat, exact(P).flat))


@settings(max_examples=40, deadline=None)
@given(ill_scaled())
@example(np.array([[-57.71127758, -121.88891506, -27.89442147], [59.89980768, 1.91952973, -31.71904396],
                   [-97.65716823, -41.53597678, -0.16622709]]))        # log domain: exp's error was 16 u
def test_sinkhorn_logits(L):
    """mHC's SK_t on ill-scaled logits: finite, in [0, 1], the last sweep's columns summing to 1 (to the
    rounding of one division and an n-term sum, in the log domain too)."""
    P = sinkhorn_logits(L, iters=20)
    assert np.isfinite(P).all() and ((0 <= P) & (P <= 1)).all()
    assert np.abs(P.sum(-2) - 1).max() <= 4 * L.shape[0] * EPS


@settings(max_examples=60, deadline=None)
@given(ill_scaled(n_max=4), ill_scaled(n_max=4))
@example(np.array([[-2.25247384e+28]]), np.array([[-1.8734301, 7.28363783e+279, -1.66230118],   # 1.6e308: fits
                                                 [0.1576416, -1.03150619, 1.50159067],
                                                 [0.651907981, 1.3309679, 1.02449449]]))
def test_kron_and_kron_apply(U, V):
    """The float product is the exact one up to rounding, or an InvalidMatrixError when it overflows."""
    exact_K = np.kron(exact(U), exact(V))
    top = Fraction(np.finfo(np.float64).max)
    overflows = any(abs(k) > top for k in exact_K.flat)
    try:
        K = kron(U, V)
    except BirkhoffError:
        assert overflows
    else:
        assert np.isfinite(K).all()
        tol = 2 * Fraction(EPS)                      # exact: 2 |e| eps of an entry near MAX is past the float range
        assert all(abs(Fraction(k) - e) <= abs(e) * tol + Fraction(2) ** -1074 for k, e in zip(K.flat, exact_K.flat))
    x = np.ones(U.shape[0] * V.shape[0])
    try:
        y = kron_apply([U, V], x)
    except BirkhoffError:
        return
    assert np.isfinite(y).all()


@settings(max_examples=60, deadline=None)
@given(ill_scaled())
def test_project(A):
    try:
        p = project(A)
    except BirkhoffError:
        return
    assert p.converged and (p.X >= 0).all() and marginal_error(p.X) <= 1e-10
