"""Euclidean projection onto the Birkhoff polytope (its rigorous distance certificate is
:func:`birkhoff.certify.certify_projection`).

``min ||X - A||_F^2  s.t.  X >= 0, X 1 = 1, X^T 1 = 1``.

The solution is ``X = max(0, A - u 1^T - 1 v^T)`` for the dual vectors ``(u, v)`` that
minimise the convex, piecewise quadratic

    phi(u, v) = 1/2 ||max(0, A - u 1^T - 1 v^T)||^2 + 1^T u + 1^T v,

and weak duality gives, for *any* ``(u, v)``,

    dist(A, Birkhoff)^2 >= ||A||^2 - 2 phi(u, v).

``project`` minimises ``phi`` by a regularised semismooth Newton method (generalised
Hessian ``[[diag(W 1), W], [W^T, diag(W^T 1)]]`` with ``W = [A - u 1^T - 1 v^T > 0]``,
Levenberg-Marquardt shift proportional to the residual, Armijo backtracking), batched
over leading dimensions; cf. Li, Sun & Toh, "On the efficient computation of a
generalized Jacobian of the projector over the Birkhoff polytope", Math. Program. 179
(2020). It starts from the projection onto the affine hull, for n > 8 followed by one
exact block-coordinate round (each row's ``u_i``, then each column's ``v_j``, set by the
simplex-projection threshold); a DS input is returned after zero Newton iterations.
When a Newton step stalls, such a round is taken instead.

Every result is checked against ``A`` itself before it is returned (:func:`_quality`): ``X >= 0``,
a rigorous bound of its max marginal error, and of its KKT residual
``max |X - max(0, A - u 1^T - 1 v^T)|`` for duals held exactly. A float solve of the doubly
centred matrix loses what lies below ``eps max|A|`` (one entry ``1e14`` drowns the ``O(1)``
ones); a result that fails the check is refined: ``A`` is shifted by its duals in exact rational
arithmetic (the shift does not move the projection), rounded once, and solved again at ``O(1)``
scale, until the check passes (at most ``_REFINE`` rounds) or :class:`ConvergenceError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _compiled
from .validate import MAX_ITER, as_matrix, count, real, to_float, to_fraction
from .errors import ConvergenceError

__all__ = ["Projection", "project", "project_cvxpy"]

# Doubly centred inputs at least this large are first tried as a vertex (``_vertex``): their
# projection is a permutation matrix unless assignments tie to within ~n.
_VERTEX_SIZE = 1e6
# Newton starts with an exact block round only above this n: at n <= 8 the round's sorts cost more
# than the Newton steps they save (10 000 4x4: 56 -> 47 ms, same 6 steps; n = 8: 0.76 -> 0.54 ms).
_ROUND_FIRST_ABOVE = 8
_COMPILED_MAX_N = 64                  # the compiled Newton's elimination; above, LAPACK's blocked solve wins
# Refinement rounds for results that fail their check (each: one exact shift, one float solve,
# gaining ~15 decimal digits of the duals: 40 rounds span the float range, 1e-324..1e308).
_REFINE = 40
# The tolerance floor, in units of n eps: what rounding X's n entries per row allows.
_FLOOR = 16
_EPS = np.finfo(np.float64).eps
# One float Newton solve is asked to resolve at most this ratio of the data's scale to the
# marginals' (1); a larger one is solved by continuation in exact shifts (``_refine``).
_CONTINUE_ABOVE = 2.0 ** 40


@dataclass(frozen=True)
class Projection:
    """Result of a projection onto the Birkhoff polytope (arrays carry the batch shape).

    ``X = max(0, A - u 1^T - 1 v^T)``; ``objective = ||X - A||_F^2``; ``gap`` = objective
    minus the dual value ``||A||^2 - 2 phi(u, v)`` (0 at the optimum; it is a float
    estimate, :func:`certify_projection` gives the rigorous interval). ``residual``: a
    rigorous upper bound of ``X``'s max marginal error ``max |X 1 - 1|, |X^T 1 - 1|``;
    ``converged`` is True only when it and the KKT residual passed the check at the
    effective tolerance (a result that fails is not returned: :class:`ConvergenceError`).
    """

    X: np.ndarray
    u: np.ndarray
    v: np.ndarray
    objective: np.ndarray | float
    gap: np.ndarray | float
    iterations: int
    converged: np.ndarray | bool
    residual: np.ndarray | float


def _affine_start(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Duals of the projection onto ``{X 1 = 1, X^T 1 = 1}`` (no sign constraint)."""
    n = A.shape[-1]
    r = A.sum(-1) - 1.0
    c = A.sum(-2) - 1.0
    s = r.sum(-1, keepdims=True)
    return r / n - s / (2 * n * n), c / n - s / (2 * n * n)


