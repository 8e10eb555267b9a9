"""The size rule ``dataset.min_group_rows``: groups too small in some split are dropped or
merged.

Intersectional groups multiply quickly (race x sex x age bands x states), and a group with
a handful of rows in the validation or test split gives per-group rates that are mostly
noise. After the group-stratified split, a group with fewer than ``min_group_rows`` rows in
*any* split is small. ``drop`` removes its rows from every split; ``merge`` pools all small
groups into one group named after its members (``"merged: a | b"``), which is dropped in
turn if it is still small in some split (a single small group has nothing to merge with and is
dropped). Groups keep their order; ids are renumbered. What
was dropped is reported (group label -> rows), and a rule that leaves fewer than two groups
is refused: fairness constraints compare groups.

A group lacking a label class in some split is treated as small too (when the rule is on,
``min_rows > 0``): every run records per group the TPR, FPR and AUC (separation, ``auc_gap``),
a conditional-rate constraint needs the group's rows of each label, and a class-balanced or
per-label batch cannot be drawn from a class that is absent; such data is otherwise refused
(:mod:`fairbench.data.labels`). These groups are dropped (or join the merge pool) with the
small ones and are also listed with the missing class and split (``one_class``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairbench.errors import ConfigError
from fairbench.data.split import SPLIT_NAMES


@dataclass(frozen=True)
class Sized:
    """Group id of every row (-1: dropped), the kept groups' names, each split's row indices
    (sorted), and the dropped groups with their rows over all splits."""

    group: np.ndarray
    names: list[str]
    indices: list[np.ndarray]
    dropped: dict[str, int]
    one_class: dict[str, str]


def counts_per_split(group: np.ndarray, indices: list[np.ndarray], n_groups: int) -> np.ndarray:
    """Rows of each group in each split: int64 ``(n_groups, n_splits)``."""
    return np.stack([np.bincount(group[i], minlength=n_groups) for i in indices], axis=1)


def class_counts_per_split(group: np.ndarray, y: np.ndarray, indices: list[np.ndarray],
                           n_groups: int) -> np.ndarray:
    """Rows of each group with each label in each split: int64 ``(n_groups, n_splits, 2)``."""
    flat = group * 2 + (y > 0.5).astype(np.int64)
    return np.stack([np.bincount(flat[i], minlength=2 * n_groups).reshape(n_groups, 2)
                     for i in indices], axis=1)


def missing_classes(class_counts: np.ndarray) -> list[str]:
    """Per group, ``""`` or which label class it lacks in which split (``"no positive label
    in val"``), from :func:`class_counts_per_split`."""
    out = []
    for per_split in class_counts:
        gaps = [f"no {('negative', 'positive')[label]} label in {SPLIT_NAMES[s]}"
                for s, row in enumerate(per_split) for label in (1, 0) if row[label] == 0]
        out.append("; ".join(gaps))
    return out


def apply_size_rule(group: np.ndarray, names: list[str], indices: list[np.ndarray],
                    min_rows: int, action: str, y: np.ndarray) -> Sized:
    """Apply the size rule (a no-op for ``min_rows`` 0) to the groups ``group`` with labels
    ``y``; raise ConfigError when fewer than two groups remain."""
    if min_rows <= 0:
        return Sized(group, list(names), indices, {}, {})
    counts = counts_per_split(group, indices, len(names))
    classes = class_counts_per_split(group, y, indices, len(names))
    lacking = missing_classes(classes)
    one_class = {n: why for n, why in zip(names, lacking) if why}
    small = (counts.min(axis=1) < min_rows) | np.array([bool(w) for w in lacking])
    dropped: dict[str, int] = {}
    target = np.arange(len(names))  # old id -> new position (before renumbering), -1 dropped
    new_names = list(names)
    if action == "merge" and small.sum() >= 2:
        merged_counts = counts[small].sum(axis=0)
        label = "merged: " + " | ".join(n for n, s in zip(names, small) if s)
        merged_lacks = missing_classes(classes[small].sum(axis=0)[None])[0]
        if merged_counts.min() >= min_rows and not merged_lacks:
            target = np.where(small, len(names), target)
            new_names.append(label)
            small = np.zeros(len(names), dtype=bool)
        else:
            dropped[label] = int(merged_counts.sum())
            if merged_lacks:
                one_class[label] = merged_lacks
            target = np.where(small, -1, target)
    else:
        dropped.update({n: int(c.sum()) for n, c, s in zip(names, counts, small) if s})
        target = np.where(small, -1, target)
    kept = sorted(set(target[target >= 0].tolist()))
    check_enough_groups(len(kept), min_rows, len(names))
    renumber = np.full(len(new_names), -1, dtype=np.int64)
    renumber[kept] = np.arange(len(kept))
    mapped = np.where(target >= 0, renumber[np.maximum(target, 0)], -1)
    new_group = mapped[group]
    one_class = {n: why for n, why in one_class.items() if n in dropped}
    return Sized(new_group, [new_names[k] for k in kept],
                 [i[new_group[i] >= 0] for i in indices], dropped, one_class)


def check_enough_groups(kept: int, min_rows: int, before: int) -> None:
    if kept < 2:
        raise ConfigError("dataset.min_group_rows", min_rows,
                          f"leaves {kept} of {before} groups with that many rows (and both label "
                          f"classes) in every split "
                          f"({', '.join(SPLIT_NAMES)}); fairness needs at least 2 groups: lower it "
                          f"or define larger groups (dataset.groups)")
