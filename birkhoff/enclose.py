"""Rigorous enclosures of singular values and of the spectral radius from a float decomposition.

A float SVD or eigendecomposition of the midpoint only supplies a near-diagonalising basis;
everything claimed is then proved with a priori rounding-error bounds (and interval products,
``exact.matmul_enclosure``, for the radius), so the bounds hold for every matrix in ``[M_lo, M_hi]``:

* **singular values** (Gram matrix + Gershgorin): with ``V`` the computed right singular
  vectors and ``A`` the midpoint, ``W = fl(A V)`` is within ``eps = gamma ||A||_F ||V||_F`` of
  ``A V``; ``W^T W`` is nearly diagonal and ``V^T V`` nearly ``I``, so Gershgorin on the two
  float Gram matrices (with their a priori errors) encloses ``sigma(W)`` and ``sigma(V)``, and
  ``sigma_max(A) <= (sigma_max(W) + eps) / sigma_min(V)``,
  ``sigma_min(A) >= (sigma_min(W) - eps) / sigma_max(V)``; Weyl's theorem widens them by the
  interval's radius ``||M - A||_F``. Three float matrix products, no interval arithmetic.
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

from .exact import (ETA, U, add_down, add_up, deflate, div_down, div_up, gamma, inflate, magnitude,
                    matmul_enclosure, mid_rad, mul_up, scale_down, scale_up, scale_exponent, sqrt_down, sqrt_up,
                    norm_inf_up, sum_squares_down, sum_squares_up)

__all__ = ["DECOMPOSE_MAX_N", "LOOSE", "REFINE", "SVD_MAX_N", "block_radius_bounds", "norm_ratio", "power_radius_bounds", "schur_radius_bounds",
           "svd_bases", "singular_value_bounds", "spectral_radius_bounds"]

_INF = np.inf
# The proofs below cost dense linear algebra per matrix: an SVD and a few products for the singular values
# (about 3 s at n = 1024 on one core), an eigendecomposition and complex interval products for the radius
# (about 6 s at n = 512, 35 s at 1024); larger n keeps the cheaper bounds.
SVD_MAX_N = 1024
DECOMPOSE_MAX_N = 512
LOOSE = 2.0 ** -40         # an enclosure wider than this (relative) is worth the next, costlier method
# ... and wider than this, worth the costliest ones (balancing, a Schur basis, powers): the similarity's own
# width grows like n^2 u, so a signed 64 x 64 matrix's radius ends near 1e-10 wide and would pay for all
# of them (10 -> 28 ms) to gain digits past the ninth
REFINE = 2.0 ** -30


def _off_row_sums(mag: np.ndarray) -> np.ndarray:
    """Upper bound of ``sum_{j != i} mag_ij`` for each row ``i``."""
    n = mag.shape[-1]
    off = np.where(np.eye(n, dtype=bool), 0.0, mag)
    return inflate(np.sum(off, -1), gamma(n), n * ETA)


def svd_bases(mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float left and right singular vectors (columns, the top one first) of each finite
    ``mid (..., n, n)``; ``I`` and ``I`` if LAPACK fails."""
    try:
        U, _, Vt = np.linalg.svd(mid)
        return U, np.swapaxes(Vt, -1, -2)
    except np.linalg.LinAlgError:
        eye = np.broadcast_to(np.eye(mid.shape[-1]), mid.shape).copy()
        return eye, eye


