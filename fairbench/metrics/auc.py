"""ROC AUC from ranks (the Mann-Whitney statistic), in numpy.

``AUC = (R_+ - n_+ (n_+ + 1) / 2) / (n_+ n_-)`` where ``R_+`` is the sum of the ranks of the
positive rows among all scores, tied scores sharing their average rank. This equals the
probability that a random positive scores above a random negative, ties counting one half,
and matches ``sklearn.metrics.roc_auc_score``. It is undefined (NaN here) unless both classes
occur; :func:`fairbench.metrics.fairness_metrics` decides what to report then.

:func:`sorted_auc` takes scores already in ascending order, so that one sort of all scores
serves the pooled AUC and (as sub-sequences) every per-group AUC.
"""

from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of ``scores`` for binary labels ``y``; NaN unless both classes are present."""
    order = np.argsort(scores)
    return sorted_auc(scores[order], y[order])


def sorted_auc(sorted_scores: np.ndarray, y: np.ndarray) -> float:
    """:func:`roc_auc` for ``sorted_scores`` in ascending order and their labels ``y``."""
    positive = y == 1
    n_pos = int(positive.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(sorted_average_ranks(sorted_scores)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def sorted_average_ranks(sorted_x: np.ndarray) -> np.ndarray:
    """1-based ranks of ascending ``sorted_x``; tied values get the mean of the ranks they span."""
    n = sorted_x.shape[0]
    starts = np.flatnonzero(np.concatenate(([True], sorted_x[1:] != sorted_x[:-1])))
    ends = np.append(starts[1:], n)
    return np.repeat((starts + 1 + ends) / 2.0, ends - starts)
