"""Newton balancing on the dual log-potentials (the fast path for hard Sinkhorn inputs).

``P = exp(log A + f 1^T + 1 g^T)`` is doubly stochastic exactly at the minimiser of the
convex dual ``phi(f, g) = sum_ij exp(log A_ij + f_i + g_j) - sum f - sum g``, whose
gradient is the marginal error ``(P 1 - 1, P^T 1 - 1)`` and whose Hessian is
``[[diag(P 1), P], [P^T, diag(P^T 1)]]``. Sinkhorn is coordinate descent on ``phi`` and
converges linearly at a rate that approaches 1 on nearly decomposable inputs or entries
spanning hundreds of orders of magnitude; Newton's method converges quadratically
near the solution, whatever the conditioning (Knight & Ruiz, "A fast algorithm for
matrix balancing", IMA J. Numer. Anal. 33 (2013) 1029-1047, do the same with an inner
conjugate-gradient solve; for the small ``n`` of mixing matrices a dense solve is cheaper).

The Hessian is singular along ``(1, -1)`` (adding ``s`` to ``f`` and ``-s`` to ``g``
changes nothing) and nearly singular on nearly decomposable inputs, so each step solves
the Levenberg-Marquardt system ``(H + mu ||grad|| I) d = -grad`` (``mu = 1e-4``: a
larger shift caps the step in the weak directions, and the potentials of entries 1e300
apart must move by hundreds) and backtracks (Armijo on
``phi``; near the solution, where ``phi`` no longer resolves the decrease in float, a
step is also accepted when it shrinks the marginal error by a tenth). Zeros of ``A``
(``log A = -inf``) stay zeros. Everything is batched over leading dimensions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["newton_balance", "NEWTON_MAX_STEPS", "sweeps_per_newton_step"]

NEWTON_MAX_STEPS = 200
_ARMIJO = 1e-4
_LM = 1e-4                   # Levenberg-Marquardt shift = _LM * ||grad||_2
_HALVINGS = 40


def sweeps_per_newton_step(n: int) -> float:
    """What one dense Newton step costs in Sinkhorn sweeps at size ``n`` (flop count:
    an LU of the ``2n x 2n`` system, ``(2n)^3 * 2/3``, against ``4 n^2`` per sweep), at least 1."""
    return max(1.0, (2 * n) ** 3 * 2 / 3 / (4 * n * n))


def _state(logA: np.ndarray, f: np.ndarray, g: np.ndarray):
    """``P``, the gradient ``(P 1 - 1, P^T 1 - 1)`` and ``phi`` at ``(f, g)``."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        P = np.exp(logA + f[:, :, None] + g[:, None, :])
        rows, cols = P.sum(-1), P.sum(-2)
        phi = rows.sum(-1) - f.sum(-1) - g.sum(-1)
    return P, np.concatenate([rows - 1.0, cols - 1.0], axis=-1), phi


