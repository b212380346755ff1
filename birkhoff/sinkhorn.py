"""Sinkhorn-Knopp scaling to a doubly stochastic matrix: float, log-domain, batched, mpmath.

``P = diag(r) A diag(c)`` with unit row and column sums. By Sinkhorn-Knopp (1967) the
iteration converges for a nonnegative square ``A`` iff its zero pattern has *total
support* (every positive entry lies on a positive diagonal); the limit then has the
same pattern as ``A`` when ``A`` is fully indecomposable, and is unique.

One sweep is "normalise rows, then columns", as in mHC's ``SK_t``: starting from
``c = 1``, ``r <- 1 / (A c)``, ``c <- 1 / (A^T r)``. After a sweep the column sums are
1 up to rounding, so the convergence test looks at the row sums, which the next
sweep computes anyway (no extra matrix-vector product).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, maximum_bipartite_matching
from scipy.special import logsumexp

from ._validate import as_matrix, count, real, to_float
from .errors import ConvergenceError, NoTotalSupportError

__all__ = ["SinkhornInfo", "sinkhorn", "sinkhorn_logits", "sinkhorn_mp", "has_total_support"]

# Use the log domain when positive entries span more than this ratio: the linear
# iteration then risks underflow of A c and loses relative accuracy on small entries.
_LOG_DOMAIN_SPAN = 1e30


@dataclass
class SinkhornInfo:
    """What a Sinkhorn run did. Arrays have the batch shape (scalars when unbatched).

    ``P = diag(r) A diag(c) = exp(log_r[:, None] + log A + log_c[None, :])``; ``r`` and
    ``c`` may overflow for extreme inputs where ``log_r``/``log_c`` stay finite.
    """

    iterations: int
    row_residual: np.ndarray | float
    col_residual: np.ndarray | float
    converged: np.ndarray | bool
    log_domain: bool
    log_r: np.ndarray
    log_c: np.ndarray

    @property
    def r(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(self.log_r)

    @property
    def c(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(self.log_c)


# ----------------------------------------------------------------------------- support

def _support_witness(pattern: np.ndarray) -> tuple[str, tuple[int, int] | None] | None:
    """``None`` if the boolean ``pattern`` has total support, else (reason, witness entry).

    A maximum matching of the bipartite support graph gives a positive diagonal when
    it is perfect. An unmatched edge ``(i, j)``, ``j`` matched to row ``k``, lies on a
    positive diagonal iff it closes an alternating cycle, i.e. iff rows ``i`` and ``k``
    are strongly connected in the digraph ``i -> k`` for ``pattern[i, match[k]]``.
    """
    n = pattern.shape[0]
    graph = csr_matrix(pattern.astype(np.int8))
    col_of_row = maximum_bipartite_matching(graph, perm_type="column")
    unmatched = np.flatnonzero(col_of_row < 0)
    positive = np.argwhere(pattern)
    if unmatched.size:
        i = int(unmatched[0])
        if not positive.size:
            return "the matrix has no positive entry", None
        if not pattern[i].any():
            return f"row {i} is entirely zero", None
        j = int(np.flatnonzero(pattern[i])[0])
        return (f"the support has no positive diagonal (a maximum matching leaves row {i} "
                f"unmatched), so entry ({i}, {j}) lies on no positive diagonal"), (i, j)
    row_of_col = np.empty(n, dtype=np.int64)
    row_of_col[col_of_row] = np.arange(n)
    rows, cols = np.nonzero(pattern)
    digraph = csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, row_of_col[cols])),
                         shape=(n, n))
    _, label = connected_components(digraph, directed=True, connection="strong")
    bad = label[rows] != label[row_of_col[cols]]
    if bad.any():
        i, j = int(rows[bad][0]), int(cols[bad][0])
        return (f"entry ({i}, {j}) is positive but lies on no positive diagonal "
                f"(no permutation inside the support uses it)"), (i, j)
    return None


def has_total_support(A) -> bool:
    """True iff every positive entry of the nonnegative square ``A`` lies on a positive diagonal.

    ``A`` has total support  <=>  ``sinkhorn(A)`` converges (Sinkhorn-Knopp 1967).
    """
    M = as_matrix(A, nonnegative=True, name="A")
    return _support_witness(M != 0) is None


def _check_total_support(M: np.ndarray) -> None:
    """Raise ``NoTotalSupportError`` for the first matrix of a batch without total support.

    Strictly positive matrices pass at once; the others are checked once per distinct
    zero pattern (patterns repeat a lot in batches of small matrices).
    """
    n = M.shape[-1]
    pattern = (M != 0).reshape(-1, n, n)
    todo = np.flatnonzero(~pattern.all(axis=(1, 2)))
    if not todo.size:
        return
    uniq, first = np.unique(pattern[todo].reshape(todo.size, -1), axis=0, return_index=True)
    for flat, pos in zip(uniq, first):
        found = _support_witness(flat.reshape(n, n))
        if found is not None:
            reason, witness = found
            where = np.unravel_index(todo[pos], M.shape[:-2]) if M.ndim > 2 else ()
            where = tuple(int(w) for w in where)
            prefix = f"matrix {where}: " if where else ""
            raise NoTotalSupportError(
                f"{prefix}Sinkhorn cannot converge: zero pattern has no total support; {reason}",
                witness=witness, batch_index=where)


# ----------------------------------------------------------------------------- float

def _use_log_domain(M: np.ndarray) -> bool:
    top = float(M.max())
    low = float(np.min(M, where=M > 0, initial=np.inf))
    return top > 0 and top > _LOG_DOMAIN_SPAN * low


def _safe_inv(x: np.ndarray) -> np.ndarray:
    """``1 / x`` where ``x > 0``; 1 for empty rows (left zero: nothing to scale)."""
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 1.0)


def _neg_or_zero(lse: np.ndarray) -> np.ndarray:
    """``-lse`` where finite; 0 for empty rows (their log-sum is ``-inf``)."""
    return np.where(np.isfinite(lse), -lse, 0.0)


def _linear(M: np.ndarray, iters: int | None, target: float, max_iter: int,
            c: np.ndarray | None = None):
    """Linear-domain sweeps on ``M`` (scaled to max 1 by the caller): scalings ``r, c``.

    Starts from column scaling ``c`` (ones by default), so a run can be resumed. In
    tolerance mode converged matrices leave the batch (compacted once a quarter of
    the active ones are done), so a batch costs the sum of its members' sweeps.
    """
    shape, n = M.shape[:-1], M.shape[-1]
    Mf = M.reshape(-1, n, n)
    c_out = np.ones((Mf.shape[0], n)) if c is None else c.reshape(-1, n).copy()
    r_out = np.ones_like(c_out)
    active = np.arange(Mf.shape[0])
    Ma, ca = Mf, c_out
    limit = iters if iters is not None else max_iter
    it = 0
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        Ac = np.einsum("bij,bj->bi", Ma, ca)
        while it < limit and active.size:
            r = _safe_inv(Ac)
            ca = _safe_inv(np.einsum("bij,bi->bj", Ma, r))
            Ac = np.einsum("bij,bj->bi", Ma, ca)
            it += 1
            if iters is None:
                res = np.max(np.abs(r * Ac - 1.0), axis=-1)
                done = res <= target
                if not np.isfinite(res).all() or done.all():
                    break
                if done.sum() * 4 >= active.size:
                    r_out[active[done]], c_out[active[done]] = r[done], ca[done]
                    keep = ~done
                    active, Ma, r, ca, Ac = active[keep], Ma[keep], r[keep], ca[keep], Ac[keep]
        if active.size and it:
            r_out[active], c_out[active] = r, ca
    return r_out.reshape(shape), c_out.reshape(shape), it


def _log(logA: np.ndarray, iters: int | None, target: float, max_iter: int):
    """Log-domain sweeps on ``log A`` (``-inf`` for zeros): potentials ``f, g``."""
    f = np.zeros(logA.shape[:-1])
    g = np.zeros(logA.shape[:-1])
    limit = iters if iters is not None else max_iter
    it = 0
    lse_rows = logsumexp(logA, axis=-1)
    while it < limit:
        f = _neg_or_zero(lse_rows)
        g = _neg_or_zero(logsumexp(logA + f[..., :, None], axis=-2))
        lse_rows = logsumexp(logA + g[..., None, :], axis=-1)
        it += 1
        if iters is None:
            row_res = np.max(np.abs(np.expm1(f + lse_rows)), axis=-1)
            if row_res.max() <= target:
                break
    return f, g, it


def _marginal_residuals(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max |row sum - 1| and max |column sum - 1| of the returned float matrix."""
    return (np.max(np.abs(P.sum(-1) - 1.0), axis=-1), np.max(np.abs(P.sum(-2) - 1.0), axis=-1))


