"""Compiled twin of :func:`birkhoff.bvn_decompose`'s float mode: the same greedy bottleneck steps.

Step by step the numpy path's algorithm (:mod:`birkhoff.bvn`): the candidate value, one
perfect-matching test, else one lexicographic assignment and the gallop up; and the assignments
are solved by the algorithm scipy's ``linear_sum_assignment`` runs (the shortest augmenting path
of Crouse 2016, pp. 1685-1686: rows added one at a time, Dijkstra over the reduced costs with the
columns scanned from the last, ties to a free column), written here for numba. The same costs in
the same order give the same assignment, so the terms, weights and their count are the numpy
path's (tested term for term); what goes is Python's cost per step (about 35 us of numpy calls on
32 x 32 arrays and a call into scipy per assignment).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import JIT

__all__ = ["decompose", "compile_all"]


@njit(**JIT)
def _advance(remaining, row4col, index, i, left):
    """Take column ``remaining[index]`` into the search tree: ``(i, sink, left)``, its row to scan next
    (``i`` unchanged) or the column as the path's free end (``sink``, else -1), one column fewer left."""
    j = remaining[index]
    sink = j if row4col[j] == -1 else -1
    left -= 1
    remaining[index] = remaining[left]
    return (i if sink >= 0 else row4col[j]), sink, left


@njit(**JIT)
def _augment(path, row4col, sigma, sink, row):
    """Flip the augmenting path ending at column ``sink`` back to ``row``."""
    j = sink
    while True:
        i = path[j]
        row4col[j] = i
        j, sigma[i] = sigma[i], j
        if i == row:
            break


@njit(**JIT)
def _assignment(cost, n, sigma, work_f, work_i, SR, SC):
    """Minimum-cost assignment of the square ``cost`` (``inf`` forbids an entry) into ``sigma``
    (the column of each row); False when every assignment meets an ``inf``.

    ``work_f`` holds ``u, v, shortest`` (3n floats), ``work_i`` ``path, row4col, remaining`` (3n ints).
    """
    u, v, shortest = work_f[:n], work_f[n:2 * n], work_f[2 * n:]
    path, row4col, remaining = work_i[:n], work_i[n:2 * n], work_i[2 * n:]
    u[:] = 0.0
    v[:] = 0.0
    path[:] = -1
    row4col[:] = -1
    sigma[:] = -1
    for row in range(n):
        for k in range(n):                 # columns scanned from the last: a constant cost gives I
            remaining[k] = n - 1 - k
        SR[:] = False
        SC[:] = False
        shortest[:] = np.inf
        left, i, sink, reach = n, row, -1, 0.0
        while sink < 0:
            best, index = np.inf, -1
            SR[i] = True
            for k in range(left):
                j = remaining[k]
                r = reach + cost[i, j] - u[i] - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                if shortest[j] < best or (shortest[j] == best and row4col[j] == -1):
                    best, index = shortest[j], k
            reach = best
            if reach == np.inf:
                return False
            j = remaining[index]
            SC[j] = True
            i, sink, left = _advance(remaining, row4col, index, i, left)
        u[row] += reach
        for i in range(n):
            if SR[i] and i != row:
                u[i] += reach - shortest[sigma[i]]
        for j in range(n):
            if SC[j]:
                v[j] -= reach - shortest[j]
        _augment(path, row4col, sigma, sink, row)
    return True


@njit(**JIT)
def _matching(R, t, n, sigma, work_f, work_i):
    """A permutation with every ``R[i, sigma(i)] >= t`` into ``sigma``: the assignment of the 0/1 cost ``R < t``
    as :func:`_assignment` finds it, step for step, stopped at the first row whose shortest augmenting path
    costs more than 0 (each row's path adds its length to the optimal cost, so that row decides: False).
    Up to there every path costs 0, so the potentials ``u``, ``v`` stay 0; they, and the row and column
    marks that update them, are left out."""
    shortest = work_f[2 * n:]
    path, row4col, remaining = work_i[:n], work_i[n:2 * n], work_i[2 * n:3 * n]
    for j in range(n):
        row4col[j] = -1
        sigma[j] = -1
    for row in range(n):
        for k in range(n):
            remaining[k] = n - 1 - k
            shortest[k] = np.inf
        left, i, sink = n, row, -1
        while sink < 0:
            best, index = np.inf, -1
            for k in range(left):
                j = remaining[k]
                r = 1.0 if R[i, j] < t else 0.0
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                if shortest[j] < best or (shortest[j] == best and row4col[j] == -1):
                    best, index = shortest[j], k
            if best > 0.0:
                return False
            i, sink, left = _advance(remaining, row4col, index, i, left)
        _augment(path, row4col, sigma, sink, row)
    return True


@njit(**JIT)
def _ascending(keys, m):
    """Indices that sort the positive floats ``keys[:m]`` ascending: an LSD radix sort of their IEEE bits
    (which order positive floats as their values), a byte per pass, a pass skipped where every key has the
    same byte. About 4x numba's ``argsort`` on the 700 values of a lexicographic step at n = 32."""
    bits = keys[:m].view(np.uint64)
    order, other = np.arange(m), np.empty(m, dtype=np.int64)
    counts = np.empty(256, dtype=np.int64)
    byte = np.uint64(255)
    for shift in range(0, 64, 8):
        s = np.uint64(shift)
        counts[:] = 0
        for k in range(m):
            counts[(bits[k] >> s) & byte] += 1
        if counts.max() == m:
            continue
        total = 0
        for b in range(256):
            total, counts[b] = total + counts[b], total
        for k in range(m):
            b = (bits[order[k]] >> s) & byte
            other[counts[b]] = order[k]
            counts[b] += 1
        order, other = other, order
    return order