def newton_balance(logA: np.ndarray, f: np.ndarray, g: np.ndarray, target: float,
                   max_steps: int = NEWTON_MAX_STEPS) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Newton steps on ``phi`` from the potentials ``f, g`` until ``max |grad| <= target``.

    Parameters
    ----------
    logA : (B, n, n) float, ``-inf`` for zero entries; every matrix has total support.
    f, g : (B, n) starting row and column log-potentials (e.g. after a few sweeps).
    target : the marginal error to reach (max over rows and columns).

    Returns
    -------
    f, g : the potentials; ``steps``: Newton steps taken (the batch's maximum);
    converged : (B,) bool, ``max |grad| <= target`` at the returned potentials.
    """
    B, n = f.shape
    f, g = f.astype(np.float64, copy=True), g.astype(np.float64, copy=True)
    P, grad, phi = _state(logA, f, g)
    res = np.max(np.abs(grad), axis=-1)
    active = np.flatnonzero(np.isfinite(res) & (res > target))
    eye = np.eye(2 * n)
    steps = 0
    while active.size and steps < max_steps:
        steps += 1
        Pa, ga = P[active], grad[active]
        H = np.zeros((active.size, 2 * n, 2 * n))
        H[:, :n, n:], H[:, n:, :n] = Pa, Pa.transpose(0, 2, 1)
        diag = ga + 1.0                                        # row sums, then column sums
        H[:, np.arange(2 * n), np.arange(2 * n)] = diag
        shift = _LM * np.linalg.norm(ga, axis=-1) + 1e-15 * diag.max(-1)
        d = -np.linalg.solve(H + shift[:, None, None] * eye, ga[..., None])[..., 0]
        slope = np.einsum("bi,bi->b", ga, d)
        t = np.ones(active.size)
        todo = np.arange(active.size)
        for _ in range(_HALVINGS):
            idx = active[todo]
            fn = f[idx] + t[todo, None] * d[todo, :n]
            gn = g[idx] + t[todo, None] * d[todo, n:]
            Pn, gradn, phin = _state(logA[idx], fn, gn)
            resn = np.max(np.abs(gradn), axis=-1)
            ok = np.isfinite(phin) & np.isfinite(resn) & (
                (phin <= phi[idx] + _ARMIJO * t[todo] * slope[todo]) | (resn <= 0.9 * res[idx]))
            acc = idx[ok]
            f[acc], g[acc], P[acc], grad[acc], phi[acc], res[acc] = fn[ok], gn[ok], Pn[ok], gradn[ok], phin[ok], resn[ok]
            todo = todo[~ok]
            if not todo.size:
                break
            t[todo] *= 0.5
        stalled = active[todo]                                 # no acceptable step: stop those
        keep = (res[active] > target) & ~np.isin(active, stalled)
        active = active[keep]
    return f, g, steps, res <= target


def newton_balance_mp(A: list[list], f: list, g: list, target, max_steps: int = NEWTON_MAX_STEPS):
    """:func:`newton_balance` for one matrix in mpmath at the current precision.

    ``A`` holds mpf entries (zeros stay zeros), ``f, g`` the log-potentials, so that
    ``P_ij = exp(f_i) A_ij exp(g_j)``. Returns ``(f, g, steps, converged)``.
    """
    import mpmath

    n = len(A)

    def state(f, g):
        er, ec = [mpmath.exp(x) for x in f], [mpmath.exp(x) for x in g]
        P = [[er[i] * A[i][j] * ec[j] for j in range(n)] for i in range(n)]
        rows = [mpmath.fsum(P[i]) for i in range(n)]
        cols = [mpmath.fsum(P[i][j] for i in range(n)) for j in range(n)]
        grad = [x - 1 for x in rows + cols]
        return P, grad, mpmath.fsum(rows) - mpmath.fsum(f) - mpmath.fsum(g), max(abs(x) for x in grad)

    P, grad, phi, res = state(f, g)
    steps = 0
    while res > target and steps < max_steps:
        steps += 1
        H = mpmath.zeros(2 * n, 2 * n)
        for i in range(n):
            H[i, i], H[n + i, n + i] = grad[i] + 1, grad[n + i] + 1
            for j in range(n):
                H[i, n + j] = H[n + j, i] = P[i][j]
        shift = _LM * mpmath.sqrt(mpmath.fsum(x * x for x in grad))
        for k in range(2 * n):
            H[k, k] += shift
        try:
            d = [-x for x in mpmath.lu_solve(H, mpmath.matrix(grad))]
        except ZeroDivisionError:                 # H singular at this precision: no further progress
            break
        slope = mpmath.fsum(a * b for a, b in zip(grad, d))
        t = mpmath.mpf(1)
        for _ in range(_HALVINGS + mpmath.mp.prec // 2):
            fn = [f[i] + t * d[i] for i in range(n)]
            gn = [g[j] + t * d[n + j] for j in range(n)]
            Pn, gradn, phin, resn = state(fn, gn)
            if phin <= phi + _ARMIJO * t * slope or resn <= res * mpmath.mpf(0.9):
                f, g, P, grad, phi, res = fn, gn, Pn, gradn, phin, resn
                break
            t /= 2
        else:
            break
    return f, g, steps, res <= target