def _scale(logA: np.ndarray | None, M: np.ndarray | None, *, iters: int | None, tol: float,
           max_iter: int, log_domain: bool):
    """Run sweeps; returns ``(P, info)``. Give ``M`` (linear), ``logA``, or both;
    ``log A`` is formed only if the log domain is used.

    In tolerance mode the residuals that count are those of the matrix actually
    returned (summed in float); if rounding leaves them above ``tol`` although the
    iteration's own estimate is below, sweeping resumes with a tighter target.
    """
    P = residuals = None
    if iters == 0:                       # SK_0 is the identity map: P = A in either domain
        log_domain = False
        P = M.copy() if M is not None else np.exp(logA)
        log_r = log_c = np.zeros(P.shape[:-1])
        residuals, it = _marginal_residuals(P), 0
    elif not log_domain:
        # Scaling A by a positive constant does not change P; max 1 keeps A c in range.
        scale = np.max(M, axis=(-2, -1), keepdims=True)
        scale = np.where(scale > 0, scale, 1.0)
        Ms = M / scale
        target, c, it = tol, None, 0
        while True:
            r, c, done = _linear(Ms, iters, target, max_iter - it, c)
            it += done
            if not (np.isfinite(r).all() and np.isfinite(c).all()):
                log_domain = True  # linear iteration under/overflowed: redo it in logs
                break
            with np.errstate(under="ignore"):
                P = Ms * r[..., :, None]
                P *= c[..., None, :]
            residuals = _marginal_residuals(P)
            if iters is not None or it >= max_iter or max(map(np.max, residuals)) <= tol:
                log_r, log_c = np.log(r) - np.log(scale[..., 0]), np.log(c)
                break
            target *= 0.5
    if log_domain:
        if logA is None:
            with np.errstate(divide="ignore"):
                logA = np.log(M)
        log_r, log_c, it = _log(logA, iters, 0.5 * tol, max_iter)
        with np.errstate(under="ignore"):
            P = np.exp(logA + log_r[..., :, None] + log_c[..., None, :])
        residuals = _marginal_residuals(P)
    rows, cols = residuals
    conv = np.maximum(rows, cols) <= tol
    unbatched = P.ndim == 2
    info = SinkhornInfo(
        iterations=it,
        row_residual=float(rows) if unbatched else rows,
        col_residual=float(cols) if unbatched else cols,
        converged=bool(conv) if unbatched else conv,
        log_domain=log_domain, log_r=log_r, log_c=log_c)
    return P, info


