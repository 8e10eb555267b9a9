"""The arrays handed to the rest of fairbench: :class:`Split` and :class:`PreparedData`.

These are the only data types later stages see, so they carry no pandas objects and no
file handles: plain numpy arrays with fixed dtypes (float32 features and labels, int64
group indices) and the names needed to label results. Shapes and dtypes are checked on
construction so that a mistake surfaces where the arrays are made, not deep in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split: standardised features ``X`` (n, d), labels ``y`` in {0, 1}, group ids."""

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray

    def __post_init__(self) -> None:
        n = self.y.shape[0] if self.y.ndim == 1 else -1
        if self.X.dtype != np.float32 or self.X.ndim != 2 or self.X.shape[0] != n:
            raise ValueError(f"Split.X must be float32 (n, d) with n == len(y); got "
                             f"{self.X.dtype} {self.X.shape}, y {self.y.shape}")
        if self.y.dtype != np.float32 or self.group.dtype != np.int64 or self.group.shape != (n,):
            raise ValueError(f"Split.y must be float32 (n,) and Split.group int64 (n,); got "
                             f"{self.y.dtype} {self.y.shape}, {self.group.dtype} {self.group.shape}")

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class PreparedData:
    """Train/val/test splits plus the names and provenance of features and groups."""

    train: Split
    val: Split
    test: Split
    feature_names: list[str]
    group_names: list[str]
    synthetic: bool
    source: str
    # rows per state (ACS), per group in each split, and the groups the size rule dropped:
    # {"per_state": {"OK": n}, "per_group": {name: {"train": n, ...}}, "dropped_groups": {}}
    rows: dict[str, Any] = field(default_factory=dict)
    # the training columns' mean and standard deviation (float64) the features were scaled
    # by: other rows (another state's, eval.states) are scaled the same way
    scale: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def splits(self) -> dict[str, Split]:
        """The three splits by name, in the order train, val, test."""
        return {"train": self.train, "val": self.val, "test": self.test}

    def group_proportions(self) -> np.ndarray:
        """Share of each group in the training split (float64, sums to 1)."""
        counts = np.bincount(self.train.group, minlength=self.n_groups)
        return counts / counts.sum()
