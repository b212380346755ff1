"""Rigorous certificates: doubly stochastic or not, spectral radius, norm, gains, Lipschitz.

Every number in a certificate is an honest bound for the matrix *as stored*: float
entries are the rationals they denote, sums are exact (``exact.sum_enclosure``) and
every other quantity is evaluated with outward rounding (``exact``'s a priori bounds).
Nothing is "close in float64".

Bounds used (``M`` is ``n x n``, prescaled by an exact power of two so that nothing over- or
underflows; ``enclose.SVD_MAX_N = 1024``, ``enclose.DECOMPOSE_MAX_N = 512``):

* residuals ``max_i |sum_j M_ij - 1|`` (rows) and the column analogue: exact sums.
* ``gain_forward = ||M||_inf`` (max abs row sum), ``gain_backward = ||M||_1`` (max abs
  column sum): the DeepSeek "Amax gain" pair.
* spectral radius: ``M >= 0``: Perron-Frobenius ``min row/col sum <= rho <= max row/col sum``;
  where that is loose, Collatz-Wielandt at the computed Perron vector (on its support from
  below, at shifted copies from above: :func:`_collatz_wielandt`). Signed ``M``:
  ``|tr M| / n <= rho <= min(||M||_1, ||M||_inf, ||M||_2)``. Where still loose and
  ``n <= 512``: the similarity-Gershgorin enclosure (on the matrix balanced by powers of two too)
  and the Frobenius normal form of :mod:`birkhoff.enclose`, then Gershgorin in a graded Schur basis
  (a singular eigenbasis: rank-one matrices) and ``||M^m||^(1/m)`` by repeated squaring, with
  ``(min_i (M^m 1)_i)^(1/m)`` below for ``M >= 0`` (Jordan-like and nilpotent matrices); for small
  matrices, a real eigenvalue proved by a sign change of the exact ``det(M - t I)``.
* spectral norm and ``sigma_min``: ``||M||_2 <= min(sqrt(||M||_1 ||M||_inf), ||M||_F, Schur
  test at the singular vectors)``, ``||M||_2 >= max |M_ij|`` and ``>= rho``; for ``n <= 1024``
  the proved SVD of :func:`enclose.singular_value_bounds` (both ends, and ``sigma_min``),
  beyond it a witness ``||M v|| / ||v||`` at ARPACK's top right singular vector. A ``sigma_min``
  still wider than ``1e-6`` goes through an inverse: the float one (equilibrated by powers of two),
  Rump's for condition numbers past ``1 / u`` (``n <= 300``), the triangular Neumann series for a
  triangular ``M`` (any order of rows and columns, any ``n``), the exact one for small matrices.
* products (:func:`certify_product`): short chains multiplied exactly in integers
  (:mod:`birkhoff.exact_chain`), longer ones by a balanced tree of interval products.
* ``sigma2 = ||M - J/n||_2``: the same bounds on ``D = M - J/n`` (enclosed outward), its SVD
  proved in ``M``'s basis where ``M`` is doubly stochastic to ``2**-44`` (one SVD per matrix).
* distance to the Birkhoff polytope (:func:`certify_projection`): weak duality below, an exactly
  DS repair of the projection above, both in exact integer arithmetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any, Iterable, Sequence

import numpy as np

from . import _compiled
from .validate import as_matrix, as_vector, flag, is_exact, real, to_float, to_fraction
from .errors import InvalidArgumentError, InvalidMatrixError
from .project import project
from .accurate import refined_inverse
from .exact_chain import (CHAIN_WORK, EXACT_MEMBER_WORK, INVERSE_WORK, adjugate, centred_interval, chain_work, determinant,
                          exact_chain, inverse_work, matrix_work, ratio_interval, scaled_interval)
from .enclose import (DECOMPOSE_MAX_N, LOOSE, REFINE, SVD_MAX_N, block_radius_bounds, norm_ratio, power_radius_bounds, schur_radius_bounds,
                      singular_value_bounds, spectral_radius_bounds, svd_bases)
from .exact import (ETA, add_down, add_up, deflate, div_down, div_up, entry_interval, gamma, inflate,
                    magnitude, margin_residuals, matmul_enclosure, mul_up, neumann_triangular_up, norm_inf_up, residual_bound, scale_down,
                    scale_exponent, scale_up, sqrt_interval, sqrt_up, sum_enclosure, sum_squares_up)

__all__ = ["Certificate", "ProductCertificate", "BatchCertificate", "certify",
           "certify_batch", "certify_product", "certify_projection", "hc_lipschitz_bound",
           "composite_lipschitz_bound"]

_INF = np.inf
SCHEMA = "birkhoff.certificate/2"
Interval = tuple[float, float]


def _num(x: float) -> float | None:
    """Strict JSON number: a non-finite value (an unbounded end) is ``null``, and the certificate's
    ``infinite`` list names the field; NaN, which no certificate holds (see :func:`_interval`), too."""
    x = float(x)
    return x if np.isfinite(x) else None


def _interval(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(lo, hi)`` of a nonnegative quantity stacked on the last axis; an end that the
    arithmetic left undefined (NaN, from ``inf - inf``) becomes its trivial bound, 0 or ``inf``."""
    return np.stack([np.where(np.isnan(lo), 0.0, lo), np.where(np.isnan(hi), _INF, hi)], -1)