def _threshold(Y: np.ndarray) -> np.ndarray:
    """``tau`` with ``sum_j max(0, Y_j - tau) = 1`` along the last axis (simplex projection)."""
    n = Y.shape[-1]
    Ys = -np.sort(-Y, axis=-1)
    cums = np.cumsum(Ys, axis=-1) - 1.0
    k = np.arange(1, n + 1)
    valid = Ys - cums / k > 0
    last = n - 1 - np.argmax(valid[..., ::-1], axis=-1)       # largest valid k (0-based)
    return np.take_along_axis(cums, last[..., None], -1)[..., 0] / (last + 1)


def _block_round(A: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact minimisation of ``phi`` over ``u`` (rows) and then ``v`` (columns)."""
    u = _threshold(A - v[..., None, :])
    v = _threshold(np.swapaxes(A - u[..., :, None], -1, -2))
    return u, v


def _max_abs(x: np.ndarray) -> np.ndarray:
    """``max |x|`` over the last axis; for a batch of short rows a loop over the short axis
    beats numpy's reduce 10x."""
    if x.ndim == 1 or x.shape[-1] > 32:
        return np.max(np.abs(x), axis=-1)
    out = np.abs(x[..., 0])
    for k in range(1, x.shape[-1]):
        np.maximum(out, np.abs(x[..., k]), out=out)
    return out


def _gradient(P: np.ndarray) -> np.ndarray:
    """``grad phi = (1 - P 1, 1 - P^T 1)`` for ``P = max(0, A - u 1^T - 1 v^T)``."""
    return 1.0 - np.concatenate([np.einsum("...ij->...i", P), np.einsum("...ij->...j", P)], axis=-1)


def _half_square(A: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``1/2 ||X||^2`` (the quadratic part of ``phi``) and the max marginal error of
    ``X = max(0, A - u 1^T - 1 v^T)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        P = np.maximum(A - u[..., :, None] - v[..., None, :], 0.0)
        return 0.5 * np.einsum("...ij,...ij->...", P, P), _max_abs(_gradient(P))


def _phi(A: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``phi(u, v)`` (float; the rigorous value is :func:`certify_projection`'s)."""
    return _half_square(A, u, v)[0] + u.sum(-1) + v.sum(-1)


def _gap(X: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Primal minus dual value at duals ``(u, v)`` and ``X = max(0, A - u 1^T - 1 v^T)``:
    ``2 (u . (1 - X 1) + v . (1 - X^T 1))`` (complementary slackness: no squares of ``A``,
    which overflow for ``|A| > 1e154``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return 2.0 * (np.einsum("...i,...i->...", u, 1.0 - X.sum(-1)) + np.einsum("...j,...j->...", v, 1.0 - X.sum(-2)))


def _newton_direction(W: np.ndarray, g: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Solve ``(H + mu I) d = -g`` for ``H = [[diag(W 1), W], [W^T, diag(W^T 1)]]``.

    Through the Schur complement on the column block:
    ``S = diag(W^T 1) + mu - W^T diag(1 / (W 1 + mu)) W`` (n x n instead of 2n x 2n).
    """
    n = W.shape[-1]
    g_u, g_v = g[:, :n], g[:, n:]
    inv_r = 1.0 / (np.einsum("bij->bi", W) + mu[:, None])          # (B, n)
    S = -(np.swapaxes(W * inv_r[:, :, None], -1, -2) @ W)
    S[:, np.arange(n), np.arange(n)] += np.einsum("bij->bj", W) + mu[:, None]
    rhs = -g_v + np.einsum("bij,bi->bj", W, inv_r * g_u)
    try:
        d_v = np.linalg.solve(S, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:       # S singular in floating point (tiny shift, |A| large):
        d_v = np.stack([np.linalg.lstsq(Sb, rb, rcond=None)[0] for Sb, rb in zip(S, rhs)])  # least norm
    d_u = inv_r * (-g_u - np.einsum("bij,bj->bi", W, d_v))
    return np.concatenate([d_u, d_v], axis=-1)


def _vertex(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The projection when it is a permutation matrix, with its duals: ``(X, u, v)`` or None.

    ``P_sigma = max(0, A - u 1^T - 1 v^T)`` (hence the projection, by the KKT conditions)
    iff ``A_i,sigma(i) - u_i - v_sigma(i) = 1`` and ``A_ij - u_i - v_j <= 0`` elsewhere. With
    ``u_i = A_i,sigma(i) - 1 - v_sigma(i)`` these are the difference constraints
    ``v_j >= v_sigma(i) + A_ij - A_i,sigma(i) + 1``, solvable (longest paths, Bellman-Ford)
    iff no cycle of the assignment graph has positive weight: iff ``sigma`` is the optimal
    assignment and every other assignment is worse by at least the length of the cycle
    that separates them. That holds for large ``|A|`` (differences of order ``|A| / n``),
    where float64 cannot represent ``X = max(0, A - u - v)`` to better than ``eps |A|``; then
    ``X`` is returned as the exact 0/1 matrix.

    Rigour: every edge weight is raised by ``delta``, a bound of the rounding in the weights
    and in the path sums (checked again on the fixed point's ``max |v|``), so that a float
    fixed point satisfies the exact constraints of ``A``'s own entries: the returned vertex is
    exactly the projection, or None is returned and the caller solves by Newton.
    """
    n = A.shape[0]
    from scipy.optimize import linear_sum_assignment        # where used: scipy.optimize costs 0.3 s to import

    rows, sigma = linear_sum_assignment(A, maximize=True)
    on = A[rows, sigma]
    G = np.full((n, n), -np.inf)                      # G[sigma(i), j]: weight of the edge sigma(i) -> j
    with np.errstate(over="ignore", invalid="ignore"):
        G[sigma] = A - on[:, None] + 1.0
        weight_error = _EPS * (2.0 * np.abs(A).max() + 1.0)          # |fl(A_ij - on_i + 1) - exact|
        delta = 4.0 * (n + 2) * _EPS * (2.0 * np.abs(A).max() + 2.0) + 2.0 * weight_error
    if not np.isfinite(delta):
        return None
    G[sigma, sigma] = -np.inf
    G += delta
    v = np.zeros(n)
    for _ in range(n + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            longer = np.maximum(v, np.max(v[:, None] + G, axis=0))
        if np.array_equal(longer, v):
            # fl(v_s + G'_sj) <= v_j gives v_j >= v_s + g_sj + delta - weight_error - eps (|v_s| + |G'_sj|)
            finite = G[np.isfinite(G)]
            slack = _EPS * (np.abs(v).max() + (np.abs(finite).max() if finite.size else 0.0)) + weight_error
            if not delta >= slack:
                return None
            X = np.zeros((n, n))
            X[rows, sigma] = 1.0
            return X, on - 1.0 - v[sigma], v
        v = longer
    return None                                       # a positive cycle: the projection is no vertex


def _newton(A: np.ndarray, tol: float | np.ndarray, scale: np.ndarray, max_iter: int,
            start: tuple[np.ndarray, np.ndarray] | None = None):
    """Semismooth Newton on ``phi`` for a flat batch ``A`` of shape (B, n, n), from ``start``
    (default: the affine start, and above n = 8 one exact block round).

    The Levenberg-Marquardt shift ``1e-3 min(res, 1) / scale`` is relative to the size of
    ``A``: along directions where the model is linear (a pattern that must change, far
    away when ``A`` is large) the step can then reach the next kink in one backtracked
    line search. Backtracking re-evaluates only the matrices still pending.
    """
    Bt, n, _ = A.shape
    if start is None:
        u, v = _affine_start(A)
        if n > _ROUND_FIRST_ABOVE:      # an exact round first saves ~2 Newton steps, worth its sorts above n = 8
            u, v = _block_round(A, u, v)
    else:
        u, v = (s.copy() for s in start)
    it = 0
    while True:
        with np.errstate(over="ignore", invalid="ignore"):
            Bm = A - u[:, :, None] - v[:, None, :]
        P = np.maximum(Bm, 0.0)
        g = _gradient(P)
        res = _max_abs(g)
        active = res > tol
        if not active.any() or it >= max_iter:
            break
        it += 1
        idx = slice(None) if active.all() else np.flatnonzero(active)   # views when all active
        Ai, ui, vi, gi, ri = A[idx], u[idx], v[idx], g[idx], res[idx]
        mu = (1e-3 * np.minimum(ri, 1.0) + 1e-14) / scale[idx]
        d = _newton_direction((Bm[idx] > 0).astype(np.float64), gi, mu)
        du, dv = d[:, :n], d[:, n:]
        Pi = P[idx]
        # phi(u + t du, v + t dv) - phi(u, v) = half-square change + t (sum du + sum dv): the linear
        # part of phi is taken from the step, not from sum(u), which dwarfs it for large |A|
        half0 = 0.5 * np.einsum("bij,bij->b", Pi, Pi)
        linear = d.sum(-1)
        slope = np.einsum("bk,bk->b", gi, d)            # < 0: descent direction
        t = np.ones(len(ri))
        pending = np.arange(len(ri))
        for _ in range(60):
            k = pending
            half_t, res_t = _half_square(Ai[k], ui[k] + t[k, None] * du[k], vi[k] + t[k, None] * dv[k])
            with np.errstate(over="ignore", invalid="ignore"):     # a trial point far out: rejected
                decrease = half_t - half0[k] + t[k] * linear[k]
                # Armijo; or, once the decrease is below phi's rounding, a clear drop of the residual
                ok = (decrease <= 1e-4 * t[k] * slope[k]) | (res_t <= 0.5 * ri[k])
            pending = k[~ok]
            if not pending.size:
                break
            t[pending] *= 0.5
        un, vn = ui + t[:, None] * du, vi + t[:, None] * dv   # new arrays: ui, vi may be views
        if pending.size:                # stalled Newton step: exact block round instead
            un[pending], vn[pending] = _block_round(Ai[pending], ui[pending], vi[pending])
        u[idx], v[idx] = un, vn
    return u, v, it


def _solve(A: np.ndarray, tol: np.ndarray, scale: np.ndarray, max_iter: int, compiled):
    """:func:`_newton` on the flat batch ``A``, through its compiled twin ``compiled``
    (:mod:`birkhoff._compiled.project`, or None); the members the twin hands back (a singular
    Newton system) are solved here."""
    if compiled is None:
        return _newton(A, tol, scale, max_iter)
    u, v, it, failed = compiled.newton_batch(np.ascontiguousarray(A), tol, scale, max_iter)
    if failed.any():
        back = np.flatnonzero(failed)
        u[back], v[back], again = _newton(A[back], tol[back], scale[back], max_iter)
        it = max(it, again)
    return u, v, it


def _quality(A: np.ndarray, u: np.ndarray, v: np.ndarray, rep: np.ndarray, tol: float):
    """``X = max(0, A - u 1^T - 1 v^T)`` and rigorous bounds of its max marginal error and of its
    KKT residual, per matrix of the batch ``A`` (B, n, n).

    ``rep`` bounds, entrywise, how far ``A`` (the matrix solved) is from an exact row and column
    shift of the input (the rounding of that shift). An entry's computed ``A - u - v`` is then
    within ``err = rep + 2 eps (|A| + |u| + |v|)`` of the exact one; where it is below ``-err``
    both ``X`` and the exact ``max(0, .)`` are 0, elsewhere they differ by at most ``err``. The
    per-matrix maximum of ``err`` bounds the KKT residual at once; the entrywise bound (which
    leaves out the entries far below 0) is formed only for the matrices where that exceeds ``tol``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        Bm = A - u[:, :, None] - v[:, None, :]
        X = np.maximum(Bm, 0.0)
        kkt = np.max(rep, axis=(-2, -1)) + 2.0 * _EPS * (np.max(np.abs(A), axis=(-2, -1)) + _max_abs(u) + _max_abs(v))
        loose = np.flatnonzero(~(kkt <= tol))                 # NaN anywhere makes kkt NaN: loose
        if loose.size:
            err = rep[loose] + 2.0 * _EPS * (np.abs(A[loose]) + np.abs(u[loose])[:, :, None]
                                             + np.abs(v[loose])[:, None, :])
            B = Bm[loose]
            near = ~(B <= -err)                           # NaN counts as near: it fails the check
            kkt[loose] = np.max(np.where(near, np.where(np.isnan(B), np.inf, err), 0.0), axis=(-2, -1))
    return X, _marginal_bound(X), kkt


def _marginal_bound(X: np.ndarray) -> np.ndarray:
    """Rigorous upper bound of ``max |X 1 - 1|, |X^T 1 - 1|`` per matrix of ``X`` (..., n, n): a float sum
    of ``n`` terms is within ``1.01 n eps`` times the sum of their magnitudes of its value (inf for NaN)."""
    n = X.shape[-1]
    with np.errstate(over="ignore", invalid="ignore"):
        sums = np.concatenate([X.sum(-1), X.sum(-2)], axis=-1)
        mags = sums if (X >= 0).all() else np.concatenate([np.abs(X).sum(-1), np.abs(X).sum(-2)], axis=-1)
        bound = np.max((np.abs(sums - 1.0) + 1.01 * n * _EPS * mags) * (1.0 + _EPS), axis=-1)
    return np.where(np.isnan(bound), np.inf, bound)


def _clamped(x: np.ndarray) -> np.ndarray:
    """Exact rationals rounded to float, clamped to the float range."""
    top = float(np.finfo(np.float64).max)
    return np.array([top if e > top else -top if e < -top else float(e) for e in x], dtype=np.float64)


def _shifted(A: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fl(A - u 1^T - 1 v^T)`` from exact rationals (one rounding per entry, clamped to the
    float range) and the entrywise bound of that rounding."""
    out = _clamped((A - u[:, None] - v[None, :]).ravel()).reshape(A.shape)
    return out, np.spacing(np.abs(out)) / 2.0


def project(A, *, tol: float = 1e-10, max_iter: int = 1000) -> Projection:
    """Frobenius projection onto the Birkhoff polytope (fast semismooth Newton, batched).

    Parameters
    ----------
    A : array_like, shape (..., n, n)
        Any finite real matrices.
    tol : float
        Bound on ``X``'s max marginal error and on its KKT residual
        ``max |X - max(0, A - u 1^T - 1 v^T)|``, both checked rigorously before the result is
        returned. The effective tolerance is ``max(tol, 16 n eps)`` (what rounding ``X``'s
        entries allows), whatever the scale of ``A``: inputs whose information lies below
        ``eps max|A|`` (one dominant entry, entries spanning 1e-300..1e300) are refined in
        exact arithmetic until they pass. For large doubly centred ``A`` (``>= 1e6``) the
        projection is usually a permutation matrix; it is then found exactly (the optimal
        assignment, with duals from longest paths: ``_vertex``) and returned as 0/1 with
        marginal error 0. ``objective`` is ``inf`` when ``||X - A||^2`` exceeds the float range
        (``|A| > ~1e154``); :func:`certify_projection` still encloses the distance.
    max_iter : int
        Newton iteration limit per solve. Random N(0, 1) inputs need ~10 iterations.

    Returns
    -------
    Projection
        ``converged`` is True (every returned member passed its check); ``residual`` is the
        bound of each member's max marginal error.

    Raises
    ------
    ConvergenceError
        A member failed its check after ``_REFINE`` exact refinements; the message gives its
        measured marginal and KKT residuals.

    Examples
    --------
    >>> import numpy as np
    >>> p = project(np.array([[2.0, 0.0], [0.0, 0.0]]))
    >>> p.X.round(12), p.converged
    (array([[1., 0.],
           [0., 1.]]), True)
    """
    tol = real(tol, "tol", positive=True)
    max_iter = count(max_iter, "max_iter", low=1, high=MAX_ITER)
    M = to_float(as_matrix(A, batched=True, name="A"), "A")
    shape, n = M.shape[:-2], M.shape[-1]
    flat = M.reshape(-1, n, n)
    Bt = len(flat)
    tol_eff = max(tol, _FLOOR * n * _EPS)
    # Row and column shifts do not move the projection (<X, a 1^T + 1 b^T> is the same for
    # every DS X), so solve for the doubly centred matrix: [[1e17]] becomes [[0]], and
    # X = max(0, A - u 1^T - 1 v^T) with u = u_c + rows - mean, v = v_c + cols.
    # Compiled kernels (numba) for the centring, Newton and the checks, where loaded and n <= 64.
    compiled = _compiled.kernels("project", flat.size * 10) if n <= _COMPILED_MAX_N else None
    if compiled is not None:
        centred, rows, cols, mean, size, top = compiled.centre_batch(np.ascontiguousarray(flat))
    else:
        rows, cols = (flat / n).sum(-1), (flat / n).sum(-2)          # means that cannot overflow
        mean = (rows / n).sum(-1)
        centred = flat - rows[:, :, None] - cols[:, None, :] + mean[:, None, None]
        size, top = np.max(np.abs(centred), axis=(-2, -1)), np.max(np.abs(flat), axis=(-2, -1))
    X = np.empty_like(centred)
    u, v = np.empty(centred.shape[:-1]), np.empty(centred.shape[:-1])
    residual, kkt, gap = np.zeros(Bt), np.zeros(Bt), np.zeros(Bt)
    ok = np.zeros(Bt, dtype=bool)
    # Large |A_c|: try the vertex (exact 0/1 X, marginal error and KKT residual 0).
    for b in np.flatnonzero(size >= _VERTEX_SIZE):
        found = _vertex(flat[b])
        if found is not None:
            X[b], u[b], v[b] = found
            ok[b] = True
    it = 0
    # Newton on the centred matrix: the fast path, for scales where one float solve can succeed;
    # larger ones (and every member that fails its check) go to the exact refinement.
    fast = ~ok & (size <= _CONTINUE_ABOVE)
    idx = slice(None) if fast.all() else np.flatnonzero(fast)          # a slice: no copies
    if fast.any():
        C = centred[idx]
        attainable = np.maximum(tol_eff, 8.0 * n * _EPS * size[idx])
        uc, vc, it = _solve(C, attainable, 1.0 + size[idx], max_iter, compiled)
        # the centring moved each entry by at most ~(n + 4) eps max|A| (the means' rounding included)
        with np.errstate(over="ignore"):
            rep = (2.0 * n + 8.0) * _EPS * top[idx]
        if compiled is not None:
            X[idx], residual[idx], kkt[idx], gap[idx] = compiled.quality_batch(C, uc, vc, rep, tol_eff)
        else:
            X[idx], residual[idx], kkt[idx] = _quality(C, uc, vc, rep[:, None, None], tol_eff)
            gap[idx] = _gap(X[idx], uc, vc)
        u[idx], v[idx] = uc + rows[idx] - mean[idx, None], vc + cols[idx]
        ok[idx] = (residual[idx] <= tol_eff) & (kkt[idx] <= tol_eff)
    rest = ~ok & (size > _CONTINUE_ABOVE)
    u[rest], v[rest] = 0.0, 0.0
    it += _refine(flat, X, u, v, residual, kkt, gap, ok, tol_eff, max_iter)
    if not ok.all():
        b = np.flatnonzero(~ok)[0]
        raise ConvergenceError(
            f"projection did not pass its check at tol={tol_eff:g} after {_REFINE} exact refinements "
            f"(max marginal error <= {residual[b]:.3e}, KKT residual <= {kkt[b]:.3e})")
    with np.errstate(over="ignore"):
        objective = np.sum((X - flat) ** 2, axis=(-2, -1))
    out = dict(X=X.reshape(M.shape), u=u.reshape(shape + (n,)), v=v.reshape(shape + (n,)),
               objective=objective.reshape(shape), gap=gap.reshape(shape),
               converged=ok.reshape(shape), residual=residual.reshape(shape))
    if not shape:
        out.update(objective=float(out["objective"]), gap=float(out["gap"]),
                   converged=bool(out["converged"]), residual=float(out["residual"]))
    return Projection(iterations=it, **out)


def _refine(flat, X, u, v, residual, kkt, gap, ok, tol_eff: float, max_iter: int) -> int:
    """Exact refinement of the members that failed their check (updates the arrays in place).

    Each round shifts ``A`` by the current duals in rational arithmetic (exact duals are kept as
    ``Fraction`` vectors), rounds the shifted matrix once (:func:`_shifted`) and solves it by
    Newton from zero duals: the information that the float centring lost below ``eps max|A|``
    is back at ``O(1)`` scale. Returns the Newton iterations spent.
    """
    bad = np.flatnonzero(~ok)
    if not bad.size:
        return 0
    n = flat.shape[-1]
    exact = {b: to_fraction(flat[b]) for b in bad}
    duals = {b: tuple(to_fraction(np.where(np.isfinite(w[b]), w[b], 0.0)) for w in (u, v)) for b in bad}
    it = 0
    for _ in range(_REFINE):
        if not bad.size:
            break
        shifted = [_shifted(exact[b], *duals[b]) for b in bad]
        At = np.stack([sh for sh, _ in shifted])
        rep = np.stack([r for _, r in shifted])
        # how far the duals may still have to move: the largest row / column maximum
        with np.errstate(over="ignore"):
            reach = np.maximum(np.abs(At.max(-1)).max(-1), np.abs(At.max(-2)).max(-1))
        # continuation: a scale beyond one solve's reach is divided by a power of two t first, and
        # t times its duals taken as the shift: they are right to ~t, ~12 digits gained a round
        t = np.exp2(np.maximum(np.ceil(np.log2(np.maximum(reach, 1.0) / _CONTINUE_ABOVE)), 0.0))
        scaled = At / t[:, None, None]
        zeros = np.zeros((len(bad), n))
        small = reach / t
        du, dv, k = _newton(scaled, np.maximum(tol_eff, 8.0 * n * _EPS * small), 1.0 + small, max_iter,
                            start=(zeros, zeros))
        it += k
        du, dv = du * t[:, None], dv * t[:, None]
        final = t == 1.0
        X[bad], residual[bad], kkt[bad] = _quality(At, du, dv, rep, tol_eff)
        gap[bad] = _gap(X[bad], du, dv)
        for m, b in enumerate(bad):
            if np.isfinite(du[m]).all() and np.isfinite(dv[m]).all():
                ue, ve = duals[b]
                duals[b] = (ue + to_fraction(du[m]), ve + to_fraction(dv[m]))
            u[b], v[b] = (_clamped(w) for w in duals[b])
        ok[bad] = final & (residual[bad] <= tol_eff) & (kkt[bad] <= tol_eff)
        bad = bad[~ok[bad]]
    return it


# A reference must be accurate: tolerances tighter than the solvers' defaults; its result is called
# converged only when its X is that feasible (entries >= -1e-8, marginals within 1e-8), checked here.
_REFERENCE_FEASIBILITY = 1e-8
_REFERENCE_SETTINGS = {
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
}


def project_cvxpy(A, solver: str | None = None, **solve_kwargs) -> Projection:
    """Reference projection: the textbook QP in cvxpy (default solver Clarabel).

    Solved at reference accuracy (Clarabel gap/feasibility 1e-10, SCS eps 1e-9 unless
    ``solve_kwargs`` say otherwise). Duals are read from the row/column constraints
    and converted to this module's convention ``X = max(0, A - u 1^T - 1 v^T)``
    (cvxpy's multipliers for ``||X - A||^2`` are ``2 u`` and ``2 v``). ``converged`` is True only
    when the solver says optimal and the returned ``X`` passed its check (entries ``>= -1e-8``,
    marginal error ``<= 1e-8``); ``residual`` is that marginal error's bound.

    Examples
    --------
    >>> import numpy as np
    >>> p = project_cvxpy(np.array([[2.0, 0.0], [0.0, 0.0]]))
    >>> bool(np.abs(p.X - np.eye(2)).max() < 1e-4)        # Clarabel's default accuracy
    True
    """
    import cvxpy as cp

    M = to_float(as_matrix(A, name="A"), "A")
    n = M.shape[0]
    X = cp.Variable((n, n))
    rows = cp.sum(X, axis=1) == 1
    cols = cp.sum(X, axis=0) == 1
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X - M)), [rows, cols, X >= 0])
    name = (solver or cp.CLARABEL).upper()
    settings = {**_REFERENCE_SETTINGS.get(name, {}), **solve_kwargs}
    try:
        problem.solve(solver=name, **settings)
    except cp.error.SolverError as exc:
        raise ConvergenceError(f"cvxpy solver {name} failed: {exc}") from None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise ConvergenceError(f"cvxpy returned status {problem.status!r}")
    Xv = np.asarray(X.value)
    u = np.asarray(rows.dual_value) / 2.0
    v = np.asarray(cols.dual_value) / 2.0
    objective = float(np.sum((Xv - M) ** 2))
    dual = float(np.sum(M * M) - 2.0 * _phi(M, u, v))
    return Projection(X=Xv, u=u, v=v, objective=objective, gap=objective - dual,
                      residual=float(_marginal_bound(Xv)),
                      iterations=int(problem.solver_stats.num_iters or 0),
                      converged=bool(problem.status == cp.OPTIMAL and Xv.min() >= -_REFERENCE_FEASIBILITY
                                     and _marginal_bound(Xv) <= _REFERENCE_FEASIBILITY))
