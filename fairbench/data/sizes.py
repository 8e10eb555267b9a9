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


def counts_per_split(group: np.ndarray, indices: list[np.ndarray], n_groups: int) -> np.ndarray:
    """Rows of each group in each split: int64 ``(n_groups, n_splits)``."""
    return np.stack([np.bincount(group[i], minlength=n_groups) for i in indices], axis=1)


def apply_size_rule(group: np.ndarray, names: list[str], indices: list[np.ndarray],
                    min_rows: int, action: str) -> Sized:
    """Apply the size rule (a no-op for ``min_rows`` 0); raise ConfigError when fewer than
    two groups remain."""
    if min_rows <= 0:
        return Sized(group, list(names), indices, {})
    counts = counts_per_split(group, indices, len(names))
    small = counts.min(axis=1) < min_rows
    dropped: dict[str, int] = {}
    target = np.arange(len(names))  # old id -> new position (before renumbering), -1 dropped
    new_names = list(names)
    if action == "merge" and small.sum() >= 2:
        merged_counts = counts[small].sum(axis=0)
        label = "merged: " + " | ".join(n for n, s in zip(names, small) if s)
        if merged_counts.min() >= min_rows:
            target = np.where(small, len(names), target)
            new_names.append(label)
            small = np.zeros(len(names), dtype=bool)
        else:
            dropped[label] = int(merged_counts.sum())
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
    return Sized(new_group, [new_names[k] for k in kept],
                 [i[new_group[i] >= 0] for i in indices], dropped)


def check_enough_groups(kept: int, min_rows: int, before: int) -> None:
    if kept < 2:
        raise ConfigError("dataset.min_group_rows", min_rows,
                          f"leaves {kept} of {before} groups with that many rows in every split "
                          f"({', '.join(SPLIT_NAMES)}); fairness needs at least 2 groups: lower it "
                          f"or define larger groups (dataset.groups)")
