"""Birkhoff-von Neumann decomposition: ``P = sum_k w_k P_k`` with permutation matrices ``P_k``.

Greedy with bottleneck matchings: at each step take, inside the support of the
remainder ``R``, the permutation ``sigma`` that maximises ``min_i R[i, sigma(i)]``,
subtract ``w P_sigma`` with ``w`` that minimum, and repeat. Each step zeroes at least
one entry, so the face of the Birkhoff polytope containing the remainder loses a
dimension: at most ``(n - 1)**2 + 1`` terms (Marcus-Ree 1959; the face of a DS matrix
has dimension ``<= (n-1)**2``). The bottleneck permutation is found with scipy's
``linear_sum_assignment``: a perfect-matching test at the largest candidate value, else
one assignment whose costs grow by more than a factor ``n`` per rank of the entry
(:func:`_lexicographic`), confirmed by a matching test one value up.

Float mode treats remainder entries at rounding-noise level (``4 n eps max P``) as zeros. Its
steps run as compiled code (:mod:`birkhoff._compiled.bvn`, numba) once that pays
(:func:`birkhoff._compiled.kernels`): the same steps and scipy's assignment algorithm, so the
same terms; this module's :func:`_greedy` is their reference.
Exact mode works in ``Fraction`` (the search on the entries' ranks, which order exactly
like them): weights sum to exactly 1 and ``.matrix()`` equals the input exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
import bisect
from fractions import Fraction

import numpy as np

from . import _compiled
from .validate import as_matrix, count, flag, is_exact, real, to_fraction
from .exact import margin_residuals
from .errors import ConvergenceError, NotDoublyStochasticError
from .permutations import from_permutations, weighted_sum

__all__ = ["Decomposition", "bvn_decompose", "marcus_ree_bound"]


def marcus_ree_bound(n: int) -> int:
    """``(n - 1)**2 + 1``: the most permutation matrices any n x n DS matrix needs.

    Examples
    --------
    >>> marcus_ree_bound(4)     # (n - 1)^2 + 1 terms suffice for any 4 x 4 doubly stochastic matrix
    10
    """
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


def _assignment(cost: np.ndarray) -> np.ndarray | None:
    """scipy's ``linear_sum_assignment`` (minimum cost; ``inf`` forbids an entry): the column of each
    row, or None when no assignment avoids ``inf``. Imported on first use: ``scipy.optimize`` takes
    0.3 s to import, which every ``import birkhoff`` would pay."""
    from scipy.optimize import linear_sum_assignment

    try:
        return linear_sum_assignment(cost)[1]
    except ValueError:                   # 'cost matrix is infeasible'
        return None


def _matching(Rf: np.ndarray, t: float, base: np.ndarray) -> np.ndarray | None:
    """A permutation with every ``Rf[i, sigma(i)] >= t`` (LSA on the 0/1 cost ``Rf < t``), or None."""
    sigma = _assignment(Rf < t)
    return sigma if (Rf.take(base + sigma) >= t).all() else None


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


def _shift(n: int) -> int:
    """``ceil(log2(n + 1))``: the exponent step of :func:`_lexicographic`'s costs (``2**shift > n``)."""
    return int(n).bit_length()


