"""Sinkhorn-Knopp in mpmath at any precision, with the tolerance it promises checked exactly."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from .errors import ConvergenceError, InvalidArgumentError
from .newton import newton_balance_mp, sweeps_per_newton_step
from .sinkhorn import METHODS, NEWTON_STEPS, PROBE_SWEEPS
from .support import check_total_support
from .validate import MAX_ITER, as_matrix, count, fraction_of, option, real

__all__ = ["sinkhorn_mp", "MAX_DPS"]


MAX_DPS = 10_000
_GUARD_DIGITS = 10


def _mp_floor(n: int, dps: int):
    """The smallest ``tol`` that ``sinkhorn_mp`` can promise at ``dps`` digits: rounding each of ``n``
    entries of a row to ``prec`` bits moves its sum by up to ``n 2^-prec``; twice that leaves room
    for the iteration."""
    return 2 * n * mpmath.ldexp(1, -mpmath.libmp.dps_to_prec(dps))


def _exact_residual(out: np.ndarray):
    """Exact ``max |row or column sum - 1|`` of an ``mpf`` matrix (its entries are binary rationals)."""
    Q = np.vectorize(fraction_of, otypes=[object])(out)
    return max(max(abs(x - 1) for x in Q.sum(axis=1)), max(abs(x - 1) for x in Q.sum(axis=0)))


def sinkhorn_mp(A, *, dps: int = 50, tol=None, max_iter: int = 100_000, method: str = "auto") -> np.ndarray:
    """Sinkhorn-Knopp in mpmath at ``dps`` decimal digits, iterated to ``tol``.

    Parameters
    ----------
    A : array_like, shape (n, n)
        Nonnegative, float or exact; float entries are taken at their exact binary value.
    dps : int
        Output precision in decimal digits (15 to ``MAX_DPS`` = 10 000); the iteration runs
        with 10 guard digits more.
    tol : float or mpf, optional
        Max marginal error to reach; default ``10**(5 - dps)``. It must be at least
        ``2 n 2^-prec`` (``prec`` the bits of ``dps`` digits): the rounding of the output
        to ``dps`` digits alone can move a row sum by ``n 2^-prec``.
    max_iter : int
        Sweep limit.
    method : {"auto", "sinkhorn", "newton"}
        As in :func:`sinkhorn`: ``"auto"`` sweeps while the contraction measured over the
        last ``PROBE_SWEEPS // 5`` sweeps predicts fewer sweeps than ``NEWTON_STEPS`` Newton
        steps' worth, then finishes with Newton steps
        (:func:`birkhoff.newton.newton_balance_mp`).

    Returns
    -------
    ndarray of mpmath.mpf, shape (n, n)
        Rounded to ``dps`` digits; read at that precision (``mpmath.mp.dps``/``workdps``).
        Convergence is checked on the returned entries in exact rational arithmetic:
        every row and column sum is within ``tol`` of 1.

    Raises
    ------
    InvalidArgumentError
        ``tol`` below what ``dps`` digits can reach (the message names the ``dps`` needed).
    ConvergenceError
        ``tol`` not reached within ``max_iter`` sweeps and the Newton steps.

    Examples
    --------
    >>> import mpmath
    >>> P = sinkhorn_mp([[1, 2], [3, 4]], dps=30)
    >>> mpmath.nstr(P[0, 0], 20)       # (sqrt(6) - 1) / (sqrt(6) + 1) + ..., to 20 digits
    '0.4494897427831780982'
    """
    dps = count(dps, "dps", low=15, high=MAX_DPS)
    max_iter = count(max_iter, "max_iter", low=1, high=MAX_ITER)
    method = option(method, "method", METHODS)
    if tol is not None:
        real(tol, "tol")
    tol_q = Fraction(10) ** (5 - dps) if tol is None else fraction_of(tol)      # exact: what is promised
    M = as_matrix(A, nonnegative=True, name="A")
    n = M.shape[0]
    with mpmath.workdps(dps):
        tol_mp = mpmath.mpf(tol_q.numerator) / tol_q.denominator
        floor = _mp_floor(n, dps)
        if tol_mp < floor:
            need = next(d for d in range(dps, MAX_DPS + 2) if d > MAX_DPS or _mp_floor(n, d) <= tol_mp)
            hint = f"dps >= {need}" if need <= MAX_DPS else f"a tol >= {mpmath.nstr(_mp_floor(n, MAX_DPS), 3)}"
            raise InvalidArgumentError(
                f"tol={mpmath.nstr(tol_mp, 3)} is below what {dps} digits can reach for n = {n} "
                f"({mpmath.nstr(floor, 3)}: the rounding of the output alone); use {hint}")
    check_total_support(M)
    with mpmath.workdps(dps + _GUARD_DIGITS + len(str(n))):
        target = tol_mp / 2
        if M.dtype == object:
            Am = [[mpmath.mpf(q.numerator) / q.denominator for q in row] for row in M]
        else:
            Am = [[mpmath.mpf(float(v)) for v in row] for row in M]
        r, c, err, history = [mpmath.mpf(1)] * n, [mpmath.mpf(1)] * n, mpmath.inf, []
        lag, switch = PROBE_SWEEPS // 5, NEWTON_STEPS * sweeps_per_newton_step(n)
        for sweep in range(max_iter if method != "newton" else 1):
            r = [1 / mpmath.fsum(Am[i][j] * c[j] for j in range(n)) for i in range(n)]
            c = [1 / mpmath.fsum(Am[i][j] * r[i] for i in range(n)) for j in range(n)]
            err = max(abs(r[i] * mpmath.fsum(Am[i][j] * c[j] for j in range(n)) - 1) for i in range(n))
            history.append(err)
            if err <= target:
                break
            if method == "auto" and sweep >= PROBE_SWEEPS and history[-1 - lag] > 0:
                rho = (err / history[-1 - lag]) ** (mpmath.mpf(1) / lag)
                if rho >= 1 or mpmath.log(target / err) / mpmath.log(rho) > min(switch, max_iter - sweep):
                    break
        steps = 0
        if err > target and method != "sinkhorn":
            f, g, steps, _ = newton_balance_mp(Am, [mpmath.log(x) for x in r], [mpmath.log(x) for x in c],
                                               target / 2)
            r, c = [mpmath.exp(x) for x in f], [mpmath.exp(x) for x in g]
        products = [[r[i] * Am[i][j] * c[j] for j in range(n)] for i in range(n)]
    with mpmath.workdps(dps):
        out = np.empty((n, n), dtype=object)
        for i in range(n):
            for j in range(n):
                out[i, j] = +products[i][j]                 # rounded to dps digits
        err = _exact_residual(out)
        if err > tol_q:
            raise ConvergenceError(
                f"sinkhorn_mp (method={method!r}: {len(history)} sweeps, {steps} Newton steps) did not reach "
                f"tol={mpmath.nstr(tol_mp, 5)} (exact max marginal error of the result {float(err):.3e})")
    return out