def _gram_eigen_bounds(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Enclosure ``(lo, hi)`` of every eigenvalue of the exact ``X^T X`` for float ``X (..., m, n)``, and the
    upper bounds ``c`` of ``X``'s column norms it uses.

    Gershgorin on ``B = fl(X^T X)`` with its a priori error
    ``|B_ij - (X^T X)_ij| <= gamma_{m+2} |x_i| |x_j| + m eta`` (Cauchy-Schwarz on the columns ``x_i``).
    """
    m, n = X.shape[-2:]
    B = np.swapaxes(X, -1, -2) @ X
    c = sqrt_up(sum_squares_up(X, (-2,)))                       # column norms, rounded up
    err = gamma(m + 2) * c * np.sum(c, -1, keepdims=True) + n * m * ETA
    off = np.where(np.eye(n, dtype=bool), 0.0, np.abs(B))
    r = inflate(np.sum(off, -1) + err, 4 * gamma(n + 4), 2 * n * ETA)
    diag = np.diagonal(B, 0, -2, -1)
    return np.min(add_down(diag, -r), -1), np.max(add_up(diag, r), -1), c


def singular_value_bounds(M_lo: np.ndarray, M_hi: np.ndarray, V: np.ndarray
                          ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Enclosures ``(lo, hi)`` of ``sigma_max`` and ``sigma_min`` of each ``[M_lo, M_hi] (..., n, n)``.

    ``V`` is any float basis, tight when it is close to the right singular vectors (:func:`svd_bases`).
    With ``A`` the midpoint and ``W = fl(A V)``: ``||W - A V||_2 <= eps = gamma ||A||_F ||V||_F``;
    ``sigma(V)^2`` and ``sigma(W)^2`` lie in the Gershgorin enclosures of :func:`_gram_eigen_bounds`;
    ``sigma_max(A) <= (sigma_max(W) + eps) / sigma_min(V)``, ``sigma_min(A) >= (sigma_min(W) - eps) /
    sigma_max(V)``, the columns ``v_j`` are witnesses ``||A v_j|| / ||v_j||``, and Weyl's theorem widens
    everything by the radius ``||M - A||_F``. Returns ``(0, inf)`` ends where ``V`` is too far from
    orthogonal to prove anything.
    """
    n = V.shape[-1]
    A, R = mid_rad(M_lo, M_hi)
    bounded = np.isfinite(R).all(axis=(-2, -1)) if R is not None else np.ones(A.shape[:-2], dtype=bool)
    A = np.where(bounded[..., None, None], A, 0.0)
    rad = np.zeros(A.shape[:-2]) if R is None else np.where(bounded, sqrt_up(sum_squares_up(R, (-2, -1))), _INF)
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        W = A @ V
        eps = inflate(gamma(n + 2) * sqrt_up(sum_squares_up(np.abs(A), (-2, -1))) *
                      sqrt_up(sum_squares_up(V, (-2, -1))), 4 * U, n * n * ETA)
        g_lo, g_hi, vj_hi = _gram_eigen_bounds(V)          # vj_hi, wj_hi: column norms, rounded up
        w_lo, w_hi, wj_hi = _gram_eigen_bounds(W)
        ok = (g_lo > 0) & np.isfinite(w_hi) & bounded
        v_lo, v_hi = sqrt_down(np.where(ok, g_lo, 1.0)), sqrt_up(g_hi)
        hi = div_up(add_up(sqrt_up(w_hi), eps), v_lo)
        lo = div_down(np.maximum(add_down(sqrt_down(np.maximum(w_lo, 0.0)), -eps), 0.0), v_hi)
        # witnesses: ||A v_j|| / ||v_j|| for every column of V, with ||A v_j - W_j|| <= eps
        wj_lo, vj_lo = sqrt_down(sum_squares_down(W, (-2,))), sqrt_down(sum_squares_down(V, (-2,)))
        top_lo = np.max(div_down(np.maximum(add_down(wj_lo, -eps[..., None]), 0.0), vj_hi), -1)
        low_hi = np.min(np.where(vj_lo > 0, div_up(add_up(wj_hi, eps[..., None]), np.where(vj_lo > 0, vj_lo, 1.0)),
                                 _INF), -1)
        smax = (np.maximum(add_down(top_lo, -rad), 0.0), np.where(ok, add_up(np.maximum(hi, top_lo), rad), _INF))
        smin = (np.where(ok, np.maximum(add_down(np.minimum(lo, low_hi), -rad), 0.0), 0.0), add_up(low_hi, rad))
    return smax, smin


def norm_ratio(y_lo: np.ndarray, y_hi: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of ``||y|| / ||v||`` for ``y`` in ``[y_lo, y_hi]`` and a float vector ``v``."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        mig, mag = magnitude(y_lo, y_hi)
        ny_lo, ny_hi = sqrt_down(sum_squares_down(mig, (-1,))), sqrt_up(sum_squares_up(mag, (-1,)))
        nv_lo, nv_hi = sqrt_down(sum_squares_down(v, (-1,))), sqrt_up(sum_squares_up(v, (-1,)))
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
    lo, hi = _similarity_bounds(M_lo, M_hi, mid)
    with np.errstate(invalid="ignore", over="ignore"):
        loose = ~(hi - lo <= REFINE * hi) | ~np.isfinite(hi)
    if loose.any():              # balanced: the same eigenvalues, so both enclosures hold
        B_lo, B_hi, B_mid, changed = _balanced(M_lo[loose], M_hi[loose], mid[loose])
        if changed.any():
            idx = np.flatnonzero(loose.ravel())[changed.ravel()]
            b_lo, b_hi = _similarity_bounds(B_lo[changed], B_hi[changed], B_mid[changed])
            lo.ravel()[idx] = np.maximum(lo.ravel()[idx], b_lo)
            hi.ravel()[idx] = np.minimum(hi.ravel()[idx], b_hi)
    return lo, hi


def _balanced(M_lo: np.ndarray, M_hi: np.ndarray, mid: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``D^-1 [M_lo, M_hi] D`` (rounded outward, exact unless an entry leaves the normal range), ``D^-1 mid D``
    and where ``D != I``, for LAPACK's balancing ``D`` of ``mid`` (powers of two, ``scipy.linalg.matrix_balance``
    without permutation): a similarity, so the same eigenvalues, and a better conditioned eigenbasis when the
    entries span many orders of magnitude."""
    from scipy.linalg import matrix_balance

    k = np.zeros(mid.shape, dtype=np.int64)
    for idx in np.ndindex(mid.shape[:-2]):
        with np.errstate(all="ignore"):
            scale = matrix_balance(mid[idx], permute=False, separate=True)[1][0]
        if np.isfinite(scale).all() and (scale > 0).all():
            p = np.frexp(scale)[1] - 1                          # scale = 2**p exactly
            k[idx] = p[None, :] - p[:, None]                    # entry (i, j) times 2**(p_j - p_i)
    changed = np.asarray(k.any(axis=(-2, -1)))
    with np.errstate(over="ignore", under="ignore"):
        return scale_down(M_lo, k), scale_up(M_hi, k), np.ldexp(mid, k), changed


def _transformed(M_lo: np.ndarray, M_hi: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple:
    """``[M_lo, M_hi]`` in the basis ``X`` with ``Y ~ X^-1`` (complex, float): ``(|E|, e, B, |B|, ||B||_inf)``,
    ``E = Y X - I`` and ``e >= ||E||_inf``, ``B = Y M X`` (complex interval products, upper bounds of the
    moduli): ``X^-1 M X = B + F`` with ``||F||_inf <= e ||B||_inf / (1 - e)`` where ``e < 1``."""
    n = X.shape[-1]
    Yi, Xi = _point(Y), _point(X)
    E = _cmatmul(Yi, Xi)
    eye = np.eye(n, dtype=bool)
    E_abs = _cabs_hi(np.where(eye, add_down(E[0], -1.0), E[0]), np.where(eye, add_up(E[1], -1.0), E[1]), *E[2:])
    e = norm_inf_up(E_abs)
    zeros = np.zeros_like(M_lo)
    B = _cmatmul(_cmatmul(Yi, (M_lo, M_hi, zeros, zeros)), Xi)
    B_abs = _cabs_hi(*B)
    return E_abs, e, B, B_abs, norm_inf_up(B_abs)


def _similarity_bounds(M_lo: np.ndarray, M_hi: np.ndarray, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`spectral_radius_bounds` in LAPACK's eigenvector basis of ``mid``, unbalanced."""
    trivial = (np.zeros(mid.shape[:-2]), np.full(mid.shape[:-2], _INF))
    if mid.size == 0:
        return trivial
    try:
        _, X = np.linalg.eig(mid)
        Y = np.linalg.inv(X)
    except np.linalg.LinAlgError:
        return trivial
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        return trivial
    _, e, B, B_abs, normB = _transformed(M_lo, M_hi, X, Y)
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
    # a square that overflows deflates to the largest float, whose root (1.3e154) is still a lower bound
    with np.errstate(under="ignore", over="ignore"):
        dist = sqrt_down(deflate(gap_re * gap_re + gap_im * gap_im, 2 * gamma(2), 4 * ETA))
    touch = (dist <= add_up(R[..., :, None], R[..., None, :])) | np.eye(n, dtype=bool)
    reach = touch
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 2)))))):
        reach = (reach.astype(np.float64) @ reach.astype(np.float64)) > 0
    start = np.argmax(floors, -1)
    member = np.take_along_axis(reach, start[..., None, None], -2)[..., 0, :]
    return np.min(np.where(member, floors, _INF), -1)