def _lexicographic(Rf: np.ndarray, high: float, window: np.ndarray) -> np.ndarray | None:
    """Min-sum assignment with cost ``b**r`` on an entry of rank ``r``: 0 at ``>= high``, ``1..K`` for
    the values of ``window`` (descending), ``K + 1`` below it; ``inf`` at zeros; ``b = 2**ceil(log2(n + 1))``.

    Since ``b > n``, one entry of rank ``r + 1`` costs more than ``n`` entries of rank ``<= r``, so
    the cheapest assignment has the smallest largest rank: a bottleneck permutation when its
    minimum lies in the window (Gross 1959's bottleneck problem as one weighted assignment).
    Powers of two keep the costs exact; ``K`` is capped so that ``n b**(K+1)`` stays finite.
    """
    shift = _shift(Rf.shape[0])
    window = window[: 1000 // shift - 2]
    rank = np.searchsorted(-window, -Rf, side="left") + 1          # window descending: -window ascending
    rank[Rf >= high] = 0
    cost = np.ldexp(1.0, shift * rank)
    cost[Rf <= 0] = np.inf
    return _assignment(cost)


def _bottleneck(Rf: np.ndarray, ceiling: float, base: np.ndarray) -> np.ndarray | None:
    """Permutation inside the support of ``Rf`` maximising its smallest entry.

    ``None`` when the support has no perfect matching. The optimum is at most ``high``, the
    largest entry ``<= min(ceiling, min_i max_j Rf_ij, min_j max_i Rf_ij)`` (``ceiling``, the
    previous step's value, bounds it because the remainder only decreases). ``high`` is tested
    first with one matching (the optimum in ~3 of 4 steps); otherwise one :func:`_lexicographic`
    assignment over the distinct values below ``high`` finds the optimum, and a matching test at
    the next value up confirms it (a gallop upward continues if it does not).
    """
    high = min(Rf.max(axis=1).min(), Rf.max(axis=0).min())
    if high >= ceiling:
        high = Rf[Rf <= ceiling].max(initial=0.0)
    if high <= 0:
        return None
    sigma = _matching(Rf, high, base)
    if sigma is not None:
        return sigma
    vals = np.unique(Rf[(Rf > 0) & (Rf < high)])[::-1]                       # descending
    sigma = _lexicographic(Rf, high, vals)
    if sigma is None or not (low := Rf.take(base + sigma).min()) > 0:
        return None
    # the values above 'low', ascending: above[lo] is feasible (-1 stands for 'low'), nothing above
    # above[hi] is (nothing at >= high is): gallop up, then bisect
    above = vals[vals > low][::-1]
    lo, hi, step, bounded = -1, len(above) - 1, 1, False
    while lo < hi:
        probe = min(lo + step, hi)
        cand = _matching(Rf, above[probe], base)
        if cand is None:
            hi, bounded = probe - 1, True
        else:
            lo, sigma = probe, cand
        step = max(1, (hi - lo + 1) // 2) if bounded else 2 * step
    return sigma


def _greedy(M: np.ndarray, noise: float, limit: int, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """The greedy steps: ``(weights, perms)``, at most ``limit`` terms, remainder entries ``<= noise``
    zeroed (float mode). The numpy path; :mod:`birkhoff._compiled.bvn` is its compiled twin."""
    n = M.shape[0]
    R = M.copy()
    if not exact:
        R[R <= noise] = 0.0
    base = np.arange(n) * n                  # flat index of row i is base[i] + column
    weights: list[float] = []
    perms: list[np.ndarray] = []
    ceiling = np.inf
    while len(perms) < limit:
        Rf, top = _ranks(R, R > 0, ceiling) if exact else (R, ceiling)   # zeros off the support
        sigma = _bottleneck(Rf, top, base)
        if sigma is None:
            break
        on = R.take(base + sigma)
        w = ceiling = on.min()
        on = on - w
        R.put(base + sigma, on if exact else np.where(on <= noise, 0.0, on))
        weights.append(w)
        perms.append(sigma)
    return (np.array(weights, dtype=object if exact else np.float64),
            np.array(perms, dtype=np.int64).reshape(-1, n))


def _check_ds(M: np.ndarray, tol: float, exact: bool) -> float:
    """Raise unless ``P`` is DS within ``tol`` (exactly in exact mode); returns the worst residual."""
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
    return worst


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
    ConvergenceError
        Float mode, no ``max_terms``: the reconstruction error exceeds ``n (margin + noise) + noise``
        (the returned decomposition is checked before it is returned).

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> d = bvn_decompose([[F(1, 3), F(2, 3)], [F(2, 3), F(1, 3)]])
    >>> [(w, p.tolist()) for w, p in zip(d.weights, d.perms)]
    [(Fraction(2, 3), [1, 0]), (Fraction(1, 3), [0, 1])]
    """
    tol = real(tol, "tol", rounding="down")
    limit = None if max_terms is None else count(max_terms, "max_terms", low=1)
    M = as_matrix(P, nonnegative=True, name="P")
    exact = is_exact(M) if exact is None else flag(exact, "exact")
    M = to_fraction(M) if exact else M.astype(np.float64)
    n = M.shape[0]
    limit = marcus_ree_bound(n) if limit is None else limit
    margin = _check_ds(M, tol, exact)
    # Float mode: entries at rounding-noise level of what has been subtracted are zeros.
    noise = 0.0 if exact else 4.0 * n * np.finfo(np.float64).eps * float(M.max())
    compiled = None if exact else _compiled.kernels("bvn", n ** 3)
    if compiled is None:
        W, Pk = _greedy(M, noise, limit, exact)
    else:
        W, Pk = compiled.decompose(np.where(M <= noise, 0.0, M), noise, limit, _shift(n))
    if not len(W):
        recon = np.zeros((n, n))
    else:       # float terms: from_permutations' sums without validating the terms again
        recon = from_permutations(W, Pk) if exact else weighted_sum(W, np.asarray(Pk))
    residual = float(np.max(np.abs(np.asarray(recon - M, dtype=object if exact else np.float64))))
    if exact and len(W) < limit and sum(W, Fraction(0)) != 1:
        raise NotDoublyStochasticError(  # cannot happen for an exactly DS input (total support)
            "exact decomposition did not exhaust P: remainder has no positive diagonal")
    # The check of a full float decomposition: what is left is what P's margin residual and the
    # zeroed noise allow (measured <= 0.5 n (margin + noise) over 400 near-DS inputs, n <= 19).
    bound = n * (margin + noise) + noise
    if not exact and max_terms is None and not residual <= bound:
        raise ConvergenceError(
            f"BvN reconstruction error {residual:.3e} exceeds what P's margins allow ({bound:.3e})")
    return Decomposition(weights=W, perms=Pk, residual=residual)
