"""Group-stratified train/val/test split and train-only standardisation.

Fairness constraints are estimated per group, so every split must hold each group in the
configured proportion, including small groups. Within each group the split sizes are fixed
by largest-remainder rounding (each within one row of the exact fraction). The group's rows
are shuffled with the split seed, ordered by label, and dealt to the splits in an evenly
interleaved pattern, so the label mix of every split also follows the group's.

Standardisation uses the training split's mean and standard deviation only (like
scikit-learn's ``StandardScaler``: population std, constant columns left unscaled), so no
information from validation or test rows leaks into the features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairbench.errors import DataError

SPLIT_NAMES = ("train", "val", "test")


def split_sizes(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Largest-remainder rounding of ``n * fractions``: sums to ``n``, each within 1."""
    exact = n * np.asarray(fractions, dtype=np.float64)
    sizes = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: n - int(sizes.sum())]] += 1
    return sizes


def interleaved_assignment(sizes: np.ndarray) -> np.ndarray:
    """A sequence of split ids with ``sizes[s]`` copies of ``s``, evenly spread.

    The ``j``-th slot of split ``s`` is placed at its ideal position ``(j + 0.5) / sizes[s]``,
    so any prefix of the sequence holds each split in roughly its share.
    """
    ids = np.repeat(np.arange(len(sizes)), sizes)
    positions = np.concatenate([(np.arange(k) + 0.5) / k for k in sizes if k > 0])
    return ids[np.argsort(positions, kind="stable")]


def stratified_split(group: np.ndarray, y: np.ndarray, fractions: Sequence[float], seed: int,
                     group_names: Sequence[str], allow_empty: bool = False) -> list[np.ndarray]:
    """Row indices of train, val and test (each sorted), stratified by group and label.

    Raises DataError naming the group and split when a group gets no row in some split, unless
    ``allow_empty`` (a size rule, ``dataset.min_group_rows``, then drops or merges such groups).
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for g, name in enumerate(group_names):
        rows = np.flatnonzero(group == g)
        rows = rows[rng.permutation(rows.size)]
        rows = rows[np.argsort(y[rows], kind="stable")]
        sizes = split_sizes(rows.size, fractions)
        for s, size in enumerate(sizes):
            if size == 0 and not allow_empty:
                raise DataError(
                    f"group {name!r} has no row in the {SPLIT_NAMES[s]} split ({rows.size} rows "
                    f"in all); merge small groups or change dataset.split")
        assignment = interleaved_assignment(sizes)
        for s in range(len(sizes)):
            parts[s].append(rows[assignment == s])
    return [np.sort(np.concatenate(p)) for p in parts]


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale all arrays with the train columns' mean and std; returns float32 arrays."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]
