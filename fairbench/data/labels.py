"""Both label classes wherever the recorded metrics need them.

Every run records, on each split, the pooled ROC AUC (undefined without both classes) and
per group the TPR, FPR and AUC behind separation (``sp``) and ``auc_gap`` (undefined for a
group without positives or without negatives). An undefined quantity is reported by a
convention (AUC 0.5, the group left out of a gap, 0 when no pair remains), so data lacking a
class would pass for a perfectly fair model: a table whose labels are all one class gives
AUC 0.5 and every gap 0. Such data is refused before anything runs, with the first problem
found: the whole table, then a split, then a group in a split.
"""

from __future__ import annotations

import numpy as np

from fairbench.errors import DataError
from fairbench.data.prepared import PreparedData

CLASS_NAMES = ("negative", "positive")


def check_both_classes(data: PreparedData, where: str) -> None:
    """Raise DataError unless the data, each split and each group in each split hold both
    a positive and a negative label."""
    splits = data.splits()
    labels = np.concatenate([split.y for split in splits.values()])
    if labels.min() == labels.max():
        value = int(labels[0])
        raise DataError(
            f"every label of {where} is {value} ({CLASS_NAMES[value]}, {labels.size} rows): a "
            f"classifier needs both classes (with one, AUC is 0.5 and every gap 0, which would "
            f"pass for a perfectly fair model); check the label column")
    counts = {name: _class_counts(split.y, split.group, data.n_groups) for name, split in splits.items()}
    for name, split in splits.items():
        for label, total in enumerate(counts[name].sum(axis=0)):
            if total == 0:
                raise DataError(
                    f"the {name} split of {where} has no {CLASS_NAMES[label]} label ({len(split)} "
                    f"rows): its AUC needs both classes; change dataset.split (fractions or seed)")
    for name in splits:
        for group, group_name in enumerate(data.group_names):
            for label in (1, 0):
                if counts[name][group, label] == 0:
                    raise DataError(
                        f"group {group_name!r} has no {CLASS_NAMES[label]} label in the {name} "
                        f"split ({counts[name][group].sum()} rows): its TPR, FPR and AUC (separation "
                        f"sp, auc_gap) need both classes; merge small groups (dataset.groups), "
                        f"set dataset.min_group_rows (which drops such groups) or change dataset.split")


def _class_counts(y: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Rows per (group, label): int64 ``(n_groups, 2)``."""
    flat = group * 2 + y.astype(np.int64)
    return np.bincount(flat, minlength=2 * n_groups).reshape(n_groups, 2)
