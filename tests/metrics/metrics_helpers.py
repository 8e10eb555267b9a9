"""Build metric inputs from confusion counts (shared by the metrics tests)."""

from __future__ import annotations

import numpy as np

# Scores used for rows built from counts: predicted positive -> 0.75, negative -> 0.25.
POS_SCORE, NEG_SCORE = 0.75, 0.25


def rows_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, y, group) whose confusion matrix at threshold 0.5 is ``counts[g, true, pred]``."""
    scores, y, group = [], [], []
    for (g, t, p), n in np.ndenumerate(np.asarray(counts)):
        scores += [POS_SCORE if p else NEG_SCORE] * n
        y += [t] * n
        group += [g] * n
    return np.array(scores, dtype=float), np.array(y, dtype=np.int64), np.array(group, dtype=np.int64)


def counts_from_cells(cells: dict[int, tuple[int, int, int, int]], n_groups: int) -> np.ndarray:
    """``{g: (TN, FP, FN, TP)}`` as an int64 ``(n_groups, 2, 2)`` array; missing groups are empty."""
    counts = np.zeros((n_groups, 2, 2), dtype=np.int64)
    for g, cell in cells.items():
        counts[g] = np.reshape(cell, (2, 2))
    return counts