def _check_counts(iters: int | None, max_iter: int, tol: float) -> tuple[int | None, int, float]:
    return (None if iters is None else count(iters, "iters"), count(max_iter, "max_iter", low=1),
            real(tol, "tol", rounding="down"))


def sinkhorn(A, *, iters: int | None = None, tol: float = 1e-12, max_iter: int = 10_000,
             log_domain: bool | None = None, return_info: bool = False):
    """Scale a nonnegative matrix to doubly stochastic: ``P = diag(r) A diag(c)``.

    Parameters
    ----------
    A : array_like, shape (..., n, n)
        Nonnegative; leading dimensions are a batch (vectorised, no Python loop).
    iters : int, optional
        Run exactly this many row-then-column sweeps (mHC's ``SK_t``) and return,
        converged or not. Never raises for a valid input: all-zero rows/columns stay zero.
    tol : float
        Otherwise iterate until every row and column sum is within ``tol`` of 1.
    max_iter : int
        Sweep limit in tolerance mode.
    log_domain : bool, optional
        Force the log-domain iteration (``True``) or the linear one (``False``). By default
        the log domain is used when positive entries span more than 30 orders of
        magnitude, or when the linear iteration under/overflows.
    return_info : bool
        Also return a :class:`SinkhornInfo`.

    Returns
    -------
    P : ndarray, or ``(P, info)``

    Raises
    ------
    InvalidMatrixError
        Negative, NaN/Inf, non-square or empty input.
    NoTotalSupportError
        (tolerance mode) the zero pattern has no total support; raised before iterating.
    ConvergenceError
        (tolerance mode) ``tol`` not reached within ``max_iter`` sweeps.
    """
    iters, max_iter, tol = _check_counts(iters, max_iter, tol)
    M = to_float(as_matrix(A, batched=True, nonnegative=True, name="A"), "A")
    if iters is None:
        _check_total_support(M)
    if log_domain is None:
        log_domain = _use_log_domain(M)
    P, info = _scale(None, M, iters=iters, tol=tol, max_iter=max_iter,
                     log_domain=bool(log_domain))
    if iters is None and not np.all(info.converged):
        worst = float(np.max(np.maximum(info.row_residual, info.col_residual)))
        raise ConvergenceError(
            f"Sinkhorn did not reach tol={tol:g} in {info.iterations} sweeps "
            f"(max marginal error {worst:.3e})", info=info)
    return (P, info) if return_info else P


