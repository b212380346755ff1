"""Accurate products of float matrices, and an inverse for condition numbers past ``1 / u``.

``A @ B`` is split into float matrices whose every product is **exact**: ``A`` by rows and ``B``
by columns into slices of at most ``53 - beta`` significant bits, ``beta = ceil((55 + log2 n) / 2)``,
so each dot product of two slices is a sum of ``n`` exact products on one grid that fits 53 bits
(Ozaki, Ogita, Oishi and Rump, Numer. Algorithms 59, 2012; one bit of margin over their ``beta``).
The sum of those exact matrices is then distilled by error-free transformations (TwoSum cascades,
Ogita-Rump-Oishi's VecSum), which keep it exact; what is not kept is bounded.

:func:`refined_inverse` uses them for Rump's inversion of extremely ill-conditioned matrices
(Rump, JSIAM Letters / Numer. Math. 2009): ``R`` is kept as a sum of float matrices, one more per
step, and ``I - R M`` is enclosed with the cancellation that is the whole answer done exactly.
"""

from __future__ import annotations

import math

import numpy as np

from .exact import ETA, gamma, inflate, norm_inf_up, two_sum

__all__ = ["split", "product_terms", "distil", "refined_inverse"]


def split(A: np.ndarray, axis: int, bits_off: int, floor: float, most: int = 80
          ) -> tuple[list[np.ndarray], np.ndarray]:
    """``(slices, rest)`` with ``A = sum(slices) + rest`` exactly: each slice holds the next bits of ``A``
    on a grid shared along ``axis`` (``-1``: per row, ``-2``: per column), ``2**(tau + bits_off - 52)``
    where ``2**tau`` bounds that line of what is left (Rump-Ogita-Oishi's ExtractScalar:
    ``(x + sigma) - sigma`` with ``sigma = 2**(tau + bits_off)``), until ``|rest| <= floor`` (at most
    ``most`` slices)."""
    slices: list[np.ndarray] = []
    rest = np.array(A, dtype=np.float64, copy=True)
    for _ in range(most):
        top = np.max(np.abs(rest), axis=axis, keepdims=True)
        if not (top > floor).any():
            break
        tau = np.frexp(top)[1]                                     # 2**tau > top (0 where the line is 0)
        sigma = np.where(top > 0, np.ldexp(1.0, tau + bits_off), 0.0)
        piece = (rest + sigma) - sigma
        slices.append(piece)
        rest = rest - piece                                        # exact (ExtractScalar)
    return slices, rest


