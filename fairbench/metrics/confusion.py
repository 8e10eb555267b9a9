"""Per-group confusion matrices and the rates read off them.

``group_confusion`` returns int64 counts ``C[g, t, p]``: rows of group ``g`` with true label
``t`` and prediction ``p`` (so ``C[g, 1, 1]`` = TP, ``C[g, 0, 1]`` = FP, ``C[g, 1, 0]`` = FN,
``C[g, 0, 0]`` = TN). It is one ``np.bincount`` over ``4 g + 2 t + p``; no Python loop over rows.

``group_rates`` derives every rate from these counts, never one rate from others (PPV is
TP / (TP + FP), not a function of TPR and FPR, which would need each group's prevalence):

=================  =======================  ==========================================
key                formula                  undefined (NaN) when the group has
=================  =======================  ==========================================
``positive_rate``  (TP + FP) / size         no rows
``tpr``            TP / (TP + FN)           no true positives (label 1)
``fpr``            FP / (FP + TN)           no true negatives (label 0)
``ppv``            TP / (TP + FP)           no predicted positives
``npv``            TN / (TN + FN)           no predicted negatives
``error``          (FP + FN) / size         no rows
``size``           TP + FP + FN + TN        (int64, always defined)
``positives``      TP + FN                  (int64, always defined)
=================  =======================  ==========================================

NaN marks an undefined rate in these per-group arrays only; :func:`fairness_metrics`
turns them into NaN-free results (see :mod:`fairbench.metrics.fairness`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fairbench.metrics._validation import as_binary, as_groups, as_n_groups, check_same_length


def group_confusion(y_true: Any, y_pred: Any, group: Any, n_groups: int) -> np.ndarray:
    """Confusion counts per group: int64 array of shape ``(n_groups, 2, 2)`` indexed ``[g, true, pred]``.

    Raises ``ValueError`` for labels or predictions outside {0, 1}, group ids outside
    ``0..n_groups-1`` or arrays of different lengths.
    """
    n_groups = as_n_groups(n_groups)
    y_true, y_pred = as_binary(y_true, "y_true"), as_binary(y_pred, "y_pred")
    group = as_groups(group, n_groups)
    check_same_length(y_true=y_true, y_pred=y_pred, group=group)
    return confusion_counts(y_true, y_pred, group, n_groups)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`group_confusion` on already validated int64 arrays."""
    cells = 4 * group + 2 * y_true + y_pred
    return np.bincount(cells, minlength=4 * n_groups).reshape(n_groups, 2, 2).astype(np.int64, copy=False)


def group_rates(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates from confusion counts (see the module docstring); NaN where undefined."""
    c = np.asarray(confusion)
    if c.ndim != 3 or c.shape[1:] != (2, 2):
        raise ValueError(f"confusion must have shape (n_groups, 2, 2), got {c.shape}")
    tn, fp, fn, tp = c[:, 0, 0], c[:, 0, 1], c[:, 1, 0], c[:, 1, 1]
    size = c.sum(axis=(1, 2)).astype(np.int64)
    return {
        "positive_rate": ratio(tp + fp, size),
        "tpr": ratio(tp, tp + fn),
        "fpr": ratio(fp, fp + tn),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "error": ratio(fp + fn, size),
        "size": size,
        "positives": (tp + fn).astype(np.int64),
    }


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float64, NaN where the denominator is 0."""
    out = np.full(np.shape(denominator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
