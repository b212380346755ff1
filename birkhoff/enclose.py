"""Rigorous enclosures of singular values and of the spectral radius from a float decomposition.

A float SVD or eigendecomposition of the midpoint only supplies a near-diagonalising basis;
everything claimed is then proved on the interval matrix in outward-rounded arithmetic
(``exact.matmul_enclosure``), so the bounds hold for every matrix in ``[M_lo, M_hi]``:

* **singular values** (Gram matrix + Gershgorin): with ``V`` the computed right singular
  vectors, ``B = (M V)^T (M V)`` is nearly diagonal and ``G = V^T V`` nearly ``I``; every
  eigenvalue of ``G`` lies in ``[1 - d, 1 + d]`` (Gershgorin, ``d < 1``), and for ``x = V y``
  the Rayleigh quotient of ``M^T M`` is ``y^T B y / y^T G y``, so
  ``sigma_max^2 <= lambda_max(B) / (1 - d)`` and ``sigma_min^2 >= lambda_min(B) / (1 + d)``
  with Gershgorin bounds on ``B``'s extreme eigenvalues.
* **spectral radius** (Gershgorin after a similarity, in the spirit of Bauer-Fike): with
  ``X`` the computed eigenvectors and ``Y ~ X^-1``, ``E = Y X - I`` and ``B = Y M X``; if
  ``e = ||E||_inf < 1`` then ``X^-1 M X = B + F`` with ``||F||_inf <= e ||B||_inf / (1 - e)``,
  so every eigenvalue of ``M`` lies in a disc ``|z - B_ii| <= r_i(B) + ||F||_inf``, and a
  connected union of ``k`` such discs apart from the others holds exactly ``k`` eigenvalues
  (Gershgorin's second theorem). ``rho <= max_i |B_ii| + R_i``; ``rho >=`` the smallest
  ``|B_ii| - R_i`` over the component of the disc farthest from 0.

Both are tight to a few ulps times ``n^2`` when the decomposition is well conditioned;
where it is not (a defective matrix, ``d`` or ``e >= 1``) they return the trivial interval
and the caller's other bounds stand. Entries are assumed prescaled to magnitude <= 1
(``exact.scale_exponent``), so squares neither overflow nor underflow.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components

from .exact import (ETA, add_down, add_up, deflate, div_down, div_up, gamma, inflate, magnitude, matmul_enclosure,
                    mul_up, sqrt_down, sqrt_up)

__all__ = ["DECOMPOSE_MAX_N", "block_radius_bounds", "gram_deviation", "norm_ratio", "svd_bases",
           "singular_value_bounds", "spectral_radius_bounds"]

_INF = np.inf
DECOMPOSE_MAX_N = 256      # a batched O(n^3) decomposition per matrix; larger n keeps the cheaper bounds


def _off_row_sums(mag: np.ndarray) -> np.ndarray:
    """Upper bound of ``sum_{j != i} mag_ij`` for each row ``i``."""
    n = mag.shape[-1]
    off = np.where(np.eye(n, dtype=bool), 0.0, mag)
    return inflate(np.sum(off, -1), gamma(n), n * ETA)


def gram_deviation(V: np.ndarray) -> np.ndarray:
    """Upper bound of ``||V^T V - I||_inf``, which bounds ``|lambda(V^T V) - 1|``."""
    Vt = np.swapaxes(V, -1, -2)
    lo, hi = matmul_enclosure(Vt, Vt, V, V)
    n = V.shape[-1]
    eye = np.eye(n, dtype=bool)
    dev = np.where(eye, np.maximum(add_up(hi, -1.0), add_up(1.0, -lo)), magnitude(lo, hi)[1])
    return inflate(np.sum(dev, -1), gamma(n), n * ETA).max(-1)


def svd_bases(mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float left and right singular vectors (columns, the top one first) of each finite
    ``mid (..., n, n)``; ``I`` and ``I`` if LAPACK fails."""
    try:
        U, _, Vt = np.linalg.svd(mid)
        return U, np.swapaxes(Vt, -1, -2)
    except np.linalg.LinAlgError:
        eye = np.broadcast_to(np.eye(mid.shape[-1]), mid.shape).copy()
        return eye, eye


