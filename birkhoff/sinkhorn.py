"""Sinkhorn-Knopp scaling to a doubly stochastic matrix in float: linear and log domain, batched, and
the auto method that hands slow matrices to Newton (:mod:`birkhoff.sinkhorn_mpmath`: any precision;
:mod:`birkhoff.support`: the total-support condition).

``P = diag(r) A diag(c)`` with unit row and column sums. By Sinkhorn-Knopp (1967) the
iteration converges for a nonnegative square ``A`` iff its zero pattern has *total
support* (every positive entry lies on a positive diagonal); the limit then has the
same pattern as ``A`` when ``A`` is fully indecomposable, and is unique.

One sweep is "normalise rows, then columns", as in mHC's ``SK_t``: starting from
``c = 1``, ``r <- 1 / (A c)``, ``c <- 1 / (A^T r)``. After a sweep the column sums are
1 up to rounding, so the convergence test looks at the row sums, which the next
sweep computes anyway (no extra matrix-vector product).

Sweeps converge linearly, at a rate that tends to 1 on nearly decomposable inputs and
on entries spanning hundreds of orders of magnitude (thousands of sweeps, or a 1/k
tail). In tolerance mode ``method="auto"`` therefore measures the contraction over two
probe chunks of sweeps and hands every matrix that sweeps would take longer on than
Newton to :func:`birkhoff.newton.newton_balance` (quadratic convergence on the dual
log-potentials); ``"sinkhorn"`` and ``"newton"`` force one method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validate import MAX_ITER, as_matrix, count, flag, option, real, to_float
from .errors import ConvergenceError, InvalidArgumentError
from .newton import newton_balance, sweeps_per_newton_step
from .support import check_total_support
from .sweeps import MAX_N, fixed_sweeps, fixed_sweeps_logits

__all__ = ["SinkhornInfo", "sinkhorn", "sinkhorn_logits", "METHODS", "SINKHORN_TOL", "PROBE_SWEEPS", "NEWTON_STEPS"]

# Use the log domain when positive entries span more than this ratio: the linear
# iteration then risks underflow of A c and loses relative accuracy on small entries.
_LOG_DOMAIN_SPAN = 1e30
METHODS = ("auto", "sinkhorn", "newton")
# "auto": the two probe chunks are this many sweeps, or two Newton steps' worth if more;
# Newton takes over when sweeps are predicted to need more than NEWTON_STEPS steps' worth.
PROBE_SWEEPS = 20
NEWTON_STEPS = 30
# fixed-count sweeps on at least this many small matrices take the cache-blocked path
_BLOCKED_BATCH = 512


@dataclass
class SinkhornInfo:
    """What a Sinkhorn run did. Arrays have the batch shape (scalars when unbatched).

    ``P = diag(r) A diag(c) = exp(log_r[:, None] + log A + log_c[None, :])``; ``r`` and
    ``c`` may overflow for extreme inputs where ``log_r``/``log_c`` stay finite.
    ``iterations`` counts the sweeps, ``newton_steps`` the Newton steps after them (the
    batch's maximum); ``method`` is ``"sinkhorn"``, ``"newton"`` or ``"sinkhorn+newton"``.
    """

    iterations: int
    row_residual: np.ndarray | float
    col_residual: np.ndarray | float
    converged: np.ndarray | bool
    log_domain: bool
    log_r: np.ndarray
    log_c: np.ndarray
    method: str = "sinkhorn"
    newton_steps: int = 0

    @property
    def r(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(self.log_r)

    @property
    def c(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.exp(self.log_c)


def _use_log_domain(M: np.ndarray) -> bool:
    top, low = float(M.max()), float(M.min())
    if low <= 0:                                     # the smallest positive entry needs a masked pass
        low = float(np.min(M, where=M > 0, initial=np.inf))
    return top > 0 and top > _LOG_DOMAIN_SPAN * low


def _safe_inv(x: np.ndarray) -> np.ndarray:
    """``1 / x`` where ``x > 0``; 1 for empty rows (left zero: nothing to scale)."""
    return np.divide(1.0, x, out=np.ones_like(x), where=x > 0)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """``log sum exp x`` along ``axis``; ``-inf`` where every entry is ``-inf`` (an empty row).

    The max-shifted formula, in place on one temporary: a third of the time of
    ``scipy.special.logsumexp`` on the small-matrix batches of the log-domain sweeps.
    """
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(under="ignore", divide="ignore"):
        e = np.subtract(x, top)
        np.exp(e, out=e)
        out = np.log(np.sum(e, axis=axis))
    return out + np.squeeze(top, axis=axis)


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
    lse_rows = _logsumexp(logA, axis=-1)
    while it < limit:
        f = _neg_or_zero(lse_rows)
        g = _neg_or_zero(_logsumexp(logA + f[..., :, None], axis=-2))
        lse_rows = _logsumexp(logA + g[..., None, :], axis=-1)
        it += 1
        if iters is None:
            row_res = np.max(np.abs(np.expm1(f + lse_rows)), axis=-1)
            if row_res.max() <= target:
                break
    return f, g, it


def _blocked(M: np.ndarray, iters: int) -> bool:
    """Whether fixed-count sweeps on ``M`` take the cache-blocked path (:mod:`birkhoff.sweeps`)."""
    n = M.shape[-1]
    return iters > 0 and n <= MAX_N and M.size >= _BLOCKED_BATCH * n * n


def _usable(x: np.ndarray) -> bool:
    """A scaling vector whose logarithm is finite."""
    return bool(np.isfinite(x).all() and (x > 0).all())


def _blocked_sweeps(M: np.ndarray, iters: int) -> tuple[np.ndarray, ...]:
    """:func:`birkhoff.sweeps.fixed_sweeps` on any batch shape: ``(P, r, c, rows, cols)``."""
    n = M.shape[-1]
    P, r, c, rows, cols = fixed_sweeps(M.reshape(-1, n, n), iters)
    batch = M.shape[:-2]
    return P.reshape(M.shape), r.reshape(M.shape[:-1]), c.reshape(M.shape[:-1]), rows.reshape(batch), \
        cols.reshape(batch)


def _marginal_residuals(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max |row sum - 1| and max |column sum - 1| of the returned float matrix."""
    return (np.max(np.abs(P.sum(-1) - 1.0), axis=-1), np.max(np.abs(P.sum(-2) - 1.0), axis=-1))


def _given(x: np.ndarray | None) -> np.ndarray:
    """``x``, which the caller's branch guarantees (``_scale`` takes ``M``, ``logA`` or both)."""
    if x is None:
        raise TypeError("_scale: neither M nor logA was given")
    return x


def _pin_columns(P: np.ndarray, log_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``SK_t``'s last half-sweep (the columns') once more, in linear arithmetic: ``exp`` of a log-domain
    result errs by ``u`` times its argument's magnitude (16 u in a column sum for logits near 1e2), a
    division by the column's float sum by ``n u``. Columns with a zero or non-finite sum are left."""
    s = P.sum(axis=-2)
    ok = (s > 0) & np.isfinite(s)
    s = np.where(ok, s, 1.0)
    return P / s[..., None, :], np.where(ok, log_c - np.log(s), log_c)


def _scale(logA: np.ndarray | None, M: np.ndarray | None, *, iters: int | None, tol: float,
           max_iter: int, log_domain: bool):
    """Run sweeps; returns ``(P, info)``. Give ``M`` (linear), ``logA``, or both;
    ``log A`` is formed only if the log domain is used.

    In tolerance mode the residuals that count are those of the matrix actually
    returned (summed in float); if rounding leaves them above ``tol`` although the
    iteration's own estimate is below, sweeping resumes with a tighter target.
    """
    if iters == 0:                       # SK_0 is the identity map: P = A in either domain
        log_domain = False
        P = M.copy() if M is not None else np.exp(_given(logA))
        log_r = log_c = np.zeros(P.shape[:-1])
        residuals, it = _marginal_residuals(P), 0
    elif not log_domain and iters is not None and _blocked(_given(M), iters):
        P, r, c, rows, cols = _blocked_sweeps(_given(M), iters)
        residuals = (rows, cols)
        log_domain = not (_usable(r) and _usable(c))      # a scaling left the float range: redo in logs
        if not log_domain:
            log_r, log_c, it = np.log(r, out=r), np.log(c, out=c), iters     # in place: fewer page faults
    elif not log_domain:
        M = _given(M)
        # Scaling A by a positive constant does not change P; max 1 keeps A c in range. Maxima
        # within 2**+-500 need no scaling (A c and its inverse stay in range), which saves a copy of A.
        scale = np.max(M, axis=(-2, -1), keepdims=True)
        scale = np.where((scale > 0) & ((scale < 2.0 ** -500) | (scale > 2.0 ** 500)), scale, 1.0)
        Ms = M / scale if (scale != 1.0).any() else M
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
                logA = np.log(_given(M))
        log_r, log_c, it = _log(logA, iters, 0.5 * tol, max_iter)
        with np.errstate(under="ignore"):
            P = np.exp(logA + log_r[..., :, None] + log_c[..., None, :])
        if iters is not None:
            P, log_c = _pin_columns(P, log_c)
        residuals = _marginal_residuals(P)
    return P, _info(P, residuals, tol, iterations=it, log_domain=log_domain, log_r=log_r, log_c=log_c)


def _info(P: np.ndarray, residuals: tuple[np.ndarray, np.ndarray], tol: float, **fields) -> SinkhornInfo:
    """The :class:`SinkhornInfo` of the returned ``P`` (scalars when unbatched)."""
    rows, cols = residuals
    conv = np.maximum(rows, cols) <= tol
    if P.ndim == 2:
        return SinkhornInfo(row_residual=float(rows), col_residual=float(cols), converged=bool(conv), **fields)
    return SinkhornInfo(row_residual=rows, col_residual=cols, converged=conv, **fields)


def _continue(logA: np.ndarray, P: np.ndarray, log_r: np.ndarray, log_c: np.ndarray, *, tol: float,
              max_iter: int, log_domain: bool):
    """More sweeps from where earlier ones stopped: sweeping the current ``P = diag(r) A diag(c)``
    continues them (scalings compose). In the linear domain while ``P`` keeps ``A``'s support."""
    logP = logA + log_r[..., :, None] + log_c[..., None, :]
    linear = not log_domain and np.array_equal(P > 0, np.isfinite(logA))
    P2, info = _scale(None if linear else logP, P if linear else None, iters=None, tol=tol,
                      max_iter=max_iter, log_domain=not linear)
    return P2, log_r + info.log_r, log_c + info.log_c, info


def _balance(M: np.ndarray, *, tol: float, max_iter: int, method: str, log_domain: bool):
    """Tolerance mode: sweeps, Newton, or sweeps then Newton for the slow ones (module doc).

    ``auto``: chunk 1 of sweeps; for the matrices it leaves unconverged, chunk 2 measures the
    contraction ``rho`` per sweep; those whose predicted remaining sweeps
    ``log(tol / res) / log(rho)`` fit both the budget and ``NEWTON_STEPS`` Newton steps' worth
    keep sweeping, for at most that many sweeps; every matrix still unconverged then gets
    Newton steps.
    """
    if method == "sinkhorn":
        return _scale(None, M, iters=None, tol=tol, max_iter=max_iter, log_domain=log_domain)
    n = M.shape[-1]
    chunk = min(max_iter, max(PROBE_SWEEPS, int(np.ceil(2 * sweeps_per_newton_step(n)))))
    if method == "auto":
        P, info = _scale(None, M, iters=None, tol=tol, max_iter=chunk, log_domain=log_domain)
        if np.all(info.converged):
            return P, info
    with np.errstate(divide="ignore"):               # formed only here: a full pass most calls never need
        logA = np.log(M).reshape(-1, n, n)
    if method == "newton":
        P, info = _scale(logA, None, iters=1, tol=tol, max_iter=1, log_domain=True)
    P, log_r, log_c = P.reshape(-1, n, n).copy(), info.log_r.reshape(-1, n), info.log_c.reshape(-1, n)
    res = np.maximum(*_marginal_residuals(P))
    sweeps, used_log, steps = info.iterations, info.log_domain, 0
    todo = np.flatnonzero(res > tol) if method == "auto" else np.array([], dtype=np.int64)
    newton_cost = int(np.ceil(NEWTON_STEPS * sweeps_per_newton_step(n)))       # in sweeps
    for stage in ("measure", "sweep"):
        budget = max_iter - sweeps
        if not todo.size or budget <= 0:
            break
        # the sweep stage never spends more than Newton would: a rate measured on a 1/k tail
        # over-promises, and Newton then finishes what the sweeps did not
        P2, r2, c2, more = _continue(logA[todo], P[todo], log_r[todo], log_c[todo], tol=tol,
                                     max_iter=min(budget, chunk if stage == "measure" else newton_cost),
                                     log_domain=used_log)
        res2 = np.maximum(*_marginal_residuals(P2))
        P[todo], log_r[todo], log_c[todo] = P2, r2, c2
        sweeps, used_log = sweeps + more.iterations, used_log or more.log_domain
        if stage == "measure":
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = (res2 / res[todo]) ** (1.0 / max(more.iterations, 1))
                needed = np.where(rho < 1, np.log(0.5 * tol / res2) / np.log(rho), np.inf)
            fast = (res2 > tol) & (needed <= min(max_iter - sweeps, newton_cost))
            res[todo] = res2
            todo = todo[fast]
        else:
            res[todo] = res2
    slow = np.flatnonzero(res > tol) if method == "auto" else np.arange(P.shape[0])
    if slow.size:
        log_r[slow], log_c[slow], steps, _ = newton_balance(logA[slow], log_r[slow], log_c[slow], 0.5 * tol)
        with np.errstate(under="ignore"):
            P[slow] = np.exp(logA[slow] + log_r[slow][:, :, None] + log_c[slow][:, None, :])
    shape = M.shape
    P = P.reshape(shape)
    used = "newton" if method == "newton" else "sinkhorn+newton" if slow.size else "sinkhorn"
    return P, _info(P, _marginal_residuals(P), tol, iterations=sweeps, log_domain=used_log or bool(slow.size),
                    log_r=log_r.reshape(shape[:-1]), log_c=log_c.reshape(shape[:-1]), method=used,
                    newton_steps=steps)


def _check_counts(iters: int | None, max_iter: int, tol: float) -> tuple[int | None, int, float]:
    return (None if iters is None else count(iters, "iters", high=MAX_ITER),
            count(max_iter, "max_iter", low=1, high=MAX_ITER), real(tol, "tol", rounding="down"))


SINKHORN_TOL = 1e-12       # the default tolerance of tolerance mode (API and CLI)


def sinkhorn(A, *, iters: int | None = None, tol: float = SINKHORN_TOL, max_iter: int = 10_000,
             method: str = "auto", log_domain: bool | None = None, return_info: bool = False):
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
        Sweep limit in tolerance mode (Newton has its own, ``NEWTON_MAX_STEPS``).
    method : {"auto", "sinkhorn", "newton"}
        Tolerance mode only. ``"auto"``: sweeps, and Newton steps on the dual log-potentials
        for the matrices on which the measured contraction says sweeps would be slower
        (:mod:`birkhoff.newton`); easy inputs cost what sweeps cost. ``"sinkhorn"``: sweeps
        only. ``"newton"``: one sweep, then Newton. ``iters=t`` always runs sweeps.
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
        (tolerance mode) ``tol`` not reached within the budget of the method used.

    Examples
    --------
    >>> import numpy as np
    >>> P = sinkhorn(np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> P.round(6)
    array([[0.44949, 0.55051],
           [0.55051, 0.44949]])
    >>> P, info = sinkhorn(np.exp(np.zeros((8, 4, 4))), iters=20, return_info=True)   # mHC's SK_20, batched
    >>> P.shape, bool(info.converged.all())
    ((8, 4, 4), True)
    """
    iters, max_iter, tol = _check_counts(iters, max_iter, tol)
    method = option(method, "method", METHODS)
    return_info = flag(return_info, "return_info")
    log_domain = None if log_domain is None else flag(log_domain, "log_domain")
    if iters is not None and method == "newton":
        raise InvalidArgumentError("iters=t runs t Sinkhorn sweeps; method='newton' needs tolerance mode")
    M = to_float(as_matrix(A, batched=True, nonnegative=True, name="A"), "A")
    if iters is None:
        check_total_support(M)
    if log_domain is None:
        log_domain = _use_log_domain(M)
    if iters is None:
        P, info = _balance(M, tol=tol, max_iter=max_iter, method=method, log_domain=bool(log_domain))
    else:
        P, info = _scale(None, M, iters=iters, tol=tol, max_iter=max_iter, log_domain=bool(log_domain))
    if iters is None and not np.all(info.converged):
        worst = float(np.max(np.maximum(info.row_residual, info.col_residual)))
        raise ConvergenceError(
            f"Sinkhorn (method={method!r}: {info.iterations} sweeps, {info.newton_steps} Newton steps) "
            f"did not reach tol={tol:g} (max marginal error {worst:.3e})", info=info)
    return (P, info) if return_info else P


def sinkhorn_logits(L, iters: int = 20, *, return_info: bool = False):
    """mHC's ``SK_t(exp(L))``: ``t`` log-domain row-then-column sweeps on logits.

    ``L`` is any finite real array of shape ``(..., n, n)``; ``exp`` is never formed,
    so logits of magnitude ``1e3`` and beyond are fine.

    Examples
    --------
    >>> import numpy as np
    >>> sinkhorn_logits(np.array([[0.0, 800.0], [800.0, 0.0]])).round(6)    # exp(800) overflows; logits do not
    array([[0., 1.],
           [1., 0.]])
    """
    iters = count(iters, "iters", high=MAX_ITER)
    return_info = flag(return_info, "return_info")
    logA = to_float(as_matrix(L, batched=True, name="L"), "L")
    n = logA.shape[-1]
    if not _blocked(logA, iters):
        P, info = _scale(logA, None, iters=iters, tol=0.0, max_iter=1, log_domain=True)
        return (P, info) if return_info else P
    # exp(L - max L) per matrix is in (0, 1]; where the logits span less than log(_LOG_DOMAIN_SPAN)
    # nothing underflows and the blocked linear sweeps give the log-domain result up to rounding.
    flat = logA.reshape(-1, n, n)
    P, log_r, log_c, rows, cols, linear = fixed_sweeps_logits(flat, iters, np.log(_LOG_DOMAIN_SPAN))
    if not linear.all():
        P[~linear], rest = _scale(flat[~linear], None, iters=iters, tol=0.0, max_iter=1, log_domain=True)
        log_r[~linear], log_c[~linear] = rest.log_r, rest.log_c
        rows[~linear], cols[~linear] = rest.row_residual, rest.col_residual
    P = P.reshape(logA.shape)
    batch = logA.shape[:-2]
    info = _info(P, (rows.reshape(batch), cols.reshape(batch)), 0.0, iterations=iters, log_domain=not linear.all(),
                 log_r=log_r.reshape(logA.shape[:-1]), log_c=log_c.reshape(logA.shape[:-1]))
    return (P, info) if return_info else P
