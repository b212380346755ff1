"""Birkhoff-von Neumann decomposition: ``P = sum_k w_k P_k`` with permutation matrices ``P_k``.

Greedy with bottleneck matchings: at each step take, inside the support of the
remainder ``R``, the permutation ``sigma`` that maximises ``min_i R[i, sigma(i)]``
(found by binary search on a threshold ``t`` with a perfect-matching test on
``R >= t``, scipy's Hopcroft-Karp), subtract ``w P_sigma`` with ``w`` that minimum,
and repeat. Each step zeroes at least one entry, so the face of the Birkhoff polytope
containing the remainder loses a dimension: at most ``(n - 1)**2 + 1`` terms
(Marcus-Ree 1959; the face of a DS matrix has dimension ``<= (n-1)**2``).

Float mode treats remainder entries at rounding-noise level (``4 n eps max P``) as zeros.
The search uses the float order of the entries; for Fractions closer than a float
ulp it may pick a permutation whose minimum is not the largest, which affects the
number of terms, never exactness. Exact mode works in
``Fraction``: weights sum to exactly 1 and ``.matrix()`` equals the input exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
import bisect
from fractions import Fraction

import numpy as np

from .validate import as_matrix, count, flag, is_exact, real, to_fraction
from .exact import margin_residuals
from .errors import NotDoublyStochasticError
from .permutations import from_permutations

__all__ = ["Decomposition", "bvn_decompose", "marcus_ree_bound"]


def marcus_ree_bound(n: int) -> int:
    """``(n - 1)**2 + 1``: the most permutation matrices any n x n DS matrix needs."""
    return (n - 1) ** 2 + 1


@dataclass(frozen=True)
class Decomposition:
    """``P ~= sum_k weights[k] * P_k`` with ``P_k[i, perms[k][i]] = 1``.

    Attributes
    ----------
    weights : ndarray, shape (K,)
        float64, or ``Fraction`` objects in exact mode (then summing to exactly 1).
    perms : ndarray of int64, shape (K, n)
    residual : float
        ``max |P - sum_k w_k P_k|`` (0.0 exactly in exact mode).
    """

    weights: np.ndarray
    perms: np.ndarray
    residual: float

    def __len__(self) -> int:
        return len(self.weights)

    @property
    def exact(self) -> bool:
        return self.weights.dtype == object

    def matrix(self) -> np.ndarray:
        """``sum_k w_k P_k`` (Fractions in exact mode)."""
        return from_permutations(self.weights, self.perms)


def _assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's ``linear_sum_assignment`` (minimum cost), imported on first use: ``scipy.optimize`` takes
    0.3 s to import, which every ``import birkhoff`` would pay."""
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)


def _matching(mask: np.ndarray) -> np.ndarray | None:
    """A permutation inside the boolean pattern (LSA on the 0/1 cost ``~mask``), or None."""
    rows, sigma = _assignment(~mask)
    return sigma if mask[rows, sigma].all() else None


def _ranks(R: np.ndarray, mask: np.ndarray, ceiling) -> tuple[np.ndarray, float]:
    """Exact entries replaced by their ranks among the distinct values (1, 2, ...; 0 off the mask),
    and the rank of the largest value ``<= ceiling``.

    The bottleneck permutation depends only on the order of the entries, and ranks order
    exactly like the Fractions, however far below the float range they lie.
    """
    values = sorted(set(R[mask]))
    rank = {v: i + 1 for i, v in enumerate(values)}
    Rf = np.zeros(R.shape)
    Rf[mask] = [rank[v] for v in R[mask]]
    return Rf, (np.inf if ceiling == np.inf else float(bisect.bisect_right(values, ceiling)))


