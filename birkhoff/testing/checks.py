"""Float diagnostics of a result, for the tests and the claims (not certificates: see ``birkhoff.certify``)."""

from __future__ import annotations

import numpy as np

__all__ = ["kkt_violation"]


def kkt_violation(A: np.ndarray, p) -> float:
    """Max violation of primal feasibility, stationarity and complementary slackness."""
    B = A - p.u[:, None] - p.v[None, :]
    return float(max(-p.X.min(), np.abs(p.X.sum(0) - 1).max(), np.abs(p.X.sum(1) - 1).max(),
                     np.abs(p.X - np.maximum(B, 0)).max(),
                     np.max(np.where(p.X > 0, np.abs(B - p.X), np.maximum(B, 0)))))
