"""Group statistics a fairness constraint compares: what one row contributes, and over which rows.

A statistic of group g is a mean, over a set of rows (a **cell**), of a per-row quantity q:

============================  ====================  =====================================  =========
``problem.statistic``         cells (rows of g ...)  surrogate q (training)                 true q
============================  ====================  =====================================  =========
``loss``                      all                    BCE ``softplus(z) - y z``              0-1 error
``positive_rate``             all                    ``p = sigmoid(z / T)``                 ``1[z >= 0]``
``true_positive_rate``        with ``y = 1``         ``p``                                  ``1[z >= 0]``
``false_positive_rate``       with ``y = 0``         ``p``                                  ``1[z >= 0]``
``accuracy``                  all                    ``y p + (1 - y)(1 - p)``               ``1[pred = y]``
``equalized_odds``            ``y = 1``, ``y = 0``   ``p`` (TPR cells, then FPR cells)      ``1[z >= 0]``
============================  ====================  =====================================  =========

The soft rates are fairret's definitions (Buyl et al. 2024: ``PositiveRate`` is
``sum_i s_ig p_i / sum_i s_ig``; the conditional rates restrict the sums to one label); ``T``
(``problem.temperature``, 1 by default) sharpens the sigmoid. Cells are numbered block by block:
cell ``b * G + g`` is group g within label block b (one block, all rows, for the
unconditional statistics). A constraint is linear in the cell statistics, so an oracle changes
in one place per path: the per-row quantity (:func:`row_values_np`, :func:`row_values_torch`) and
its derivative by the logit (:func:`row_slopes_np`); the ``loss`` statistic keeps the exact BCE
code of the objective.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

#: statistic -> the label of each block of cells (``None``: one block of all rows)
CELL_LABELS: dict[str, tuple | None] = {
    "loss": None,
    "positive_rate": None,
    "true_positive_rate": (1,),
    "false_positive_rate": (0,),
    "accuracy": None,
    "equalized_odds": (1, 0),
}
STATISTICS = tuple(CELL_LABELS)
#: short names of the statistics in constraint names
SYMBOLS = {"loss": "L", "positive_rate": "PR", "true_positive_rate": "TPR", "false_positive_rate": "FPR",
           "accuracy": "ACC", "equalized_odds": ("TPR", "FPR")}
#: per-row kernel codes of the compiled path: 0 BCE, 1 soft rate p, 2 soft accuracy
ROW_CODES = {"loss": 0, "positive_rate": 1, "true_positive_rate": 1, "false_positive_rate": 1,
             "accuracy": 2, "equalized_odds": 1}


def n_blocks(statistic: str) -> int:
    labels = CELL_LABELS[statistic]
    return 1 if labels is None else len(labels)


def cell_rows(group: np.ndarray, y: np.ndarray, n_groups: int, statistic: str) -> list[np.ndarray]:
    """Row indices of every cell, block by block (cell ``b * G + g``)."""
    labels = CELL_LABELS[statistic]
    if labels is None:
        return [np.flatnonzero(group == g) for g in range(n_groups)]
    positive = np.asarray(y) > 0.5
    return [np.flatnonzero((group == g) & (positive if label == 1 else ~positive))
            for label in labels for g in range(n_groups)]


def label_counts(group: np.ndarray, y: np.ndarray, n_groups: int) -> np.ndarray:
    """(G, 2) counts of rows per group with label 0 and label 1."""
    positive = (np.asarray(y) > 0.5).astype(np.int64)
    return np.bincount(np.asarray(group) * 2 + positive, minlength=2 * n_groups).reshape(n_groups, 2)


def cell_statistics(statistic: str, positives: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cell statistics (..., cells) of a rate statistic from per-(group, label) sums.

    ``positives`` (..., G, 2): the sums of the per-row prediction (soft ``p`` or hard ``1[z>=0]``)
    over the rows of group g with label y; ``counts`` (G, 2) those rows' numbers. An empty cell
    divides by 1. ``loss`` is not a rate: its true statistic is the 0-1 error, ``1 - accuracy``.
    """
    pos = np.asarray(positives, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    total = np.maximum(n.sum(-1), 1.0)
    correct = pos[..., 1] + n[:, 0] - pos[..., 0]
    if statistic in ("loss", "accuracy"):
        acc = correct / total
        return 1.0 - acc if statistic == "loss" else acc
    if statistic == "positive_rate":
        return pos.sum(-1) / total
    labels = CELL_LABELS[statistic]
    return np.concatenate([pos[..., label] / np.maximum(n[:, label], 1.0) for label in labels], axis=-1)


# -- the per-row quantity and its derivative by the logit -----------------------------------
def row_values_torch(statistic: str, z: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-row surrogate quantity of the statistic (torch, differentiable)."""
    if statistic == "loss":
        return F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p = torch.sigmoid(z / temperature) if temperature != 1.0 else torch.sigmoid(z)
    if statistic == "accuracy":
        return y * p + (1.0 - y) * (1.0 - p)
    return p


def row_values_np(statistic: str, z: np.ndarray, y: np.ndarray, inv_t: np.float32) -> np.ndarray:
    """Per-row surrogate quantity (float32 numpy); ``inv_t = 1 / T``."""
    if statistic == "loss":
        losses = np.logaddexp(0.0, z)
        losses -= y * z
        return losses
    p = expit(z * inv_t) if inv_t != 1.0 else expit(z)
    if statistic == "accuracy":
        return y * p + (1.0 - y) * (1.0 - p)
    return p


def row_slopes_np(statistic: str, z: np.ndarray, y: np.ndarray, inv_t: np.float32) -> np.ndarray:
    """``dq/dz`` per row (float32): ``sigmoid(z) - y`` for the BCE, ``p (1 - p) / T`` for a soft
    rate, ``(2y - 1) p (1 - p) / T`` for the soft accuracy."""
    if statistic == "loss":
        delta = expit(z)
        delta -= y
        return delta
    p = expit(z * inv_t) if inv_t != 1.0 else expit(z)
    slope = p * (1.0 - p)
    if inv_t != 1.0:
        slope *= inv_t
    if statistic == "accuracy":
        slope *= 2.0 * y - 1.0
    return slope
