"""The cache-blocked fixed-count sweeps (mHC's SK_t on token batches) against the plain loop."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from birkhoff import sinkhorn, sinkhorn_logits
from birkhoff.sinkhorn import _scale
from birkhoff.sweeps import CHUNK, fixed_sweeps


def plain(A: np.ndarray, iters: int) -> np.ndarray:
    """``iters`` row-then-column normalisations, the textbook loop (zero sums left alone)."""
    P = A.astype(float).copy()
    for _ in range(iters):
        s = P.sum(-1, keepdims=True)
        P = P / np.where(s > 0, s, 1.0)
        s = P.sum(-2, keepdims=True)
        P = P / np.where(s > 0, s, 1.0)
    return P


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.integers(1, 3 * CHUNK // 2), st.integers(1, 25), st.integers(0, 2 ** 32 - 1),
       st.floats(0, 20))
def test_fixed_sweeps_match_the_plain_loop(n, B, iters, seed, spread):
    rng = np.random.default_rng(seed)
    A = np.exp(rng.uniform(-spread, spread, (B, n, n)))
    A[rng.random((B, n, n)) < 0.1] = 0.0                      # zeros, empty rows and columns included
    before = A.copy()
    P, r, c, rows, cols = fixed_sweeps(A, iters)
    np.testing.assert_array_equal(A, before)                 # the input is not touched
    np.testing.assert_allclose(P, plain(A, iters), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r[:, :, None] * A * c[:, None, :], P, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(rows, np.abs(P.sum(-1) - 1).max(-1), atol=4e-16 * n)     # summation order aside
    np.testing.assert_allclose(cols, np.abs(P.sum(-2) - 1).max(-1), atol=4e-16 * n)


def test_blocked_path_gives_the_einsum_path_result():
    """``sinkhorn(iters=20)`` on a big batch (blocked) = the same call on small pieces (einsum)."""
    rng = np.random.default_rng(0)
    A = np.exp(rng.standard_normal((3000, 4, 4)))
    P, info = sinkhorn(A, iters=20, return_info=True)
    pieces = [sinkhorn(A[i:i + 100], iters=20, return_info=True) for i in range(0, 3000, 100)]
    np.testing.assert_allclose(P, np.concatenate([p for p, _ in pieces]), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(info.row_residual, np.concatenate([i.row_residual for _, i in pieces]), atol=1e-15)
    np.testing.assert_allclose(np.exp(info.log_r[..., :, None] + info.log_c[..., None, :]) * A, P, rtol=1e-12)
    assert not info.log_domain and info.iterations == 20


def test_blocked_batch_shapes_and_zero_matrices():
    A = np.random.default_rng(1).random((40, 30, 3, 3))
    A[3, 4] = 0.0
    P = sinkhorn(A, iters=7)
    assert P.shape == A.shape and np.all(P[3, 4] == 0) and np.isfinite(P).all()
    np.testing.assert_allclose(P[5, 6], sinkhorn(A[5, 6], iters=7), rtol=1e-13)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.floats(1, 500))
def test_sinkhorn_logits_blocked_equals_log_domain(seed, wide):
    """Logits with a small span take the linear blocked path, wide ones the log domain; both
    give the log-domain result (the reference) to rounding."""
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((1500, 4, 4))
    L[rng.random(1500) < 0.2] *= wide
    P, info = sinkhorn_logits(L, 20, return_info=True)
    P0, info0 = _scale(L, None, iters=20, tol=0.0, max_iter=1, log_domain=True)
    np.testing.assert_allclose(P, P0, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(info.log_r[..., :, None] + info.log_c[..., None, :],
                               info0.log_r[..., :, None] + info0.log_c[..., None, :], rtol=1e-12, atol=1e-9)
    # both end on a column normalisation: columns exact to rounding, which grows with the
    # logits' size in the log domain (exp of log A + f + g); the two paths round differently
    ulps = 16 * np.finfo(float).eps * (1 + np.abs(L).max(axis=(-2, -1)))
    assert (info.col_residual <= ulps).all() and (info0.col_residual <= ulps).all()
    np.testing.assert_allclose(info.row_residual, info0.row_residual, rtol=1e-9, atol=1e-14)