def _abs_product_up(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """A float matrix ``>= |X| |Y|`` entrywise."""
    k = X.shape[-1]
    return inflate(np.abs(X) @ np.abs(Y), gamma(k + 2), (k + 2) * ETA)


def product_terms(A_terms: list[np.ndarray], B_terms: list[np.ndarray], target: float | None = None
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """``(terms, tail)``: float matrices whose exact sum is ``(sum A_terms) @ (sum B_terms)`` to within
    ``tail`` entrywise; each term is one float matmul of two slices, exact. The operands are sliced until
    what is left of them adds at most about ``target`` to an entry (None: until nothing is left, so
    small entries beside large ones in a row or column are kept too); ``tail`` bounds what is left, plus
    ``n + 1`` subnormal units per term for underflow."""
    n = A_terms[0].shape[-1]
    bits_off = math.ceil((55 + math.log2(max(n, 2))) / 2)
    terms: list[np.ndarray] = []
    tail = np.zeros(A_terms[0].shape[:-1] + B_terms[0].shape[-1:])
    A_top = max(float(np.abs(A).max()) for A in A_terms)
    B_top = max(float(np.abs(B).max()) for B in B_terms)
    pairs = len(A_terms) * len(B_terms)

    def floor(other_top: float) -> float:
        if target is None:
            return 0.0
        with np.errstate(divide="ignore", over="ignore"):
            return float(np.float64(target) / (n * other_top * pairs) + ETA)      # inf for a zero operand

    B_split = [split(B, -2, bits_off, floor(A_top)) for B in B_terms]
    B_abs = sum(np.abs(B) for B in B_terms)
    for A in A_terms:
        A_slices, A_rest = split(A, -1, bits_off, floor(B_top))
        tail = tail + _abs_product_up(A_rest, B_abs)
        A_kept = A - A_rest                                       # exact: the bits the slices hold
        for B_slices, B_rest in B_split:
            tail = tail + _abs_product_up(A_kept, B_rest)
            terms.extend(t for t in (a @ b for a in A_slices for b in B_slices) if t.any())    # zeros add nothing
    tail = inflate(tail, gamma(2 * pairs + 2), (n + 1) * ETA * (len(terms) + 1))
    return terms, tail


def distil(terms: list[np.ndarray], keep: int, passes: int = 40) -> tuple[list[np.ndarray], np.ndarray]:
    """``(leading, rest)``: ``keep`` float matrices whose sum is the exact sum of ``terms`` (at least one)
    to within ``rest`` entrywise. Each leading matrix is the rounded sum of what is left after VecSum
    cascades (which keep the sum exact), repeated until what they leave is below ``u`` times it, or
    ``passes`` times (massive cancellation needs one pass per 16 digits); ``rest`` bounds what the leading
    ones leave out."""
    t = np.stack(terms)
    leading: list[np.ndarray] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(keep):
            for _ in range(passes):
                for j in range(1, t.shape[0]):
                    t[j], t[j - 1] = two_sum(t[j - 1], t[j])
                if (np.abs(t[:-1]).sum(axis=0) <= 2.0 ** -53 * np.abs(t[-1])).all():
                    break
            leading.append(t[-1].copy())
            t = t[:-1] if t.shape[0] > 1 else np.zeros_like(t)
        rest = inflate(np.abs(t).sum(axis=0), gamma(t.shape[0] + 1), 2 * ETA)
    return leading, rest


def refined_inverse(M: np.ndarray, terms: int = 6, small: float = 2.0 ** -27
                    ) -> tuple[list[np.ndarray], np.ndarray] | None:
    """``(R, E)`` for a float matrix ``M``: ``R`` a list of at most ``terms`` float matrices, ``E`` a float
    matrix with ``|I - (sum R) M| <= E`` entrywise and ``e = || E ||_inf < 1``; None if that is not reached.

    Rump's iteration: ``R_1 = inv(M)``; while ``e > small``, ``P = fl(R M)`` computed accurately (its
    condition number is about ``u`` times ``R``'s), ``X = inv(P)`` and ``R = X R`` kept to one more float
    matrix. Each step gains about ``-log10 u = 16`` digits of condition number."""
    n = M.shape[-1]
    with np.errstate(all="ignore"):
        try:
            R = [np.linalg.inv(M)]
        except np.linalg.LinAlgError:
            return None
    if not np.isfinite(R[0]).all() or not R[0].any():
        return None
    eye = np.eye(n)
    for step in range(terms):
        T, tail = product_terms(R, [M], 2.0 ** -64)              # I - R M: absolute accuracy
        (E_mid,), rest = distil([eye] + [-t for t in T], 1)
        E = inflate(np.abs(E_mid) + rest + tail, 4 * gamma(3))
        if not np.isfinite(E).all():
            return None
        e = norm_inf_up(E)
        if e <= small or step + 1 == terms:
            return (R, E) if e < 1 else None
        if not T:                                              # R M = 0 exactly: M is not invertible
            return None
        (P,), _ = distil(T, 1)
        # the float inverse of an extremely ill-conditioned P preconditions it when the rounding errors are
        # generic; a structured P (triangular, say) gets a relative perturbation of order 2**-50 first
        # (Rump 2009 perturbs P likewise), seeded: the same M gives the same R
        rng = np.random.default_rng(step)
        P = P * (1.0 + 2.0 ** -50 * rng.standard_normal(P.shape)) + np.diag(
            2.0 ** -50 * np.abs(P).max(axis=-1) * rng.standard_normal(n))
        with np.errstate(all="ignore"):
            try:
                X = np.linalg.inv(P)
            except np.linalg.LinAlgError:
                return None
        if not np.isfinite(X).all() or not X.any():
            return None
        XR, _ = product_terms([X], R)                                # exact: every entry to its own scale
        R, _ = distil(XR, len(R) + 1)
        if not np.isfinite(R[0]).all() or not R[0].any():
            return None
    return None