def _bottleneck(R: np.ndarray, mask: np.ndarray, ceiling) -> np.ndarray | None:
    """Permutation inside ``mask`` maximising its smallest entry of ``R``.

    ``None`` when the pattern has no perfect matching. The optimum lies between the
    minimum along the max-product permutation (LSA on ``-log R``, feasible) and
    ``min(ceiling, min_i max_j R_ij, min_j max_i R_ij)``; ``ceiling`` is the previous
    step's value (the remainder only decreases, so the optimum never increases). The
    largest entry below that bound is tested first (one matching: the optimum in ~3 of
    4 steps); otherwise the search gallops down from there. Exact input is searched
    through its ranks (:func:`_ranks`).
    """
    n = R.shape[0]
    rows = np.arange(n)
    Rf, ceiling = _ranks(R, mask, ceiling) if R.dtype == object else (R, ceiling)  # zeros off the mask
    high = min(ceiling, Rf.max(axis=1).min(), Rf.max(axis=0).min())
    below = Rf[Rf <= high]
    top = below.max() if below.size else 0.0
    if top > 0:                          # most steps: the optimum is the top candidate, one matching test
        sigma = _matching(Rf >= top)
        if sigma is not None:
            return sigma
    with np.errstate(divide="ignore"):
        cost = -np.log(Rf)
    _, sigma = _assignment(np.where(mask, cost, 1e300))
    if not mask[rows, sigma].all():
        return None
    low = Rf[rows, sigma].min()
    if low >= top:
        return sigma
    vals = np.unique(Rf[(Rf > low) & (Rf < top)])
    # vals[lo] is feasible (lo = -1 stands for 'low'); nothing above vals[hi] is.
    lo, hi, step = -1, len(vals) - 1, 1
    while lo < hi:
        probe = max(hi - step + 1, lo + 1)
        cand = _matching(Rf >= vals[probe])
        if cand is None:
            hi = probe - 1
            step *= 2
        else:
            lo, sigma = probe, cand
            step = max(1, (hi - lo) // 2)
    return sigma


def _check_ds(M: np.ndarray, tol: float, exact: bool) -> None:
    row_res, col_res = (float(r) for r in margin_residuals(M))
    worst = max(row_res, col_res)
    limit = 0.0 if exact else tol
    if worst > limit:
        kind = "exactly " if exact else ""
        raise NotDoublyStochasticError(
            f"P is not {kind}doubly stochastic: max |row sum - 1| <= {row_res:.3e}, "
            f"max |column sum - 1| <= {col_res:.3e}"
            + ("" if exact else f" (tol = {tol:g})")
            + ("; exact mode needs exact margins (see birkhoff.quantize)" if exact else ""))


def bvn_decompose(P, *, tol: float = 1e-9, exact: bool | None = None,
                  max_terms: int | None = None) -> Decomposition:
    """Birkhoff-von Neumann decomposition by bottleneck matchings.

    Parameters
    ----------
    P : array_like, shape (n, n)
        Doubly stochastic (within ``tol`` in float mode, exactly in exact mode).
    tol : float
        Float mode: allowed margin residual of ``P``. (Remainder entries at rounding-noise
        level, ``<= 4 n eps max(P)``, are treated as zeros.)
    exact : bool, optional
        Fraction arithmetic. Default: exact for Fraction/int input, float otherwise.
        ``exact=True`` on float input reads the floats as the rationals they are.
    max_terms : int, optional
        Stop after this many terms (default: the Marcus-Ree bound ``(n-1)**2 + 1``).

    Returns
    -------
    Decomposition

    Raises
    ------
    NotDoublyStochasticError
        Margins off by more than ``tol`` (exact mode: by anything), message with residuals.
    InvalidMatrixError
        Negative, NaN/Inf, non-square or empty input.
    InvalidArgumentError
        A bad ``tol`` or ``max_terms``.
    """
    tol = real(tol, "tol", rounding="down")
    limit = None if max_terms is None else count(max_terms, "max_terms", low=1)
    M = as_matrix(P, nonnegative=True, name="P")
    exact = is_exact(M) if exact is None else flag(exact, "exact")
    M = to_fraction(M) if exact else M.astype(np.float64)
    n = M.shape[0]
    limit = marcus_ree_bound(n) if limit is None else limit
    _check_ds(M, tol, exact)
    R = M.copy()
    # Float mode: entries at rounding-noise level of what has been subtracted are zeros.
    noise = 0.0 if exact else 4.0 * n * np.finfo(np.float64).eps * float(M.max())
    if not exact:
        R[R <= noise] = 0.0
    rows = np.arange(n)
    weights, perms = [], []
    ceiling = np.inf
    while len(perms) < limit:
        mask = R > 0
        if not mask.any():
            break
        sigma = _bottleneck(R, mask, ceiling)
        if sigma is None:
            break
        w = ceiling = R[rows, sigma].min()
        R[rows, sigma] -= w
        if not exact:
            on = R[rows, sigma]
            R[rows, sigma] = np.where(on <= noise, 0.0, on)
        weights.append(w)
        perms.append(sigma)
    W = np.array(weights, dtype=object if exact else np.float64)
    Pk = np.array(perms, dtype=np.int64).reshape(-1, n)
    recon = from_permutations(W, Pk) if len(W) else np.zeros((n, n))
    residual = float(np.max(np.abs(np.asarray(recon - M, dtype=object if exact else np.float64))))
    if exact and len(perms) < limit and sum(weights, Fraction(0)) != 1:
        raise NotDoublyStochasticError(  # cannot happen for an exactly DS input (total support)
            "exact decomposition did not exhaust P: remainder has no positive diagonal")
    return Decomposition(weights=W, perms=Pk, residual=residual)