def singular_value_bounds(M_lo: np.ndarray, M_hi: np.ndarray, V: np.ndarray, d: np.ndarray | None = None
                          ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Enclosures ``(lo, hi)`` of ``sigma_max`` and ``sigma_min`` of each ``[M_lo, M_hi] (..., n, n)``.

    ``V`` is any float basis, tight when it is close to the right singular vectors of a
    matrix in the interval (:func:`svd_bases`); ``d`` bounds
    ``||V^T V - I||_inf`` (computed when not given). Returns ``(0, inf)`` ends where ``V`` is
    too far from orthogonal to prove anything.
    """
    d = gram_deviation(V) if d is None else d
    W_lo, W_hi = matmul_enclosure(M_lo, M_hi, V, V)
    B_lo, B_hi = matmul_enclosure(np.swapaxes(W_lo, -1, -2), np.swapaxes(W_hi, -1, -2), W_lo, W_hi)
    diag_lo, diag_hi = np.diagonal(B_lo, 0, -2, -1), np.diagonal(B_hi, 0, -2, -1)
    r = _off_row_sums(magnitude(B_lo, B_hi)[1])
    lam_max = np.max(add_up(diag_hi, r), -1)
    lam_min = np.maximum(np.min(add_down(diag_lo, -r), -1), 0.0)
    ok = (d < 1) & np.isfinite(lam_max)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        hi = sqrt_up(div_up(lam_max, np.where(ok, add_down(1.0, -d), 1.0)))
        lo = sqrt_down(div_down(lam_min, np.where(ok, add_up(1.0, d), 1.0)))
    # witnesses ||M v|| / ||v|| at every column v of V (the columns of W = M V)
    ratio_lo, ratio_hi = norm_ratio(np.swapaxes(W_lo, -1, -2), np.swapaxes(W_hi, -1, -2), np.swapaxes(V, -1, -2))
    top_lo, low_hi = np.max(ratio_lo, -1), np.min(ratio_hi, -1)
    smax = (top_lo, np.where(ok, np.maximum(hi, top_lo), _INF))
    smin = (np.where(ok, np.minimum(lo, low_hi), 0.0), low_hi)
    return smax, smin


def norm_ratio(y_lo: np.ndarray, y_hi: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of ``||y|| / ||v||`` for ``y`` in ``[y_lo, y_hi]`` and a float vector ``v``."""
    n = v.shape[-1]
    g = gamma(n + 1)
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        mig, mag = magnitude(y_lo, y_hi)
        ny_lo = sqrt_down(deflate(np.sum(mig * mig, -1), 2 * g, 4 * n * ETA))
        ny_hi = sqrt_up(inflate(np.sum(mag * mag, -1), 2 * g, 4 * n * ETA))
        nv_lo = sqrt_down(deflate(np.sum(v * v, -1), 2 * g, 4 * n * ETA))
        nv_hi = sqrt_up(inflate(np.sum(v * v, -1), 2 * g, 4 * n * ETA))
        lo = np.where(nv_hi > 0, div_down(ny_lo, np.where(nv_hi > 0, nv_hi, 1.0)), 0.0)
        hi = np.where(nv_lo > 0, div_up(ny_hi, np.where(nv_lo > 0, nv_lo, 1.0)), _INF)
    return np.nan_to_num(lo, nan=0.0), np.where(np.isnan(hi), _INF, hi)


def _cmatmul(A: tuple, B: tuple) -> tuple:
    """Enclosure of a complex interval product; a complex interval matrix is
    ``(re_lo, re_hi, im_lo, im_hi)``."""
    ar_lo, ar_hi, ai_lo, ai_hi = A
    br_lo, br_hi, bi_lo, bi_hi = B
    rr = matmul_enclosure(ar_lo, ar_hi, br_lo, br_hi)
    ii = matmul_enclosure(ai_lo, ai_hi, bi_lo, bi_hi)
    ri = matmul_enclosure(ar_lo, ar_hi, bi_lo, bi_hi)
    ir = matmul_enclosure(ai_lo, ai_hi, br_lo, br_hi)
    return (add_down(rr[0], -ii[1]), add_up(rr[1], -ii[0]), add_down(ri[0], ir[0]), add_up(ri[1], ir[1]))


def _point(Z: np.ndarray) -> tuple:
    re, im = Z.real.copy(), Z.imag.copy()
    return (re, re, im, im)


def _cabs_hi(re_lo, re_hi, im_lo, im_hi) -> np.ndarray:
    """Upper bound of ``|z|`` over a complex interval."""
    a, b = magnitude(re_lo, re_hi)[1], magnitude(im_lo, im_hi)[1]
    with np.errstate(over="ignore", invalid="ignore"):
        return sqrt_up(inflate(a * a + b * b, 2 * gamma(2), 4 * ETA))


def _cabs_lo(re_lo, re_hi, im_lo, im_hi) -> np.ndarray:
    """Lower bound of ``|z|`` over a complex interval."""
    a, b = magnitude(re_lo, re_hi)[0], magnitude(im_lo, im_hi)[0]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return sqrt_down(deflate(a * a + b * b, 2 * gamma(2), 4 * ETA))


def spectral_radius_bounds(M_lo: np.ndarray, M_hi: np.ndarray, mid: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure ``(lo, hi)`` of the spectral radius of each ``[M_lo, M_hi] (..., n, n)`` (real).

    ``mid`` is a finite float matrix inside the interval. Returns ``(0, inf)`` where the
    computed eigenvector basis is too ill-conditioned to prove anything (e.g. a Jordan block).
    """
    n = mid.shape[-1]
    trivial = (np.zeros(mid.shape[:-2]), np.full(mid.shape[:-2], _INF))
    try:
        _, X = np.linalg.eig(mid)
        Y = np.linalg.inv(X)
    except np.linalg.LinAlgError:
        return trivial
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        return trivial
    Yi, Xi = _point(Y), _point(X)
    E = _cmatmul(Yi, Xi)
    eye = np.eye(n, dtype=bool)
    E_abs = _cabs_hi(np.where(eye, add_down(E[0], -1.0), E[0]), np.where(eye, add_up(E[1], -1.0), E[1]), *E[2:])
    e = np.max(inflate(np.sum(E_abs, -1), gamma(n), n * ETA), -1)
    zeros = np.zeros_like(M_lo)
    B = _cmatmul(_cmatmul(Yi, (M_lo, M_hi, zeros, zeros)), Xi)
    B_abs = _cabs_hi(*B)
    normB = np.max(inflate(np.sum(B_abs, -1), gamma(n), n * ETA), -1)
    ok = (e < 1) & np.isfinite(normB)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f = np.where(ok, div_up(mul_up(e, normB), np.where(ok, add_down(1.0, -e), 1.0)), _INF)
    R = add_up(_off_row_sums(B_abs), f[..., None])
    diag = tuple(np.diagonal(part, 0, -2, -1) for part in B)
    c_hi, c_lo = _cabs_hi(*diag), _cabs_lo(*diag)
    hi = np.max(add_up(c_hi, R), -1)
    lo = _component_floor(diag, R, add_down(c_lo, -R))
    return np.where(ok, np.maximum(lo, 0.0), 0.0), np.where(ok, hi, _INF)


def _component_floor(centres: tuple, R: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """``min floors_i`` over the connected component of Gershgorin discs (centre, radius ``R``)
    that contains the disc of largest floor: that union, apart from the other discs, holds
    at least one eigenvalue, every point of which has modulus ``>= floors_i`` for some ``i``."""
    re_lo, re_hi, im_lo, im_hi = centres
    n = R.shape[-1]
    # discs i and j may touch unless the centres' distance provably exceeds R_i + R_j
    gap_re = np.maximum(re_lo[..., :, None] - re_hi[..., None, :], re_lo[..., None, :] - re_hi[..., :, None])
    gap_im = np.maximum(im_lo[..., :, None] - im_hi[..., None, :], im_lo[..., None, :] - im_hi[..., :, None])
    gap_re, gap_im = np.maximum(gap_re, 0.0), np.maximum(gap_im, 0.0)
    with np.errstate(under="ignore"):
        dist = sqrt_down(deflate(gap_re * gap_re + gap_im * gap_im, 2 * gamma(2), 4 * ETA))
    touch = (dist <= add_up(R[..., :, None], R[..., None, :])) | np.eye(n, dtype=bool)
    reach = touch
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 2)))))):
        reach = (reach.astype(np.float64) @ reach.astype(np.float64)) > 0
    start = np.argmax(floors, -1)
    member = np.take_along_axis(reach, start[..., None, None], -2)[..., 0, :]
    return np.min(np.where(member, floors, _INF), -1)


def block_radius_bounds(M_lo: np.ndarray, M_hi: np.ndarray) -> tuple[float, float] | None:
    """Enclosure of the spectral radius of one reducible ``[M_lo, M_hi] (n, n)`` from its Frobenius
    normal form; None when the matrix is irreducible.

    The strongly connected components of the pattern ``M_ij != 0`` order ``M`` block
    triangular, so its eigenvalues are those of the diagonal blocks ``M[b, b]``:
    ``rho = max_b rho(M[b, b])``; a 1 x 1 block contributes ``|M_ii|`` exactly (a triangular
    matrix certifies its radius from the diagonal, however ill-conditioned its eigenvectors).
    """
    pattern = (M_lo != 0) | (M_hi != 0)
    count, labels = connected_components(pattern, directed=True, connection="strong")
    if count == 1:
        return None
    lo, hi = 0.0, 0.0
    for b in range(count):
        idx = np.flatnonzero(labels == b)
        B_lo, B_hi = M_lo[np.ix_(idx, idx)], M_hi[np.ix_(idx, idx)]
        if idx.size == 1:
            b_lo, b_hi = (float(x[0, 0]) for x in magnitude(B_lo, B_hi))
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                mid = B_lo + 0.5 * (B_hi - B_lo)
            b_lo, b_hi = (float(x) for x in spectral_radius_bounds(B_lo, B_hi, np.where(np.isfinite(mid), mid, 0.0)))
            rows = float(inflate(np.sum(magnitude(B_lo, B_hi)[1], -1), gamma(idx.size), idx.size * ETA).max())
            b_hi = min(b_hi, rows)
        lo, hi = max(lo, b_lo), max(hi, b_hi)
    return lo, hi