@njit(**JIT)
def _lexicographic(R, high, powers, n, sigma, cost, keys, where, distinct, work_f, work_i, SR, SC):
    """The assignment of cost ``powers[r] = 2**(shift r)`` on an entry of rank ``r`` (0 at ``>= high``, then 1
    + the number of distinct values in ``(0, high)`` above it, capped at ``K + 1 = len(powers) - 1``), ``inf``
    at zeros: :func:`birkhoff.bvn._lexicographic`, the ranks read off one sort. Returns the number of
    distinct values, left descending in ``distinct``; -1 when every assignment meets an ``inf``. ``keys``
    and ``where`` are scratch."""
    top = powers.size - 1
    flat = cost.reshape(n * n)
    m = 0
    for i in range(n):
        for j in range(n):
            x = R[i, j]
            if x <= 0.0:
                flat[i * n + j] = np.inf
            elif x >= high:
                flat[i * n + j] = 1.0
            else:
                keys[m] = x
                where[m] = i * n + j
                m += 1
    order = _ascending(keys, m)                      # equal values get equal ranks: any order among them
    d, last = 0, np.inf
    for k in range(m - 1, -1, -1):                   # descending
        x = keys[order[k]]
        if x != last:
            distinct[d] = last = x
            d += 1
        flat[where[order[k]]] = powers[min(d, top)]
    if not _assignment(cost, n, sigma, work_f, work_i, SR, SC):
        return -1
    return d


@njit(**JIT)
def _bottleneck(R, ceiling, n, powers, sigma, cand, cost, keys, where, distinct, work_f, work_i, SR, SC):
    """The numpy path's :func:`birkhoff.bvn._bottleneck` into ``sigma``; False when the support of
    ``R`` has no perfect matching."""
    high = np.inf
    for i in range(n):
        m = R[i, 0]
        for j in range(1, n):
            m = max(m, R[i, j])
        high = min(high, m)
    for j in range(n):
        m = R[0, j]
        for i in range(1, n):
            m = max(m, R[i, j])
        high = min(high, m)
    if high >= ceiling:
        high = 0.0
        for i in range(n):
            for j in range(n):
                if R[i, j] <= ceiling:
                    high = max(high, R[i, j])
    if high <= 0.0:
        return False
    if _matching(R, high, n, sigma, work_f, work_i):
        return True
    d = _lexicographic(R, high, powers, n, sigma, cost, keys, where, distinct, work_f, work_i, SR, SC)
    if d < 0:
        return False
    vals = distinct[:d]
    low = np.inf
    for i in range(n):
        low = min(low, R[i, sigma[i]])
    if not low > 0.0:
        return False
    c = 0                                            # vals descending: vals[:c] are those above low
    while c < vals.size and vals[c] > low:
        c += 1
    above = vals[:c][::-1]                                                 # ascending
    lo, hi, step, bounded = -1, above.size - 1, 1, False
    while lo < hi:                                   # gallop up, then bisect: the numpy path's probes
        probe = min(lo + step, hi)
        if _matching(R, above[probe], n, cand, work_f, work_i):
            lo = probe
            for i in range(n):
                sigma[i] = cand[i]
        else:
            hi, bounded = probe - 1, True
        step = max(1, (hi - lo + 1) // 2) if bounded else 2 * step
    return True


@njit(**JIT)
def decompose(M, noise, limit, shift):
    """Greedy bottleneck decomposition of ``M`` (float64, entries ``<= noise`` already 0): ``(weights,
    perms)`` with at most ``limit`` terms; ``shift = ceil(log2(n + 1))``."""
    n = M.shape[0]
    R = M.copy()
    weights = np.empty(limit)
    perms = np.empty((limit, n), dtype=np.int64)
    sigma = np.empty(n, dtype=np.int64)
    cand = np.empty(n, dtype=np.int64)
    cost = np.empty((n, n))
    keys, distinct = np.empty(n * n), np.empty(n * n)
    where = np.empty(n * n, dtype=np.int64)
    powers = np.empty(1000 // shift)                 # 2**(shift r), r = 0 .. K + 1 (K = 1000 // shift - 2)
    for r in range(powers.size):
        powers[r] = np.ldexp(1.0, shift * r)
    work_f = np.empty(3 * n)
    work_i = np.empty(3 * n, dtype=np.int64)
    SR = np.empty(n, dtype=np.bool_)
    SC = np.empty(n, dtype=np.bool_)
    ceiling = np.inf
    k = 0
    while k < limit:
        if not _bottleneck(R, ceiling, n, powers, sigma, cand, cost, keys, where, distinct, work_f, work_i, SR, SC):
            break
        w = np.inf
        for i in range(n):
            w = min(w, R[i, sigma[i]])
        for i in range(n):
            j = sigma[i]
            left = R[i, j] - w
            R[i, j] = 0.0 if left <= noise else left
            perms[k, i] = j
        weights[k] = w
        ceiling = w
        k += 1
    return weights[:k].copy(), perms[:k].copy()


def compile_all() -> str | None:
    """Compile (or load from numba's cache) the family on a tiny input; numba's cache folder."""
    decompose(np.array([[0.25, 0.75], [0.75, 0.25]]), 0.0, 2, 2)
    return getattr(getattr(decompose, "_cache", None), "_cache_path", None)