SCHUR_GRADES = tuple(2.0 ** -k for k in range(7, 50, 7))   # the scalings tried by schur_radius_bounds


def schur_radius_bounds(M_lo: np.ndarray, M_hi: np.ndarray, mid: np.ndarray) -> tuple[float, float]:
    """Enclosure of the spectral radius of one ``[M_lo, M_hi] (n, n)`` in a Schur basis: for a matrix whose
    eigenvector basis is singular or far from it while its dominant eigenvalues are apart from the rest
    (a rank-one ``u v^T``: ``n - 1`` eigenvalues at 0).

    ``mid = Q T Q^H`` (complex Schur, the eigenvalues of largest modulus first: ``k`` of them); ``Q`` is
    unitary to rounding, so ``B = Q^H M Q`` (interval products) is ``M`` in a well-conditioned basis,
    upper triangular but for rounding, and ``Q^-1 M Q = B + F`` with ``||F||_inf <= e ||B||_inf / (1 - e)``,
    ``e = ||Q^H Q - I||_inf``. Gershgorin on ``D^-1 (B + F) D``, ``D = diag(1 (k times), d, ..., d)``:
    the dominant rows' discs lose ``B``'s upper right block times ``d``, the others gain the rounding of the
    lower left block over ``d``; ``F`` is bounded entrywise (``|(I + E)^-1 - I| |B|``), so its
    scaled rows stay at the rounding level in the dominant rows; the best of :data:`SCHUR_GRADES`.
    Upper bound: the farthest disc; lower bound: the component floor of :func:`spectral_radius_bounds`.
    ``(0, inf)`` where nothing is proved.
    """
    from scipy.linalg import schur

    n = mid.shape[-1]
    try:
        lam = np.linalg.eigvals(mid)
        top = float(np.abs(lam).max())
        if not (np.isfinite(top) and top > 0):
            return 0.0, _INF
        T, Q, k = schur(mid, output="complex", sort=lambda z: abs(z) >= top * (1 - 1e-8))
    except (np.linalg.LinAlgError, ValueError):
        return 0.0, _INF
    if not (np.isfinite(Q).all() and 0 < k):
        return 0.0, _INF
    E_abs, e, B, B_abs, normB = _transformed(M_lo, M_hi, Q, Q.conj().T)
    e, normB = float(e), float(normB)
    if not (e < 1 and np.isfinite(normB)):
        return 0.0, _INF
    # F = ((I + E)^-1 - I) B entrywise: |(I + E)^-1 - I| <= |E| + e / (1 - e) (|E| 1) 1^T (its rows sum to <= e / (1 - e))
    grow = float(div_up(e, add_down(1.0, -e)))
    N_abs = inflate(E_abs + grow * inflate(np.sum(E_abs, -1), gamma(n), n * ETA)[:, None], 4 * U, 2 * ETA)
    F_abs = inflate(N_abs @ B_abs, 2 * gamma(n + 2), 2 * n * ETA)
    off = np.where(np.eye(n, dtype=bool), 0.0, B_abs) + F_abs        # F's diagonal moves the centres
    diag = tuple(np.diagonal(part) for part in B)
    c_hi, c_lo = _cabs_hi(*diag), _cabs_lo(*diag)
    lo, hi = 0.0, _INF
    for d in SCHUR_GRADES:
        g = np.where(np.arange(n) < k, 1.0, d)
        with np.errstate(over="ignore", under="ignore"):
            scaled = inflate(off * g[None, :] / g[:, None], 4 * U, 2 * ETA)   # two roundings, one ulp each
        R = inflate(np.sum(scaled, -1), gamma(n), n * ETA)
        hi = min(hi, float(np.max(add_up(c_hi, R))))
        lo = max(lo, float(_component_floor(diag, R, add_down(c_lo, -R))))
    return max(lo, 0.0), hi