def sinkhorn_logits(L, iters: int = 20, *, return_info: bool = False):
    """mHC's ``SK_t(exp(L))``: ``t`` log-domain row-then-column sweeps on logits.

    ``L`` is any finite real array of shape ``(..., n, n)``; ``exp`` is never formed,
    so logits of magnitude ``1e3`` and beyond are fine.
    """
    iters = count(iters, "iters")
    logA = to_float(as_matrix(L, batched=True, name="L"), "L")
    P, info = _scale(logA, None, iters=iters, tol=0.0, max_iter=1, log_domain=True)
    return (P, info) if return_info else P


# ----------------------------------------------------------------------------- mpmath

def sinkhorn_mp(A, *, dps: int = 50, tol=None, max_iter: int = 100_000) -> np.ndarray:
    """Sinkhorn-Knopp in mpmath at ``dps`` decimal digits, iterated to ``tol``.

    Parameters
    ----------
    A : array_like, shape (n, n)
        Nonnegative, float or exact; float entries are taken at their exact binary value.
    dps : int
        Working precision in decimal digits.
    tol : float or mpf, optional
        Max marginal error to reach; default ``10**(5 - dps)``.

    Returns
    -------
    ndarray of mpmath.mpf, shape (n, n)
        Rounded to ``dps`` digits; read at that precision (``mpmath.mp.dps``/``workdps``).
    """
    dps = count(dps, "dps", low=15)
    max_iter = count(max_iter, "max_iter", low=1)
    if tol is not None:
        real(tol, "tol")
    M = as_matrix(A, nonnegative=True, name="A")
    _check_total_support(M)
    n = M.shape[0]
    with mpmath.workdps(dps):
        tol_mp = mpmath.mpf(10) ** (5 - dps) if tol is None else mpmath.mpf(tol)
        if M.dtype == object:
            Am = [[mpmath.mpf(q.numerator) / q.denominator for q in row] for row in M]
        else:
            Am = [[mpmath.mpf(float(v)) for v in row] for row in M]
        r = [mpmath.mpf(1)] * n
        c = [mpmath.mpf(1)] * n
        for _ in range(max_iter):
            r = [1 / mpmath.fsum(Am[i][j] * c[j] for j in range(n)) for i in range(n)]
            c = [1 / mpmath.fsum(Am[i][j] * r[i] for i in range(n)) for j in range(n)]
            err = max(abs(r[i] * mpmath.fsum(Am[i][j] * c[j] for j in range(n)) - 1)
                      for i in range(n))
            if err <= tol_mp:
                break
        else:
            raise ConvergenceError(
                f"sinkhorn_mp did not reach tol={mpmath.nstr(tol_mp, 5)} in {max_iter} sweeps "
                f"(max marginal error {mpmath.nstr(err, 5)})")
        out = np.empty((n, n), dtype=object)
        for i in range(n):
            for j in range(n):
                out[i, j] = r[i] * Am[i][j] * c[j]
    return out
