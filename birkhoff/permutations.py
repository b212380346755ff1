"""Permutation matrices and convex combinations of them (mHC-lite, BE-HC).

Convention everywhere in the package: a permutation is an index array ``p`` of length
``n`` and its matrix has ``P[i, p[i]] = 1``, so ``(P x)_i = x[p[i]]``.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from .validate import as_array, check_entries, count, flag, is_exact
from .errors import InvalidMatrixError

__all__ = ["permutation_matrix", "from_permutations",
           "all_permutations", "cyclic_permutations", "check_permutations"]

MAX_ALL_PERMUTATIONS_N = 8


def check_permutations(perms, n: int | None = None) -> np.ndarray:
    """Validate a ``(K, n)`` stack of permutations; returns an ``int64`` array."""
    try:
        P = np.asarray(perms)
    except (ValueError, TypeError) as exc:
        raise InvalidMatrixError(f"perms is not a rectangular array: {exc}") from None
    if P.ndim == 1:
        P = P[None, :]
    if P.ndim != 2 or P.shape[1] == 0 or P.shape[0] == 0:
        raise InvalidMatrixError(f"perms must have shape (K, n) with K, n >= 1, got {P.shape}")
    if P.dtype.kind not in "iu":
        raise InvalidMatrixError(f"perms must be integer index arrays, got dtype {P.dtype}")
    if n is not None and P.shape[1] != n:
        raise InvalidMatrixError(f"perms have length {P.shape[1]}, expected {n}")
    ok = np.sort(P, axis=1) == np.arange(P.shape[1])
    if not ok.all():
        k = int(np.flatnonzero(~ok.all(axis=1))[0])
        raise InvalidMatrixError(f"perms[{k}] = {P[k].tolist()} is not a permutation of 0..{P.shape[1] - 1}")
    return P.astype(np.int64)


def permutation_matrix(p, *, exact: bool = False) -> np.ndarray:
    """The ``n x n`` 0/1 matrix with ``P[i, p[i]] = 1`` (int64, or Fractions if ``exact``).

    ``n`` is bounded by :data:`birkhoff.validate.MAX_ENTRIES` (checked before allocating).

    Examples
    --------
    >>> permutation_matrix([2, 0, 1])         # row i has its 1 in column p[i]
    array([[0, 0, 1],
           [1, 0, 0],
           [0, 1, 0]])
    """
    exact = flag(exact, "exact")
    p = check_permutations(p)[0]
    n = p.size
    check_entries((n, n), "the permutation matrix", exact=exact)
    M = np.zeros((n, n), dtype=np.int64)
    M[np.arange(n), p] = 1
    return M.astype(object) * Fraction(1) if exact else M


def from_permutations(weights, perms) -> np.ndarray:
    """``H = sum_k w_k P_k`` for weights ``(..., K)`` and permutations ``(K, n)``.

    Batched over the leading dimensions of ``weights``. Weights must be finite and
    nonnegative; every row and column of ``H`` then sums to ``sum_k w_k`` (so ``H`` is
    doubly stochastic iff the weights sum to 1). Fraction/int weights give an exact
    Fraction result; float weights a float64 result.

    Examples
    --------
    >>> from fractions import Fraction as F
    >>> from_permutations([F(1, 3), F(2, 3)], [[0, 1], [1, 0]])
    array([[Fraction(1, 3), Fraction(2, 3)],
           [Fraction(2, 3), Fraction(1, 3)]], dtype=object)
    """
    perms = check_permutations(perms)
    K, n = perms.shape
    w = as_array(weights, "weights", nonnegative=True)
    if w.shape[-1] != K:
        raise InvalidMatrixError(f"weights must have shape (..., {K}) to match perms, got {w.shape}")
    check_entries(w.shape[:-1] + (n, n), "H", exact=is_exact(w))
    flat = (np.arange(n)[None, :] * n + perms).ravel()        # entry (i, p_k[i]) of each term
    if is_exact(w):
        wq = w
        out = np.full(wq.shape[:-1] + (n * n,), Fraction(0), dtype=object)
        for idx in np.ndindex(wq.shape[:-1]):
            acc = out[idx]
            for pos, val in zip(flat, np.repeat(wq[idx], n)):
                acc[pos] += val
        return out.reshape(wq.shape[:-1] + (n, n))
    if w.ndim == 1:
        return weighted_sum(w, perms)
    from scipy.sparse import csr_matrix  # where used: scipy.sparse costs 0.1-0.2 s to import

    incidence = csr_matrix((np.ones(K * n), (np.repeat(np.arange(K), n), flat)), shape=(K, n * n))
    out = (incidence.T @ w.reshape(-1, K).T).T                  # (B, n*n), O(B K n)
    return np.asarray(out).reshape(w.shape[:-1] + (n, n))


def weighted_sum(weights, perms: np.ndarray) -> np.ndarray:
    """``sum_k w_k P_k`` for float ``weights (K,)`` and ``perms (K, n)`` already checked (no validation here):
    each entry summed over ``k`` in ascending order, as :func:`from_permutations` sums it."""
    n = perms.shape[1]
    return np.bincount((np.arange(n) * n + perms).ravel(), np.repeat(weights, n), n * n).reshape(n, n)


def all_permutations(n: int) -> np.ndarray:
    """All ``n!`` permutations of ``0..n-1`` as ``(n!, n)``, lexicographic order.

    Lexicographic order starts with the identity. ``n <= 8`` (``8! = 40320``).

    Examples
    --------
    >>> all_permutations(3)
    array([[0, 1, 2],
           [0, 2, 1],
           [1, 0, 2],
           [1, 2, 0],
           [2, 0, 1],
           [2, 1, 0]])
    """
    n = count(n, "n", low=1, high=MAX_ALL_PERMUTATIONS_N)
    out = np.fromiter(itertools.chain.from_iterable(itertools.permutations(range(n))),
                      dtype=np.int64, count=math.factorial(n) * n)
    return out.reshape(-1, n)


def cyclic_permutations(n: int) -> np.ndarray:
    """The ``n`` cyclic shifts as ``(n, n)``: row ``k`` is ``i -> (i + k) mod n``; identity first.

    ``n * n`` is bounded by :data:`birkhoff.validate.MAX_ENTRIES` (checked before allocating).

    Examples
    --------
    >>> cyclic_permutations(3)
    array([[0, 1, 2],
           [1, 2, 0],
           [2, 0, 1]])
    """
    n = count(n, "n", low=1)
    check_entries((n, n), "the cyclic permutations")
    i = np.arange(n)
    return (i[None, :] + i[:, None]) % n