def power_radius_bounds(K_lo: np.ndarray, K_hi: np.ndarray, levels: int = 48) -> tuple[float, float]:
    """Enclosure of the spectral radius of one ``[K_lo, K_hi] (n, n)`` from its powers: ``rho <= ||K^m||_inf^(1/m)``
    and, for ``K >= 0``, ``rho >= (min_i (K^m 1)_i)^(1/m)`` (the smallest row sum bounds the Perron root of a
    nonnegative matrix from below), for ``m = 2, 4, ..., 2**levels`` (repeated squaring in interval
    products, each power rescaled by a power of two; the roots taken in ``mpmath.iv`` interval
    arithmetic), the best of them. Tight where an eigenvector
    basis is not: a Jordan block's ``||J^m||`` grows like ``m^(n-1)``, whose ``m``-th root tends to 1; a
    nilpotent ``K`` gets about ``sqrt(u) ||K||``. The squaring stops when the enclosure's width passes
    ``2**-4`` of its largest magnitude (for ``K >= 0`` it roughly doubles each step, so about level 45;
    cancellation in a signed ``K`` widens it faster); a wide enclosure only loosens the norm, whose
    ``m``-th root hardly moves."""
    import mpmath

    n = K_lo.shape[-1]
    nonneg = bool((K_lo >= 0).all())
    A_lo, A_hi = K_lo, K_hi
    shift, lo, hi = 0, 0.0, _INF

    def root(x: float, level: int):                   # (2**shift x)**(2**-level), an mpmath interval
        return mpmath.iv.exp((shift * mpmath.iv.log(2) + mpmath.iv.log(mpmath.iv.mpf(x))) / 2 ** level)

    for level in range(1, levels + 1):
        A_lo, A_hi = matmul_enclosure(A_lo, A_hi, A_lo, A_hi)
        if nonneg:
            A_lo = np.maximum(A_lo, 0.0)
        mag = magnitude(A_lo, A_hi)[1]
        norm = float(norm_inf_up(mag))
        if not np.isfinite(norm):
            break
        if norm == 0.0:                                  # K^(2^level) = 0: nilpotent
            return 0.0, 0.0
        t = int(scale_exponent(np.array([norm]), (0,)))
        A_lo, A_hi, norm = scale_down(A_lo, -t), scale_up(A_hi, -t), float(scale_up(norm, -t))
        shift = 2 * shift + t                             # K^(2^level) lies in 2**shift [A_lo, A_hi]
        hi = min(hi, float(np.nextafter(float(root(norm, level).b), _INF)))
        if nonneg:
            floor = float(np.min(deflate(np.sum(A_lo, -1), gamma(n), n * ETA)))
            if floor > 0:
                lo = max(lo, float(np.nextafter(float(root(floor, level).a), -_INF)))
        if not np.max(A_hi - A_lo) <= 2.0 ** -4 * np.max(magnitude(A_lo, A_hi)[1]):
            break
    return lo, hi


def block_radius_bounds(M_lo: np.ndarray, M_hi: np.ndarray) -> tuple[float, float] | None:
    """Enclosure of the spectral radius of one reducible ``[M_lo, M_hi] (n, n)`` from its Frobenius
    normal form; None when the matrix is irreducible.

    The strongly connected components of the pattern ``M_ij != 0`` order ``M`` block
    triangular, so its eigenvalues are those of the diagonal blocks ``M[b, b]``:
    ``rho = max_b rho(M[b, b])``; a 1 x 1 block contributes ``|M_ii|`` exactly (a triangular
    matrix certifies its radius from the diagonal, however ill-conditioned its eigenvectors).
    """
    from scipy.sparse.csgraph import connected_components  # where used: scipy.sparse costs 0.1-0.2 s to import

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
