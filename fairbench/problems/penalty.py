"""Penalty functions for the penalized problem (paper eq. 13): ``f + w * sum_j phi(c_j)``.

With the signed (two one-sided) constraints, a *linear* penalty of a ``+d``/``-d`` pair cancels
in expectation, so only penalties that are zero on the feasible side are offered:

- ``abs``: ``phi(c) = |c + delta|``, the absolute value of the underlying difference
  ``d`` for the ``abs`` constraint form, i.e. a penalty on the gap itself;
- ``positive``: ``phi(c) = max(c, 0)`` (exact penalty: zero when feasible);
- ``squared``: ``phi(c) = max(c, 0)^2`` (smooth quadratic penalty).
"""

from __future__ import annotations

import numpy as np

PENALTIES = ("positive", "squared", "abs")


def penalty_value(name: str, c: np.ndarray, delta: float) -> float:
    """``sum_j phi(c_j)``."""
    if name == "positive":
        return float(np.maximum(c, 0.0).sum())
    if name == "squared":
        return float((np.maximum(c, 0.0) ** 2).sum())
    return float(np.abs(c + delta).sum())


def penalty_slope(name: str, c: np.ndarray, delta: float) -> np.ndarray:
    """``phi'(c_j)`` (a subgradient at kinks: 0 at the kink)."""
    if name == "positive":
        return (c > 0).astype(c.dtype)
    if name == "squared":
        return 2.0 * np.maximum(c, 0.0)
    return np.sign(c + delta)
