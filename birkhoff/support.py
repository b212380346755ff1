"""Total support: the condition under which Sinkhorn-Knopp converges, decided by a bipartite matching.

A nonnegative square ``A`` has total support iff every positive entry lies on a positive diagonal
(a permutation inside the zero pattern); ``sinkhorn(A)`` converges iff it does (Sinkhorn-Knopp 1967).
scipy's Hopcroft-Karp matching finds a positive diagonal; the entries on none are those that join
two different strongly connected components of the matching's alternating digraph.
"""

from __future__ import annotations

import numpy as np

from .errors import NoTotalSupportError
from .validate import as_matrix

__all__ = ["has_total_support", "check_total_support", "support_witness"]


def support_witness(pattern: np.ndarray) -> tuple[str, tuple[int, int] | None] | None:
    """``None`` if the boolean ``pattern`` has total support, else (reason, witness entry).

    A maximum matching of the bipartite support graph gives a positive diagonal when
    it is perfect. An unmatched edge ``(i, j)``, ``j`` matched to row ``k``, lies on a
    positive diagonal iff it closes an alternating cycle, i.e. iff rows ``i`` and ``k``
    are strongly connected in the digraph ``i -> k`` for ``pattern[i, match[k]]``.
    """
    from scipy.sparse import csr_matrix  # where used: scipy.sparse costs 0.1-0.2 s to import
    from scipy.sparse.csgraph import connected_components, maximum_bipartite_matching

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

    Examples
    --------
    >>> has_total_support([[1, 1], [0, 1]])      # the 1 at (0, 1) lies on no positive diagonal
    False
    >>> has_total_support([[1, 1], [1, 1]])
    True
    """
    M = as_matrix(A, nonnegative=True, name="A")
    return support_witness(M != 0) is None


def check_total_support(M: np.ndarray) -> None:
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
        found = support_witness(flat.reshape(n, n))
        if found is not None:
            reason, witness = found
            where = np.unravel_index(todo[pos], M.shape[:-2]) if M.ndim > 2 else ()
            where = tuple(int(w) for w in where)
            prefix = f"matrix {where}: " if where else ""
            raise NoTotalSupportError(
                f"{prefix}Sinkhorn cannot converge: zero pattern has no total support; {reason}",
                witness=witness, batch_index=where)