@dataclass(frozen=True)
class Certificate:
    """Rigorous facts about one matrix. Intervals are ``(lo, hi)`` with ``lo <= true <= hi``.

    ``row_residual``/``col_residual`` are upper bounds of ``max |sum - 1|`` (exactly 0 when
    the margins are exact). ``exact``: both residuals are exactly zero.
    ``doubly_stochastic``: nonnegative and both residuals ``<= tol``.
    ``sigma2``: ``||M - J/n||_2``, the mixing rate (for doubly stochastic ``M`` its second
    singular value: a depth-``L`` stack of such maps moves every stream to within
    ``prod_l sigma2_l`` of the streams' average). ``sigma_min``: the smallest singular value
    (0 when ``M`` is singular: the mixing cannot be undone).
    """

    n: int
    nonnegative: bool
    row_residual: float
    col_residual: float
    doubly_stochastic: bool
    exact: bool
    spectral_radius: Interval
    spectral_norm: Interval
    gain_forward: Interval
    gain_backward: Interval
    sigma2: Interval
    sigma_min: Interval
    tol: float = 0.0
    distance: Interval | None = None

    @property
    def min_tol(self) -> float | None:
        """The smallest ``tol`` with which this certificate says doubly stochastic: the larger
        residual bound (None when an entry is negative: no tolerance makes it DS)."""
        return max(self.row_residual, self.col_residual) if self.nonnegative else None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the stable JSON schema (docs/CLI.md); intervals are 2-lists, strict JSON numbers:
        an infinite value or end is ``null`` and its field is listed under ``infinite``."""
        out: dict[str, Any] = {"schema": SCHEMA, "kind": self._kind()}
        infinite = []
        for f in fields(self):
            v = getattr(self, f.name)
            values = v if isinstance(v, tuple) else (v,) if isinstance(v, float) else ()
            if any(not np.isfinite(float(x)) for x in values):
                infinite.append(f.name)
            if isinstance(v, tuple):
                v = [_num(x) for x in v]
            elif isinstance(v, float):
                v = _num(v)
            out[f.name] = v
        out["min_tol"] = None if self.min_tol is None else _num(self.min_tol)
        out["infinite"] = infinite
        return out

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    def _kind(self) -> str:
        return "matrix"

    def _extra_lines(self) -> list[str]:
        return []

    def __str__(self) -> str:
        verdict = "yes" if self.doubly_stochastic else "NO"
        if self.doubly_stochastic:
            verdict += " (exact)" if self.exact else f" (within tol = {self.tol!r})"
        elif self.min_tol is not None:
            verdict += f" at tol = {self.tol!r}; certified DS for tol >= {self.min_tol!r}"
        else:
            verdict += " (a negative entry: for no tol)"
        lines = [f"{self._title()}",
                 f"  doubly stochastic : {verdict}",
                 f"  nonnegative       : {'yes' if self.nonnegative else 'no'}",
                 f"  row residual      : <= {self.row_residual!r}",
                 f"  col residual      : <= {self.col_residual!r}",
                 f"  spectral radius   : {_iv(self.spectral_radius)}",
                 f"  spectral norm     : {_iv(self.spectral_norm)}",
                 f"  gain forward      : {_iv(self.gain_forward)}   (max abs row sum)",
                 f"  gain backward     : {_iv(self.gain_backward)}   (max abs column sum)",
                 f"  sigma2            : {_iv(self.sigma2)}   (||M - J/n||_2: mixing rate)",
                 f"  sigma min         : {_iv(self.sigma_min)}   (smallest singular value)"]
        if self.distance is not None:
            lines.append(f"  dist to Birkhoff  : {_iv(self.distance)}   (Frobenius)")
        return "\n".join(lines + self._extra_lines())

    def _title(self) -> str:
        return f"Certificate for a {self.n}x{self.n} matrix"


@dataclass(frozen=True)
class ProductCertificate(Certificate):
    """Certificate of ``P = Ms[-1] @ ... @ Ms[0]`` (``Ms[0]`` acts first), plus factor bounds.

    ``factor_gain_forward`` / ``factor_gain_backward`` / ``factor_spectral_norm`` are
    upper bounds of the products of the factors' norms (submultiplicativity), the
    bound one gets without forming the product; ``factor_sigma2`` bounds
    ``prod_l ||M_l - J/n||_2``, a bound of ``||P - J/n||_2`` when every factor has exact unit
    margins (``inf`` otherwise).
    """

    depth: int = 0
    factor_gain_forward: float = _INF
    factor_gain_backward: float = _INF
    factor_spectral_norm: float = _INF
    factor_sigma2: float = _INF

    def _kind(self) -> str:
        return "product"

    def _title(self) -> str:
        return f"Certificate for a product of {self.depth} {self.n}x{self.n} matrices"

    def _extra_lines(self) -> list[str]:
        return [f"  prod of factors   : gain fwd <= {self.factor_gain_forward!r}, "
                f"gain bwd <= {self.factor_gain_backward!r}, "
                f"spectral <= {self.factor_spectral_norm!r}, sigma2 <= {self.factor_sigma2!r}"]


@dataclass(frozen=True)
class BatchCertificate:
    """Vectorised certificates: every field is an array over the batch shape ``B``;
    intervals have a trailing axis of length 2 (``[..., 0] = lo``, ``[..., 1] = hi``)."""

    n: int
    nonnegative: np.ndarray
    row_residual: np.ndarray
    col_residual: np.ndarray
    doubly_stochastic: np.ndarray
    exact: np.ndarray
    spectral_radius: np.ndarray
    spectral_norm: np.ndarray
    gain_forward: np.ndarray
    gain_backward: np.ndarray
    sigma2: np.ndarray
    sigma_min: np.ndarray
    tol: float = 0.0

    def __len__(self) -> int:
        return int(np.prod(self.nonnegative.shape))

    def __getitem__(self, idx) -> Certificate:
        return Certificate(**_pick({f.name: getattr(self, f.name) for f in fields(self)}, idx))


def _iv(iv: Interval) -> str:
    lo, hi = iv
    return f"[{lo!r}, {hi!r}]" if lo != hi else f"[{lo!r}, {hi!r}]  (exact)"


# ----------------------------------------------------------------------------- engine

@dataclass
class _Sums:
    """Enclosures (lo, hi) of row sums, column sums and their absolute counterparts."""

    rows: tuple[np.ndarray, np.ndarray]
    cols: tuple[np.ndarray, np.ndarray]
    abs_rows: tuple[np.ndarray, np.ndarray]
    abs_cols: tuple[np.ndarray, np.ndarray]
    row_res: np.ndarray      # upper bound of max |row sum - 1|
    col_res: np.ndarray


def _exact_sums(M: np.ndarray, nonneg: np.ndarray) -> _Sums:
    """Sums of a validated ``(..., n, n)`` matrix, exact or tightly enclosed."""
    rows, cols = sum_enclosure(M, -1), sum_enclosure(M, -2)
    if nonneg.all():
        abs_rows, abs_cols = rows, cols
    else:
        A = np.abs(M)
        abs_rows, abs_cols = sum_enclosure(A, -1), sum_enclosure(A, -2)
    return _Sums(rows, cols, abs_rows, abs_cols, *margin_residuals(M))


def _positive(x: np.ndarray) -> np.ndarray:
    """Strictly positive version of a nonnegative test vector (for CW / Schur tests)."""
    x = np.abs(x)
    top = np.max(x, axis=-1, keepdims=True)
    return np.maximum(x, np.where(top > 0, top, 1.0) * 1e-12)


def _matvec_bounds(K_lo: np.ndarray, K_hi: np.ndarray, x: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of ``K x`` for ``0 <= K_lo <= K <= K_hi`` and ``x > 0`` (batched)."""
    n = x.shape[-1]
    g = gamma(n + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        lo = deflate(np.einsum("...ij,...j->...i", K_lo, x), 2 * g, 2 * (n + 1) * ETA)
        hi = inflate(np.einsum("...ij,...j->...i", K_hi, x), 2 * g, 2 * (n + 1) * ETA)
    return lo, hi


# Witness vectors only make the bounds tight; the bounds hold for any vector. Small
# matrices (batches of n x n mixing matrices) get them from a batched LAPACK SVD / eig;
# larger ones from ARPACK (Lanczos / Arnoldi: O(n^2) per step instead of an O(n^3)
# decomposition: 2000 x 2000 takes 1 s instead of 6 s).
DIRECT_MAX_N = 64
SMIN_WIDE = 1e-6       # a sigma_min enclosure wider than this (relative) is redone through an inverse
RUMP_TERMS = 6         # float matrices in Rump's inverse (birkhoff/accurate.py) at most: kappa up to ~1e80
RUMP_MAX_N = 300       # ... and the largest n it is tried at (a 256 x 256 at kappa 1e66: about 5 s)
RUMP_SMALL = 2.0 ** -27  # ... tried where a float inverse's residual e is above this (it sets the width)
NEAR_DS = 2.0 ** -44   # margins this close to 1: D = M - J/n shares M's singular vectors (one SVD, not two)


def _each(A: np.ndarray, top) -> np.ndarray:
    """``top(arpack, matrix)`` for every matrix of the batch ``A (..., n, n)``; ones where ARPACK fails.
    ``arpack`` is ``scipy.sparse.linalg``, imported here (0.15 s that small matrices never need)."""
    from scipy.sparse import linalg as arpack

    out = np.ones(A.shape[:-1])
    for idx in np.ndindex(A.shape[:-2]):
        try:
            out[idx] = top(arpack, A[idx])
        except (arpack.ArpackError, arpack.ArpackNoConvergence):
            pass
    return out


def _singular_witness(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top left and right singular vectors of each large ``A (..., n, n)`` (ARPACK;
    ``n <= SVD_MAX_N`` takes them from :func:`enclose.svd_bases`)."""
    v0 = np.ones(A.shape[-1])
    right = _each(A, lambda arpack, M: arpack.svds(M, k=1, v0=v0)[2][0])
    return _each(A, lambda arpack, M: arpack.svds(M.T, k=1, v0=v0)[2][0]), right


def _perron_witness(A: np.ndarray) -> np.ndarray:
    """Approximate eigenvector of the eigenvalue of largest real part of each ``A``
    (the Perron vector of a nonnegative matrix)."""
    if A.shape[-1] <= DIRECT_MAX_N:
        try:
            w, V = np.linalg.eig(A)
            k = np.argmax(w.real, axis=-1)
            return np.take_along_axis(V.real, k[..., None, None], axis=-1)[..., 0]
        except np.linalg.LinAlgError:
            return np.ones(A.shape[:-1])
    v0 = np.ones(A.shape[-1])
    return _each(A, lambda arpack, M: arpack.eigs(M, k=1, which="LR", v0=v0)[1][:, 0].real)


def _rescale(lo: np.ndarray, hi: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi] * 2**k`` rounded outward (a point stays one array when it stays exact)."""
    if not k.any():
        return lo, hi
    lo2, hi2 = scale_down(lo, k), scale_up(hi, k)
    return (lo2, lo2) if lo is hi and np.array_equal(lo2, hi2) else (lo2, hi2)


def _scaled(M_lo: np.ndarray, M_hi: np.ndarray, s: _Sums, trace: tuple[np.ndarray, np.ndarray]):
    """The interval matrix, its sums and trace times ``2**-e`` (outward), ``e`` per matrix from
    :func:`exact.scale_exponent`: the norm and radius bounds then neither over- nor underflow."""
    e = scale_exponent(magnitude(M_lo, M_hi)[1], (-2, -1))
    ev = -e[..., None]
    rows, cols, abs_rows, abs_cols = (_rescale(*t, ev) for t in (s.rows, s.cols, s.abs_rows, s.abs_cols))
    sums = _Sums(rows, cols, abs_rows, abs_cols, s.row_res, s.col_res)
    return e, *_rescale(M_lo, M_hi, -e[..., None, None]), sums, _rescale(*trace, -e)


def _unscaled(iv: tuple[np.ndarray, np.ndarray], e: np.ndarray) -> np.ndarray:
    return _interval(*_rescale(*iv, e))


def _bounds(M_lo: np.ndarray, M_hi: np.ndarray, nonneg: np.ndarray, s: _Sums,
            trace: tuple[np.ndarray, np.ndarray], centred: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
            refine_sigma_min: bool = True) -> dict[str, np.ndarray]:
    """Spectral radius, spectral norm, gains, ``sigma2`` and ``sigma_min`` for a batch of interval
    matrices; everything but the gains is computed on the matrices prescaled by a power of two.
    ``centred``: ``(e, D_lo, D_hi)`` as :func:`_centred` returns, where a tighter one is known;
    ``refine_sigma_min`` False: ``sigma_min`` as the proved SVD leaves it (the caller has a better one)."""
    gains = {"gain_forward": _interval(np.max(s.abs_rows[0], -1), np.max(s.abs_rows[1], -1)),
             "gain_backward": _interval(np.max(s.abs_cols[0], -1), np.max(s.abs_cols[1], -1))}
    e_d, D_lo, D_hi = _centred(M_lo, M_hi) if centred is None else centred
    e, M_lo, M_hi, s, trace = _scaled(M_lo, M_hi, s, trace)
    n = M_lo.shape[-1]
    _, safe_mid = _midpoint(M_lo, M_hi)
    mig, mag = magnitude(M_lo, M_hi)
    gf = (np.max(s.abs_rows[0], -1), np.max(s.abs_rows[1], -1))
    gb = (np.max(s.abs_cols[0], -1), np.max(s.abs_cols[1], -1))

    # --- spectral norm, upper
    with np.errstate(over="ignore", invalid="ignore"):
        norm_hi = sqrt_up(mul_up(gf[1], gb[1]))
        norm_hi = np.minimum(norm_hi, sqrt_up(sum_squares_up(mag, (-2, -1))))
    if n <= SVD_MAX_N:
        U, V = svd_bases(safe_mid)
        smax, smin = singular_value_bounds(M_lo, M_hi, V)
        u1, v = U[..., :, 0], V[..., :, 0]
    else:
        u1, v = _singular_witness(safe_mid)
    p, q = _positive(u1), _positive(v)
    _, Kq = _matvec_bounds(mig, mag, q)
    _, Ktp = _matvec_bounds(np.swapaxes(mig, -1, -2), np.swapaxes(mag, -1, -2), p)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        schur = sqrt_up(mul_up(np.max(div_up(Kq, p), -1), np.max(div_up(Ktp, q), -1)))
    norm_hi = np.where(np.isnan(schur), norm_hi, np.minimum(norm_hi, schur))

    # --- spectral norm, lower: max |entry|, and the witness v (n > SVD_MAX_N; else in the proved SVD)
    norm_lo = np.max(mig, axis=(-2, -1))
    if n > SVD_MAX_N:
        y_lo, y_hi = matmul_enclosure(M_lo, M_hi, v[..., None], v[..., None])
        norm_lo = np.maximum(norm_lo, norm_ratio(y_lo[..., 0], y_hi[..., 0], v)[0])
        smin = (np.zeros_like(norm_hi), norm_hi)
    else:
        norm_lo, norm_hi = np.maximum(norm_lo, smax[0]), np.minimum(norm_hi, smax[1])
        smin = (smin[0], np.minimum(smin[1], norm_hi))
        if refine_sigma_min:
            smin = _inverse_sigma_min(M_lo, M_hi, safe_mid, U, smin)

    # --- spectral radius
    rho_lo, rho_hi = _radius_bounds(M_lo, M_hi, safe_mid, nonneg, s, trace, np.minimum(np.minimum(gf[1], gb[1]),
                                                                                        norm_hi))
    norm_lo = np.maximum(norm_lo, rho_lo)
    near = (s.row_res <= NEAR_DS) & (s.col_res <= NEAR_DS)
    sigma2 = _sigma2(D_lo, D_hi, _proved_sigma2(D_lo, D_hi, V, near) if n <= SVD_MAX_N else None)
    return {"spectral_radius": _unscaled((rho_lo, rho_hi), e), "spectral_norm": _unscaled((norm_lo, norm_hi), e),
            "sigma_min": _unscaled(smin, e), "sigma2": _unscaled(sigma2, e_d), **gains}


def _proved_sigma2(D_lo: np.ndarray, D_hi: np.ndarray, V: np.ndarray, near: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``sigma_max`` of each prescaled ``D = M - J/n``, proved (:func:`enclose.singular_value_bounds`) in the
    basis ``V`` of ``M`` where ``M`` is ``near`` doubly stochastic (``D`` then has ``M``'s singular vectors:
    one SVD per matrix instead of two), and in ``D``'s own basis elsewhere or where that is loose (a
    repeated singular value 1, as in a permutation, leaves ``M``'s basis free to mix ``1/sqrt(n)`` in)."""
    lo, hi = np.zeros(D_lo.shape[:-2]), np.full(D_lo.shape[:-2], _INF)
    if near.any():
        lo[near], hi[near] = singular_value_bounds(D_lo[near], D_hi[near], V[near])[0]
    own = ~near | _loose(lo, hi)
    if own.any():
        basis = svd_bases(_midpoint(D_lo[own], D_hi[own])[1])[1]
        s_lo, s_hi = singular_value_bounds(D_lo[own], D_hi[own], basis)[0]
        lo[own], hi[own] = np.maximum(lo[own], s_lo), np.minimum(hi[own], s_hi)
    return lo, hi


def _approximate_inverse(mid: np.ndarray, M_lo: np.ndarray, M_hi: np.ndarray, upper: np.ndarray | bool = False
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(R, ok, E)``: ``R ~ mid^-1`` in float (0 where LAPACK finds ``mid`` singular or ``R`` is not finite,
    ``ok`` False there) and an entrywise upper bound ``E >= |I - R M|`` for every ``M`` in ``[M_lo, M_hi]``
    (an interval product). Where ``upper`` (every ``M`` upper triangular), ``R`` is upper triangular
    too (LU does not pivot there; what rounding leaves below the diagonal is dropped), so ``R M`` is
    exactly 0 below the diagonal and so is ``E``."""
    with np.errstate(all="ignore"):
        try:
            R = np.linalg.inv(mid)
        except np.linalg.LinAlgError:                    # one singular pivot fails the batch: one by one
            R = np.full(mid.shape, np.nan)
            for idx in np.ndindex(mid.shape[:-2]):
                try:
                    R[idx] = np.linalg.inv(mid[idx])
                except np.linalg.LinAlgError:
                    pass
    ok = np.asarray(np.isfinite(R).all(axis=(-2, -1)))
    eye = np.eye(mid.shape[-1], dtype=bool)
    pattern = ~(np.asarray(upper)[..., None, None] & np.tril(~eye))
    R = np.where(ok[..., None, None] & pattern, R, 0.0)
    return R, ok, np.where(pattern, _identity_residual(*matmul_enclosure(R, R, M_lo, M_hi)), 0.0)


def _identity_residual(P_lo: np.ndarray, P_hi: np.ndarray) -> np.ndarray:
    """An entrywise upper bound of ``|I - P|`` for every ``P`` in ``[P_lo, P_hi]``."""
    eye = np.eye(P_lo.shape[-1], dtype=bool)
    return magnitude(np.where(eye, add_down(P_lo, -1.0), P_lo), np.where(eye, add_up(P_hi, -1.0), P_hi))[1]


def _triangular_order(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p, q, ok)`` per matrix of a batch of nonzero patterns ``(..., n, n)``: ``pattern[p][:, q]`` is upper
    triangular with a nonzero diagonal where ``ok``. Such a matrix has a row with one nonzero (its last), and
    dropping that row and its column leaves another: the rows are taken so, last first, all matrices at once."""
    n = pattern.shape[-1]
    P = pattern.reshape((-1, n, n))
    m = len(P)
    every = np.arange(m)
    rows_left, cols_left = np.ones((m, n), dtype=bool), np.ones((m, n), dtype=bool)
    count = P.sum(-1)                                      # each row's nonzeros in the columns left
    p, q = np.zeros((m, n), dtype=np.int64), np.zeros((m, n), dtype=np.int64)
    ok = np.ones(m, dtype=bool)
    for pos in range(n - 1, -1, -1):
        single = rows_left & (count == 1)
        ok = ok & single.any(-1)
        row = np.argmax(single, -1)
        col = np.argmax(P[every, row] & cols_left, -1)
        p[:, pos], q[:, pos] = row, col
        rows_left[every, row] = cols_left[every, col] = False
        count -= P[every, :, col]
    shape = pattern.shape[:-2]
    return p.reshape(shape + (n,)), q.reshape(shape + (n,)), ok.reshape(shape)


def _neumann_radius(E: np.ndarray, R: np.ndarray, lower: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(G, valid)``: ``G >= (I - E)^-1 E |R|`` for ``E >= 0`` upper (``lower``: lower) triangular, where
    ``max E_ii < 1`` (``valid``). ``|R|`` is scaled by a power of two first: ``E |R|`` may overflow where
    ``G`` does not."""
    if lower:                                  # J E J is upper triangular (J reverses the order)
        G, valid = _neumann_radius(E[..., ::-1, ::-1], R[..., ::-1, ::-1], False)
        return G[..., ::-1, ::-1], valid
    f = scale_exponent(np.abs(R), (-2, -1))
    K = np.ldexp(np.abs(R), -f[..., None, None])
    with np.errstate(over="ignore", invalid="ignore"):
        G = scale_up(neumann_triangular_up(E, matmul_enclosure(E, E, K, K)[1]), f[..., None, None])
    return G, (np.diagonal(E, axis1=-2, axis2=-1) < 1).all(-1) & np.isfinite(G).all(axis=(-2, -1))


def _triangular_radius(R: np.ndarray, E: np.ndarray, S_lo: np.ndarray, S_hi: np.ndarray, upper: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(G, valid)`` with ``|S^-1 - R| <= G`` for every ``S`` in ``[S_lo, S_hi]`` where ``upper`` (all of them upper
    triangular, ``R`` too, ``E >= |I - R S|``). Left: ``S^-1 = (I - F)^-1 R`` with ``F = I - R S`` triangular
    and ``rho(|F|) <= max E_ii``, so where that is below 1 the Neumann series gives ``G = (I - E)^-1 E |R|``,
    however large the rest of ``E`` is; right, the same from ``E' >= |I - S R|``: ``|R| E' (I - E')^-1``;
    ``G`` is the smaller of the two, entry by entry. The float inverse of a triangular matrix is accurate
    entry by entry far past ``1 / u`` (Higham, ASNA 2nd ed., 8.2), which a norm of ``E`` cannot see:
    ``|| |E| ||_inf`` is 1e121 for the oracle's 512 x 512 ``nonnormal``, this ``G`` 3e-9 of ``R``."""
    G = np.zeros_like(R)
    valid = np.zeros(R.shape[:-2], dtype=bool)
    if not upper.any():
        return G, valid
    R_t, E_t = R[upper], E[upper]
    E_right = _identity_residual(*matmul_enclosure(S_lo[upper], S_hi[upper], R_t, R_t))
    G_left, left = _neumann_radius(E_t, R_t, False)
    G_right, right = _neumann_radius(np.swapaxes(np.triu(E_right), -1, -2), np.swapaxes(R_t, -1, -2), True)
    G_right = np.swapaxes(G_right, -1, -2)
    G[upper] = np.where((left & right)[..., None, None], np.minimum(G_left, G_right),
                        np.where(left[..., None, None], G_left, G_right))
    valid[upper] = left | right
    return G, valid


def _inverse_sigma_min(M_lo: np.ndarray, M_hi: np.ndarray, mid: np.ndarray, U: np.ndarray,
                       smin: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``smin`` tightened, where wider than :data:`SMIN_WIDE`, through an approximate inverse ``R`` of ``mid``:
    with ``delta >= ||I - R M||_2`` (an interval product) below 1, ``M^-1 = (R M)^-1 R`` gives
    ``(1 - delta) / sigma_max(R) <= sigma_min(M) <= (1 + delta) / sigma_max(R)``, and ``sigma_max(R)`` is
    proved in the basis ``U`` (``M``'s left singular vectors are ``R``'s right ones): a relative enclosure
    (about ``kappa n u`` wide) where the Gram bounds of the proved SVD stop at an absolute floor near
    ``n u ||M||``."""
    lo, hi = (np.array(x, dtype=np.float64, copy=True) for x in smin)
    with np.errstate(invalid="ignore", over="ignore"):
        wide = ~(hi - lo <= SMIN_WIDE * hi)
    if not wide.any():
        return lo, hi
    R, ok, E = _approximate_inverse(mid[wide], M_lo[wide], M_hi[wide])
    delta = _norm2_up(E)
    r_lo, r_hi = singular_value_bounds(R, R, U[wide][..., ::-1])[0]        # sigma_max(R), U's last column first
    ok &= (delta < 1) & (r_lo > 0) & np.isfinite(r_hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        new_lo = np.where(ok, div_down(add_down(1.0, -delta), np.where(ok, r_hi, 1.0)), 0.0)
        new_hi = np.where(ok, div_up(add_up(1.0, delta), np.where(ok, r_lo, 1.0)), _INF)
    lo[wide], hi[wide] = np.maximum(lo[wide], new_lo), np.minimum(hi[wide], new_hi)
    return _equilibrated_sigma_min(M_lo, M_hi, mid, lo, hi)


def _equilibrated_sigma_min(M_lo: np.ndarray, M_hi: np.ndarray, mid: np.ndarray, lo: np.ndarray, hi: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """``sigma_min`` where still wider than :data:`SMIN_WIDE`, as ``1 / sigma_max(M^-1)`` from an enclosure of
    ``M^-1`` itself: for mixed magnitudes (``M = D1 S D2``, ``S`` well conditioned, ``D`` diagonal), where an
    inverse's residual in the 2-norm is as large as ``kappa(M) u``.

    ``S = D1^-1 M D2^-1`` by powers of two (rows, then columns, to maximum magnitude in ``[1/2, 1)``: exact),
    ``R ~ S^-1`` in float, ``E = I - R S`` enclosed; with ``e = || |E| ||_inf < 1``, ``S^-1 = (I - E)^-1 R``
    lies within ``G = |E| (|R| + e / (1 - e) 1 c^T)`` of ``R`` entrywise (``c``: the column maxima of ``|R|``;
    the Neumann series), so ``M^-1 = D2^-1 S^-1 D1^-1`` lies in an interval matrix whose radius is relative
    to each entry's own scale, and its ``sigma_max`` is proved in ``M^-1``'s own singular basis. Where ``S``
    is near or past ``1 / u`` (the float inverse leaves ``e > RUMP_SMALL``, and ``e`` sets the width; a point
    matrix, ``n <= RUMP_MAX_N``), ``R`` is Rump's inverse, a sum of float matrices with ``E`` enclosed by
    exact products (``accurate.refined_inverse``): its first matrix is the midpoint and the others join
    the radius. A triangular ``M`` (every matrix of the interval; its rows and columns in any order) is
    made upper triangular, keeps ``R`` triangular and takes the Neumann series of the triangular ``E``
    itself (:func:`_triangular_radius`), whatever ``e`` is: its float inverse is accurate entry by entry
    far past ``1 / u``; Rump's inverse is tried only where that radius is not below ``RUMP_SMALL`` of ``R``."""
    with np.errstate(invalid="ignore", over="ignore"):
        wide = ~(hi - lo <= SMIN_WIDE * hi) & np.isfinite(mid).all(axis=(-2, -1))
    if not wide.any():
        return lo, hi
    A, A_lo, A_hi = mid[wide], M_lo[wide], M_hi[wide]
    n = A.shape[-1]
    # sigma_min is that of P M Q: a triangular matrix, however its rows and columns are ordered, is made upper
    p, q, upper = _triangular_order((A_lo != 0) | (A_hi != 0))
    p, q = (np.where(upper[..., None], x, np.arange(n)) for x in (p, q))
    A, A_lo, A_hi = (np.take_along_axis(np.take_along_axis(X, p[..., :, None], -2), q[..., None, :], -1)
                     for X in (A, A_lo, A_hi))
    r = scale_exponent(np.abs(A), (-1,))                                         # D1 = 2**r (rows)
    c = scale_exponent(np.abs(np.ldexp(A, -r[..., :, None])), (-2,))             # D2 = 2**c (columns)
    k = -(r[..., :, None] + c[..., None, :])
    S_lo, S_hi = scale_down(A_lo, k), scale_up(A_hi, k)
    R, ok, E = _approximate_inverse(np.ldexp(A, k), S_lo, S_hi, upper)
    R_tail = np.zeros_like(R)                     # R stands for R + (terms bounded by R_tail), Rump's inverse
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = norm_inf_up(E)
        G_tri, triangular = _triangular_radius(R, E, S_lo, S_hi, upper)
        triangular &= ok
        # its width, about ||G||_2 / ||R||_2, is at most this: Rump's inverse is tried only where it is not small
        tri_width = np.sqrt(np.sum(G_tri * G_tri, axis=(-2, -1))) / np.max(np.abs(R), axis=(-2, -1))
        # kappa near or past 1/u: a float inverse leaves e (the relative width it gives) above 2**-27
        past = ~(e <= RUMP_SMALL) & ~(triangular & (tri_width <= RUMP_SMALL)) & (
            S_lo == S_hi).all(axis=(-2, -1)) & (n <= RUMP_MAX_N)
        for idx in zip(*np.nonzero(past)):
            refined = refined_inverse(S_lo[idx], RUMP_TERMS, RUMP_SMALL)
            if refined is not None:
                terms, E[idx] = refined
                R[idx], ok[idx], triangular[idx] = terms[0], True, False
                R_tail[idx] = inflate(sum((np.abs(x) for x in terms[1:]), np.zeros((n, n))), gamma(len(terms)))
                e[idx] = norm_inf_up(E[idx])
        ok &= (e < 1) | triangular
        t = np.where(ok & ~triangular, div_up(e, np.where(ok, add_down(1.0, -e), 1.0)), 0.0)
        T = add_up(np.abs(R), R_tail)
        K = add_up(T, mul_up(t[..., None, None], np.max(T, -2)[..., None, :]))
        G = add_up(matmul_enclosure(E, E, K, K)[1], R_tail)
        G = np.where(triangular[..., None, None], G_tri, G)
        # M^-1 = D2^-1 S^-1 D1^-1, times 2**-f (its largest entry in [1/2, 1): its squares stay in range)
        kinv = np.swapaxes(k, -1, -2)
        f = scale_exponent(np.abs(np.ldexp(R, kinv)), (-2, -1))
        kinv = kinv - f[..., None, None]
        X_lo, X_hi = scale_down(add_down(R, -G), kinv), scale_up(add_up(R, G), kinv)
        X = np.ldexp(R, kinv)
    ok &= np.isfinite(X_lo).all(axis=(-2, -1)) & np.isfinite(X_hi).all(axis=(-2, -1))
    s_lo, s_hi = singular_value_bounds(np.where(ok[..., None, None], X_lo, 0.0), np.where(ok[..., None, None], X_hi, 0.0),
                                       svd_bases(np.where(ok[..., None, None], X, 0.0))[1])[0]
    ok &= (s_lo > 0) & np.isfinite(s_hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        new_lo = np.where(ok, scale_down(div_down(1.0, np.where(ok, s_hi, 1.0)), -f), 0.0)
        new_hi = np.where(ok, scale_up(div_up(1.0, np.where(ok, s_lo, 1.0)), -f), _INF)
    lo[wide], hi[wide] = np.maximum(lo[wide], new_lo), np.minimum(hi[wide], new_hi)
    return lo, hi


def _midpoint(M_lo: np.ndarray, M_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float midpoint of ``[M_lo, M_hi]`` and a finite copy (a matrix with an unbounded entry becomes 0)."""
    with np.errstate(over="ignore", invalid="ignore"):     # unbounded entries: mid is unused (not finite)
        mid = M_lo if M_lo is M_hi else M_lo + 0.5 * (M_hi - M_lo)
    finite = np.isfinite(mid).all(axis=(-2, -1))
    return mid, np.where(finite[..., None, None], mid, 0.0)


def _radius_bounds(M_lo: np.ndarray, M_hi: np.ndarray, safe_mid: np.ndarray, nonneg: np.ndarray, s: _Sums,
                   trace: tuple[np.ndarray, np.ndarray], norm_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of the spectral radius of each prescaled ``[M_lo, M_hi]``: Perron-Frobenius margins, then
    (where still loose) Collatz-Wielandt at the Perron vector of a nonnegative matrix, ``|tr| / n``
    and ``norm_hi`` for a signed one, the similarity-Gershgorin enclosure and the Frobenius normal form."""
    n = M_lo.shape[-1]
    rho_lo = np.where(nonneg, np.maximum(np.min(s.rows[0], -1), np.min(s.cols[0], -1)),
                      div_down(magnitude(*trace)[0], float(n)))
    rho_hi = np.minimum(np.where(nonneg, np.minimum(np.max(s.rows[1], -1), np.max(s.cols[1], -1)), _INF), norm_hi)
    rho_lo = np.maximum(rho_lo, 0.0)
    cw = nonneg & _loose(rho_lo, rho_hi)
    if cw.any():
        cw_lo, cw_hi = _collatz_wielandt(np.maximum(M_lo[cw], 0.0), np.maximum(M_hi[cw], 0.0),
                                         np.abs(_perron_witness(safe_mid[cw])))
        rho_lo[cw], rho_hi[cw] = np.maximum(rho_lo[cw], cw_lo), np.minimum(rho_hi[cw], cw_hi)
    if n <= DECOMPOSE_MAX_N:           # decompositions proved on the interval matrix (enclose.py)
        loose = _loose(rho_lo, rho_hi)
        if loose.any():
            r_lo, r_hi = spectral_radius_bounds(M_lo[loose], M_hi[loose], safe_mid[loose])
            rho_lo[loose], rho_hi[loose] = np.maximum(rho_lo[loose], r_lo), np.minimum(rho_hi[loose], r_hi)
        for idx in zip(*np.nonzero(_loose(rho_lo, rho_hi))):      # still loose: a reducible matrix's blocks
            blocks = block_radius_bounds(M_lo[idx], M_hi[idx])
            if blocks is not None:
                rho_lo[idx], rho_hi[idx] = max(rho_lo[idx], blocks[0]), min(rho_hi[idx], blocks[1])
        for idx in zip(*np.nonzero(_loose(rho_lo, rho_hi, REFINE))):    # a singular eigenbasis: a Schur basis
            s_lo, s_hi = schur_radius_bounds(M_lo[idx], M_hi[idx], safe_mid[idx])
            rho_lo[idx], rho_hi[idx] = max(rho_lo[idx], s_lo), min(rho_hi[idx], s_hi)
        for idx in zip(*np.nonzero(_loose(rho_lo, rho_hi, REFINE))):    # Jordan-like, nilpotent: ||M^m||^(1/m)
            p_lo, p_hi = power_radius_bounds(M_lo[idx], M_hi[idx])
            rho_lo[idx], rho_hi[idx] = max(rho_lo[idx], p_lo), min(rho_hi[idx], p_hi)
    return rho_lo, rho_hi


CW_SHIFTS = (2.0 ** -12, 2.0 ** -24, 2.0 ** -36, 2.0 ** -48)    # relative shifts of a Perron vector with zeros


def _collatz_wielandt(K_lo: np.ndarray, K_hi: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collatz-Wielandt enclosure of the Perron root of each nonnegative ``[K_lo, K_hi]`` at an approximate
    Perron vector ``x >= 0``: ``rho >= min (K x)_i / x_i`` over the support ``S = {x_i > 2**-40 max x}``
    of ``x`` set to 0 off ``S`` (a nonnegative ``x`` with ``K x >= r x`` on its support), and
    ``rho <= max (K x')_i / x'_i`` at the positive shifts ``x' = x + t max x``, ``t`` in :data:`CW_SHIFTS`,
    the best of them (a reducible ``K`` has a Perron vector with zeros, where no single shift fits every
    row)."""
    top = np.max(x, -1, keepdims=True)
    top = np.where(top > 0, top, 1.0)
    support = x > 2.0 ** -40 * top
    xs = np.where(support, x, 0.0)
    shifted = x[..., None, :] + np.asarray(CW_SHIFTS)[:, None] * top[..., None]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        Kx_lo, _ = _matvec_bounds(K_lo, K_hi, xs)
        lo = np.min(np.where(support, div_down(Kx_lo, np.where(support, xs, 1.0)), _INF), -1)
        _, Kx_hi = _matvec_bounds(K_lo[..., None, :, :], K_hi[..., None, :, :], shifted)
        hi = np.min(np.max(div_up(Kx_hi, shifted), -1), -1)
    return np.nan_to_num(np.where(np.isfinite(lo), lo, 0.0), nan=0.0), np.where(np.isnan(hi), _INF, hi)


def _loose(lo: np.ndarray, hi: np.ndarray, rel: float = LOOSE) -> np.ndarray:
    """Where an enclosure is wider than ``rel`` relative (:data:`enclose.LOOSE`: worth a decomposition;
    :data:`enclose.REFINE`: worth the costliest fallbacks)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return ~(hi - lo <= rel * hi)


def _centred(M_lo: np.ndarray, M_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``D = M - J/n`` enclosed outward and prescaled by its own power of two: ``(e, D_lo, D_hi)``, ``D 2**-e``."""
    n = M_lo.shape[-1]
    D_lo, D_hi = add_down(M_lo, -div_up(1.0, float(n))), add_up(M_hi, -div_down(1.0, float(n)))
    e = scale_exponent(magnitude(D_lo, D_hi)[1], (-2, -1))
    return e, *_rescale(D_lo, D_hi, -e[..., None, None])


def _norm2_up(mag: np.ndarray) -> np.ndarray:
    """Upper bound of ``||X||_2`` for every ``|X| <= mag (..., n, n)``: ``min(sqrt(||mag||_1 ||mag||_inf), ||mag||_F)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        rows, cols = norm_inf_up(mag), norm_inf_up(np.swapaxes(mag, -1, -2))
        return np.minimum(sqrt_up(mul_up(rows, cols)), sqrt_up(sum_squares_up(mag, (-2, -1))))


def _sigma2(D_lo: np.ndarray, D_hi: np.ndarray, proved: tuple[np.ndarray, np.ndarray] | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of ``||D||_2`` for the prescaled ``D = M - J/n`` of :func:`_centred`: ``max |D_ij|``,
    ``sqrt(||D||_1 ||D||_inf)``, ``||D||_F`` and ``proved``, the proved SVD's ``sigma_max`` (``n <=``
    ``SVD_MAX_N``)."""
    mig, mag = magnitude(D_lo, D_hi)
    hi = _norm2_up(mag)
    lo = np.max(mig, axis=(-2, -1))
    if proved is not None:
        lo, hi = np.maximum(lo, proved[0]), np.minimum(hi, proved[1])
    return lo, hi


def _check_tol(tol: float | Fraction) -> float:
    """``tol`` as a float, exact values rounded down (a residual within it is within the true ``tol``)."""
    return real(tol, "tol", rounding="down")


_COMPILED_MAX_N = 16     # the compiled kernels' per-matrix loops; larger matrices are LAPACK-bound anyway


def _fields(M: np.ndarray) -> dict[str, Any]:
    """The bounds, residuals and sign of a validated batch ``(B..., n, n)``: the numpy path."""
    nonneg = np.all(M >= 0, axis=(-2, -1))
    s = _exact_sums(M, nonneg)
    M_lo, M_hi = entry_interval(M)
    trace = sum_enclosure(np.diagonal(M, axis1=-2, axis2=-1), -1)
    out = _bounds(M_lo, M_hi, nonneg, s, trace)
    out.update(nonnegative=nonneg, row_residual=s.row_res, col_residual=s.col_res)
    return out


def _exact_radius_where_loose(M: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``rho (..., 2)`` with its lower end raised, where wider than :data:`enclose.REFINE`, by a real
    eigenvalue proved exactly: where LAPACK finds a real eigenvalue ``lambda`` of larger modulus than
    the lower end, ``det(M - t I)`` (integers: :func:`exact_chain.determinant`) changes sign between
    ``t = lambda (1 -+ delta)``, so an eigenvalue lies between and ``rho >= |lambda| (1 - delta)``. For
    entries whose exponents spread independently over hundreds of binades (the similarity bounds'
    eigenvector basis is lost there and the lower end fell back to ``|tr| / n``); within the same work
    budget as :func:`_exact_sigma_min_where_wide` (four determinants a matrix at most)."""
    loose = _loose(rho[..., 0], rho[..., 1], REFINE)
    if not loose.any() or np.sum(4 * (matrix_work(M[loose]) / 3 + EXACT_MEMBER_WORK)) > INVERSE_WORK:
        return rho
    exact = [(idx, *exact_chain(M[idx][None])) for idx in zip(*np.nonzero(loose))]
    rho = rho.copy()
    for idx, N, d in exact:
        with np.errstate(all="ignore"):
            A = np.asarray(to_float(M[idx]), dtype=np.float64)
            ev = np.linalg.eigvals(A) if np.isfinite(A).all() else np.array([])
        for lam in sorted((x.real for x in ev if x.imag == 0 and abs(x.real) > rho[idx][0]), key=abs, reverse=True)[:2]:
            found = _real_eigenvalue_floor(N, d, float(lam))
            if found is not None:
                rho[idx][0] = max(rho[idx][0], found)
                break
    return rho


def _real_eigenvalue_floor(N: np.ndarray, d: int, lam: float) -> float | None:
    """``|lambda| (1 - delta)`` rounded down where ``det(N / d - t I)`` changes sign (or vanishes) between the
    floats ``t = lambda (1 -+ delta)``, ``delta`` 2**-40 then 2**-20; None where it does not."""
    n = N.shape[-1]
    for delta in (2.0 ** -40, 2.0 ** -20):
        ends = [lam * (1 - delta), lam * (1 + delta)]
        signs = []
        for t in ends:
            p, q = t.as_integer_ratio()                       # t = p / q: det(q N - p d I) has det(M - t I)'s sign
            signs.append(determinant(q * N - p * d * np.eye(n, dtype=np.int64).astype(object)))
        if 0 in signs or (signs[0] > 0) != (signs[1] > 0):
            return min(abs(ends[0]), abs(ends[1]))
    return None


def _exact_sigma_min_where_wide(M: np.ndarray, smin: np.ndarray) -> np.ndarray:
    """``smin (..., 2)`` intersected with :func:`_exact_sigma_min` of each member still wider than
    :data:`SMIN_WIDE` (the matrix in integers over a common denominator: floats and Fractions are
    rationals), when their estimated work together is below :data:`exact_chain.INVERSE_WORK`. Entries
    whose exponents spread over hundreds of binades, independently, defeat every float inverse; the
    exact one is as tight as one ulp per entry of ``M^-1`` allows."""
    with np.errstate(invalid="ignore"):
        wide = ~(smin[..., 1] - smin[..., 0] <= SMIN_WIDE * smin[..., 1])
    if not wide.any() or np.sum(matrix_work(M[wide]) + EXACT_MEMBER_WORK) > INVERSE_WORK:
        return smin
    exact = [(idx, *exact_chain(M[idx][None])) for idx in zip(*np.nonzero(wide))]
    smin = smin.copy()
    for idx, N, d in exact:
        found = _exact_sigma_min(N, d)
        if found is not None:
            smin[idx] = max(smin[idx][0], found[0]), min(smin[idx][1], found[1])
    return smin


def _compiled_fields(M: np.ndarray) -> dict[str, Any] | None:
    """:func:`_fields` by the compiled kernels (:mod:`birkhoff._compiled.certify`) where they are loaded and
    apply (float input, ``n <= _COMPILED_MAX_N``), the members they hand back certified by the numpy path; else None."""
    n = M.shape[-1]
    compiled = None if M.dtype == object or n > _COMPILED_MAX_N else _compiled.kernels("certify", M.size * n)
    if compiled is None:
        return None
    flat = M.reshape(-1, n, n)
    out, handback = compiled.certify_batch(flat)
    if handback.any():
        rest = _fields(flat[handback])
        for k, v in out.items():
            v[handback] = rest[k]
    return {k: v.reshape(M.shape[:-2] + v.shape[1:]) for k, v in out.items()}


def _certify_arrays(M: np.ndarray, tol: float) -> dict[str, Any]:
    """All certificate fields for a validated ``(..., n, n)`` array (one ``(n, n)`` matrix: a batch of one)."""
    if M.ndim == 2:
        one = _certify_arrays(M[None], tol)
        return {k: np.asarray(v[0]) if isinstance(v, np.ndarray) else v for k, v in one.items()}
    out = _compiled_fields(M)
    if out is None:
        out = _fields(M)
    out["sigma_min"] = _exact_sigma_min_where_wide(M, out["sigma_min"])
    out["spectral_radius"] = _exact_radius_where_loose(M, out["spectral_radius"])
    nonneg, row_res, col_res = out["nonnegative"], out["row_residual"], out["col_residual"]
    out.update(n=M.shape[-1], exact=(row_res == 0) & (col_res == 0),
               doubly_stochastic=nonneg & (row_res <= tol) & (col_res <= tol), tol=tol)
    return out


def _pick(d: dict[str, Any], idx) -> dict[str, Any]:
    """Certificate fields of batch element ``idx``: intervals become ``(lo, hi)`` tuples."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            v = v[idx]
            v = (float(v[0]), float(v[1])) if v.ndim == 1 else v.item()
        out[k] = v
    return out


# ----------------------------------------------------------------------------- public

def certify(M, *, tol: float | Fraction = 0.0, distance: bool = False) -> Certificate:
    """Rigorous certificate for one square matrix (float or exact).

    Parameters
    ----------
    M : array_like, shape (n, n)
    tol : float
        Residual allowed for ``doubly_stochastic`` (0: exactly DS).
    distance : bool
        Also enclose the Frobenius distance to the Birkhoff polytope
        (:func:`certify_projection` at :func:`birkhoff.project.project`).

    Returns
    -------
    Certificate

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> certify([[F(1, 3), F(2, 3)], [F(2, 3), F(1, 3)]]).exact
    True
    >>> certify([[0.1, 0.2, 0.7], [0.7, 0.1, 0.2], [0.2, 0.7, 0.1]]).exact
    False
    """
    tol = _check_tol(tol)
    distance = flag(distance, "distance")
    A = as_matrix(M, name="M")
    fields_ = _pick(_certify_arrays(A[None], tol), 0)
    if distance:
        fields_["distance"] = certify_projection(A, project(A))
    return Certificate(**fields_)


def certify_batch(M, *, tol: float | Fraction = 0.0) -> BatchCertificate:
    """Vectorised :func:`certify` over ``(..., n, n)``: same rigour, arrays out.

    Sums use Ogita-Rump-Oishi Sum2 with its a priori error bound (exact fallback only
    for rows it cannot decide); everything else is batched numpy.

    Examples
    --------
    >>> import numpy as np
    >>> batch = certify_batch(np.full((5, 4, 4), 0.25))
    >>> bool(batch.doubly_stochastic.all()), batch.gain_forward[0]
    (True, array([1., 1.]))
    """
    tol = _check_tol(tol)
    A = as_matrix(M, batched=True, name="M")
    d = _certify_arrays(A, tol)
    return BatchCertificate(**d)


def _chain_product(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval enclosure of ``M[L-1] @ ... @ M[0]`` by a balanced tree of batched products."""
    while lo.shape[0] > 1:
        odd = lo.shape[0] % 2
        m = lo.shape[0] - odd
        p_lo, p_hi = matmul_enclosure(lo[1:m:2], hi[1:m:2], lo[0:m:2], hi[0:m:2])
        if odd:
            p_lo = np.concatenate([p_lo, lo[-1:]])
            p_hi = np.concatenate([p_hi, hi[-1:]])
        lo, hi = p_lo, p_hi
    return lo[0], hi[0]


def _exact_sigma_min(N: np.ndarray, d: int) -> Interval | None:
    """``sigma_min(P)`` of the exact product ``P = N / d`` as ``1 / sigma_max(P^-1)``: ``P^-1 = d adj(N) / det(N)``
    exactly (fraction-free), enclosed one ulp per entry at its own scale, its ``sigma_max`` proved in its own
    singular basis; ``(0, 0)`` when ``det(N) = 0``; None past :data:`exact_chain.INVERSE_WORK`. A truth below
    the float range is enclosed as ``[0, 2**-1074]``."""
    if inverse_work(N) > INVERSE_WORK:
        return None
    adj, det = adjugate(N)
    if det == 0:
        return 0.0, 0.0
    e, X_lo, X_hi = scaled_interval(adj * (d if det > 0 else -d), abs(det))
    with np.errstate(over="ignore", invalid="ignore"):
        mid = X_lo + 0.5 * (X_hi - X_lo)
    s_lo, s_hi = (float(x[0]) for x in singular_value_bounds(X_lo[None], X_hi[None], svd_bases(mid[None])[1])[0])
    if not (s_lo > 0 and np.isfinite(s_hi)):
        return None
    return max(float(scale_down(div_down(1.0, s_hi), -e)), 0.0), float(scale_up(div_up(1.0, s_lo), -e))


def _drift(res: np.ndarray, gain: np.ndarray) -> float:
    """Upper bound of the margin residual of a product from its factors' residuals.

    ``P_k 1 - 1 = M_k (P_{k-1} 1 - 1) + (M_k 1 - 1)`` gives
    ``d_k <= ||M_k||_inf d_{k-1} + rho_k`` (rows, factors in application order).
    """
    d = 0.0
    with np.errstate(over="ignore"):                       # an overflowing drift is bounded by inf
        for r, g in zip(res, gain):
            d = float(np.nextafter(np.float64(mul_up(g, d)) + r, _INF)) if (d or r) else 0.0
    return d


def _ndim(x: Any) -> int | None:
    """``np.ndim(x)``, or None for a ragged nested sequence (which ``as_matrix`` then refuses)."""
    try:
        return np.ndim(x)
    except ValueError:
        return None


def certify_product(Ms, *, tol: float | Fraction = 0.0) -> ProductCertificate:
    """Rigorous certificate of the product ``P = Ms[-1] @ ... @ Ms[0]`` of a matrix chain.

    This is the composite residual map ``prod_l H_res^(l)`` of a deep HC network
    (``Ms[0]`` is the first layer). Uses (i) an interval product over a balanced tree of
    batched products, (ii) exact closure facts: if every factor has exact unit margins
    the product does too (``M 1 = 1, N 1 = 1 => MN 1 = 1``) and products of nonnegative
    factors are nonnegative, (iii) the residual drift recursion of :func:`_drift`.

    Parameters
    ----------
    Ms : array_like, shape (L, n, n), or a sequence of ``(n, n)`` matrices
    tol : float
        Residual allowed for ``doubly_stochastic``.

    Examples
    --------
    >>> import numpy as np
    >>> from fractions import Fraction as F
    >>> chain = np.array([[[F(1, 4), F(3, 4)], [F(3, 4), F(1, 4)]]] * 1000, dtype=object)
    >>> c = certify_product(chain)
    >>> c.doubly_stochastic, c.exact
    (True, True)
    """
    tol = _check_tol(tol)
    if isinstance(Ms, (list, tuple)) and Ms and not np.isscalar(Ms[0]) and _ndim(Ms[0]) in (2, None):
        mats = [as_matrix(m, name=f"Ms[{i}]") for i, m in enumerate(Ms)]
        shapes = sorted({m.shape for m in mats})
        if len(shapes) > 1:
            raise InvalidMatrixError(f"Ms must be matrices of one size n x n, got shapes {shapes}")
        Ms = np.stack(mats)
    A = as_matrix(Ms, batched=True, name="Ms")
    if A.ndim == 2:
        A = A[None]
    if A.ndim != 3:
        raise InvalidMatrixError(f"Ms must be a sequence of n x n matrices, got shape {A.shape}")
    factors = _certify_arrays(A, tol)
    L, n = A.shape[0], A.shape[-1]
    nonneg_all = bool(factors["nonnegative"].all())
    exact_all = bool(factors["exact"].all())
    centred, exact_P = None, None
    if chain_work(A) <= CHAIN_WORK:            # short enough to multiply exactly: one ulp per entry
        exact_P = N, d = exact_chain(A)
        P_lo, P_hi = ratio_interval(N, d)
        e_d, D_lo, D_hi = centred_interval(N, d)
        centred = (e_d[None], D_lo[None], D_hi[None])
    else:
        P_lo, P_hi = _chain_product(*entry_interval(A))
    if nonneg_all:
        P_lo = np.maximum(P_lo, 0.0)
    d_row = _drift(factors["row_residual"], factors["gain_forward"][:, 1])
    d_col = _drift(factors["col_residual"][::-1], factors["gain_backward"][::-1, 1])
    res_row_iv = max(float(residual_bound((sum_enclosure(P_lo, -1, -1.0)[0],
                                            sum_enclosure(P_hi, -1, -1.0)[1]))), 0.0)
    res_col_iv = max(float(residual_bound((sum_enclosure(P_lo, -2, -1.0)[0],
                                            sum_enclosure(P_hi, -2, -1.0)[1]))), 0.0)
    row_res = 0.0 if exact_all else min(d_row, float(res_row_iv))
    col_res = 0.0 if exact_all else min(d_col, float(res_col_iv))
    nonneg = nonneg_all or bool((P_lo >= 0).all())

    def margin(axis: int, d: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = sum_enclosure(P_lo, axis)[0], sum_enclosure(P_hi, axis)[1]
        lo = np.maximum(lo, np.nextafter(1.0 - d, -_INF) if d else 1.0)
        hi = np.minimum(hi, np.nextafter(1.0 + d, _INF) if d else 1.0)
        return lo, hi

    rows, cols = margin(-1, row_res), margin(-2, col_res)
    mig, mag = magnitude(P_lo, P_hi)
    if nonneg:
        abs_rows, abs_cols = rows, cols
    else:
        abs_rows = (sum_enclosure(mig, -1)[0], sum_enclosure(mag, -1)[1])
        abs_cols = (sum_enclosure(mig, -2)[0], sum_enclosure(mag, -2)[1])
    r1, c1, ar1, ac1 = ((lo[None], hi[None]) for lo, hi in (rows, cols, abs_rows, abs_cols))
    s = _Sums(r1, c1, ar1, ac1, np.array([row_res]), np.array([col_res]))
    trace = (sum_enclosure(np.diagonal(P_lo)[None], -1)[0],
             sum_enclosure(np.diagonal(P_hi)[None], -1)[1])
    exact_smin = _exact_sigma_min(*exact_P) if exact_P is not None else None
    bounds = _pick(_bounds(P_lo[None], P_hi[None], np.array([nonneg]), s, trace, centred, exact_smin is None), 0)
    smin = bounds["sigma_min"]
    if exact_smin is not None:
        smin = (max(smin[0], exact_smin[0]), min(smin[1], exact_smin[1]))

    def chain(values: np.ndarray) -> float:
        acc = 1.0
        for v in values:
            acc = float(mul_up(acc, v))
        return acc

    fgf = chain(factors["gain_forward"][:, 1])
    fgb = chain(factors["gain_backward"][:, 1])
    fsn = chain(factors["spectral_norm"][:, 1])
    # exact unit margins: (A - J/n)(B - J/n) = AB - J/n, so ||P - J/n|| <= prod ||M_l - J/n||
    fs2 = chain(factors["sigma2"][:, 1]) if exact_all else _INF
    gf = (bounds["gain_forward"][0], min(bounds["gain_forward"][1], fgf))
    gb = (bounds["gain_backward"][0], min(bounds["gain_backward"][1], fgb))
    sn = (bounds["spectral_norm"][0], min(bounds["spectral_norm"][1], fsn))
    return ProductCertificate(
        n=n, nonnegative=nonneg, row_residual=row_res, col_residual=col_res,
        doubly_stochastic=nonneg and row_res <= tol and col_res <= tol,
        exact=row_res == 0 and col_res == 0,
        spectral_radius=(bounds["spectral_radius"][0], min(bounds["spectral_radius"][1], sn[1])),
        spectral_norm=sn, gain_forward=gf, gain_backward=gb, tol=tol,
        sigma2=(min(bounds["sigma2"][0], fs2), min(bounds["sigma2"][1], fs2)),
        sigma_min=(smin[0], min(smin[1], sn[1])),
        depth=L, factor_gain_forward=fgf, factor_gain_backward=fgb, factor_spectral_norm=fsn, factor_sigma2=fs2)


# ----------------------------------------------------------------------------- projection distance

def _dyadic(*arrays: np.ndarray, max_exp: int = 0) -> tuple[list[np.ndarray], int]:
    """Float64 arrays as exact Python integers at one common binary exponent ``E <= max_exp``:
    ``x = I * 2^E`` entry by entry (object arrays)."""
    parts = []
    for x in arrays:
        m, e = np.frexp(np.asarray(x, dtype=np.float64))
        parts.append(((m * 2.0 ** 53).astype(np.int64), e.astype(np.int64) - 53))
    E = min([max_exp] + [int(sh[M != 0].min()) for M, sh in parts if (M != 0).any()])
    return [M.astype(object) << np.where(M != 0, sh - E, 0).astype(object) for M, sh in parts], E


def _dyadic_value(value: int, exp2: int, denominator: int = 1) -> Fraction:
    """``value * 2^exp2 / denominator`` as a Fraction."""
    return Fraction(value << exp2, denominator) if exp2 >= 0 else Fraction(value, denominator << -exp2)


def _exact_ds_repair(X: np.ndarray) -> tuple[np.ndarray, int, int]:
    """An exactly DS matrix next to a nonnegative near-DS float ``X``, as ``(Z_int, E, d)``:
    ``Z = Z_int * 2^E / d`` with Python integers.

    ``Y = X + e_r 1^T / n + 1 e_c^T / n - delta 1 1^T / n^2`` has exact unit margins
    (``e_r = 1 - X 1``, ``e_c = 1 - X^T 1``, ``delta = 1^T e_r``); if that made entries
    negative, mix in the uniform matrix: ``(1 - theta) Y + theta J / n`` with the least
    ``theta`` that restores nonnegativity. Integer arithmetic throughout (floats are
    dyadic rationals): a 2000 x 2000 repair takes seconds, not minutes of Fractions.
    """
    n = X.shape[0]
    (Xi,), E = _dyadic(np.maximum(X, 0.0))           # E <= 0: 1 is the integer 2^-E
    one = 1 << -E
    e_r = one - Xi.sum(axis=1)
    e_c = one - Xi.sum(axis=0)
    Y = n * n * Xi + n * e_r[:, None] + n * e_c[None, :] - e_r.sum()     # = n^2 Y in units of 2^E
    lowest = min(Y.flat)
    if lowest >= 0:
        return Y, E, n * n
    uniform = n * one                               # n^2 (1 / n) in units of 2^E
    theta = max(Fraction(-y, uniform - y) for y in Y.flat if y < 0)
    p, q = theta.numerator, theta.denominator
    return (q - p) * Y + p * uniform, E, n * n * q


def certify_projection(A, result) -> tuple[float, float]:
    """Rigorous interval ``(lo, hi)`` for ``dist_F(A, Birkhoff polytope)``.

    ``lo``: weak duality ``dist^2 >= ||A||^2 - 2 phi(u, v)`` at the result's duals,
    evaluated exactly in rational arithmetic. ``hi``: ``||Z - A||_F`` for an exactly
    DS ``Z`` built from the result's ``X`` (:func:`_exact_ds_repair`), also exact, or
    0 when ``A`` itself is exactly DS.
    Square roots are rounded outward. Valid for any ``result`` with ``X, u, v``
    (ours or cvxpy's); only the width depends on its accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[2.0, 0.0], [0.0, 0.0]])
    >>> lo, hi = certify_projection(A, project(A))     # the distance from A to the polytope is sqrt(2)
    >>> bool(lo <= 2 ** 0.5 <= hi), hi - lo
    (True, 2.220446049250313e-16)
    """
    M = as_matrix(A, name="A")
    if not all(hasattr(result, k) for k in ("X", "u", "v")):
        raise InvalidArgumentError(f"result must be a Projection (fields X, u, v), got {type(result).__name__}")
    X = to_float(as_matrix(result.X, name="result.X"), "result.X")
    u = to_float(as_vector(result.u, "result.u")[None], "result.u")[0]
    v = to_float(as_vector(result.v, "result.v")[None], "result.v")[0]
    n = M.shape[0]
    if X.shape != M.shape or u.size != n or v.size != n:
        raise InvalidMatrixError(f"result does not match A {M.shape}: X {X.shape}, u ({u.size},), v ({v.size},)")
    Z, EZ, d = _exact_ds_repair(X)
    if is_exact(M):                     # exact input: rational arithmetic
        Aq = M
        uq, vq = to_fraction(u[None])[0], to_fraction(v[None])[0]
        Bq = Aq - uq[:, None] - vq[None, :]
        Bp = np.where(Bq > 0, Bq, np.array(Fraction(0), dtype=object))
        dual = (Aq * Aq).sum() - (Bp * Bp).sum() - 2 * (uq.sum() + vq.sum())
        exactly_ds = bool((Aq >= 0).all()) and all((Aq.sum(axis=k) == 1).all() for k in (0, 1))
        D = Z * _dyadic_value(1, EZ, d) - Aq
        primal = Fraction(0) if exactly_ds else (D * D).sum()
    else:                               # floats are dyadic: the same sums in integers
        (Ai, ui, vi), E = _dyadic(M, u, v, max_exp=EZ)
        B = Ai - ui[:, None] - vi[None, :]
        Bp = np.where(B > 0, B, 0)
        dual = (_dyadic_value(int((Ai * Ai).sum() - (Bp * Bp).sum()), 2 * E)
                - 2 * _dyadic_value(int(ui.sum() + vi.sum()), E))
        exactly_ds = bool((Ai >= 0).all()) and all((Ai.sum(axis=k) == 1 << -E).all() for k in (0, 1))
        # D = Z - A = (Z_int 2^(EZ - E) - d A_int) 2^E / d   (E <= EZ <= 0)
        Dd = (Z << (EZ - E)) - d * Ai
        primal = Fraction(0) if exactly_ds else _dyadic_value(int((Dd * Dd).sum()), 2 * E, d * d)
    return sqrt_interval(max(dual, Fraction(0)))[0], sqrt_interval(primal)[1]


# ----------------------------------------------------------------------------- Lipschitz

def _vector_norm_up(h, name: str, n: int) -> float:
    """Float upper bound of the Euclidean norm of a vector of ``n`` entries (float or exact)."""
    a = as_vector(h, name)[None]
    if a.size != n:
        raise InvalidMatrixError(f"{name} must have {n} entries to match H_res, got {a.size}")
    lo, hi = entry_interval(a)
    _, mag = magnitude(lo, hi)
    e = scale_exponent(mag, (0, 1))                   # prescaled: squares neither over- nor underflow
    with np.errstate(over="ignore"):                  # an overflowing norm is bounded by inf
        return float(scale_up(sqrt_up(sum_squares_up(scale_up(mag, -e), (0, 1))), e))


def hc_lipschitz_bound(H_res, H_pre, H_post, lip_f: float = 1.0) -> float:
    """Rigorous upper bound of the l2 Lipschitz constant of one HC layer.

    ``x -> H_res x + H_post^T F(H_pre x)`` on ``x in R^{n x C}`` (Frobenius norm), for
    static mixing maps and ``F`` with Lipschitz constant ``lip_f``:
    ``Lip <= ||H_res||_2 + ||H_post||_2 lip_f ||H_pre||_2``.

    Examples
    --------
    >>> import numpy as np
    >>> hc_lipschitz_bound(np.eye(4), np.full((1, 4), 0.25), np.ones((1, 4)))    # 2, rounded upward
    2.000000000000002
    """
    lip_f = real(lip_f, "lip_f", rounding="up")
    cert = certify(H_res)
    pre = _vector_norm_up(H_pre, "H_pre", cert.n)
    post = _vector_norm_up(H_post, "H_post", cert.n)
    branch = mul_up(mul_up(post, lip_f), pre)
    return float(np.nextafter(cert.spectral_norm[1] + float(branch), _INF))


def composite_lipschitz_bound(layers: Iterable[Sequence[Any]]) -> float:
    """Upper bound of the Lipschitz constant of a stack: product of per-layer bounds.

    ``layers`` yields ``(H_res, H_pre, H_post)`` or ``(H_res, H_pre, H_post, lip_f)``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = (np.eye(4), np.full((1, 4), 0.25), np.ones((1, 4)))
    >>> composite_lipschitz_bound([layer] * 10)      # 2 ** 10, rounded upward
    1024.0000000000134
    """
    acc = 1.0
    count = 0
    try:
        layers = iter(layers)
    except TypeError:
        raise InvalidMatrixError(f"layers must be an iterable of (H_res, H_pre, H_post[, lip_f]), "
                                 f"got {type(layers).__name__}") from None
    for k, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (3, 4):
            raise InvalidMatrixError(f"layers[{k}] must be (H_res, H_pre, H_post) or (H_res, H_pre, H_post, lip_f), "
                                     f"got {type(layer).__name__}"
                                     f"{f' of length {len(layer)}' if isinstance(layer, (tuple, list)) else ''}")
        acc = float(mul_up(acc, hc_lipschitz_bound(*layer)))
        count += 1
    if count == 0:
        raise InvalidMatrixError("composite_lipschitz_bound needs at least one layer")
    return acc
