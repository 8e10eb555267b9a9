"""Input checks shared by the metric functions.

Bad inputs here are programming errors (the runner hands over arrays it built itself), so
every check raises :class:`ValueError` with a one-line message, not a ``FairbenchError``.
Each helper returns the array converted to the dtype the metric code computes with.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

AGGREGATES = ("max", "sum")


def as_vector(values: Any, name: str, kinds: str) -> np.ndarray:
    """``values`` as a 1-D array whose dtype kind is one of ``kinds`` (numpy kind codes)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in kinds:
        raise ValueError(f"{name} must have a numeric dtype, got {arr.dtype}")
    return arr


def as_probabilities(values: Any, name: str) -> np.ndarray:
    """A float64 vector with every entry in [0, 1] (NaN rejected)."""
    arr = as_vector(values, name, "biuf").astype(np.float64, copy=False)
    if not ((arr >= 0.0) & (arr <= 1.0)).all():
        bad = arr[~((arr >= 0.0) & (arr <= 1.0))]
        raise ValueError(f"{name} must lie in [0, 1]; found {bad.size} entries outside (e.g. {bad[0]!r})")
    return arr


def as_binary(values: Any, name: str) -> np.ndarray:
    """An int64 vector with every entry 0 or 1 (bool, integer or float input)."""
    arr = as_vector(values, name, "biuf")
    if not ((arr == 0) | (arr == 1)).all():
        bad = arr[~((arr == 0) | (arr == 1))]
        raise ValueError(f"{name} must contain only 0 and 1; found {bad.size} other entries (e.g. {bad[0]!r})")
    return arr.astype(np.int64, copy=False)


def as_n_groups(n_groups: Any) -> int:
    """``n_groups`` as an int >= 1 (bools rejected)."""
    if isinstance(n_groups, (bool, np.bool_)):
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
    try:
        value = operator.index(n_groups)
    except TypeError:
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}") from None
    if value < 1:
        raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
    return value


def as_groups(values: Any, n_groups: int) -> np.ndarray:
    """An int64 vector of group ids, each in ``0..n_groups-1``."""
    arr = as_vector(values, "group", "iu")
    if arr.size and (arr.min() < 0 or arr.max() >= n_groups):
        raise ValueError(
            f"group ids must lie in 0..{n_groups - 1} (n_groups={n_groups}); found {arr.min()}..{arr.max()}"
        )
    return arr.astype(np.int64, copy=False)


def check_same_length(**arrays: np.ndarray) -> None:
    """All arrays have the same length."""
    lengths = {name: arr.shape[0] for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("length mismatch: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))


def as_metric_inputs(scores: Any, y: Any, group: Any, n_groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validated ``(scores float64, y int64, group int64, n_groups)`` with at least one row."""
    n_groups = as_n_groups(n_groups)
    scores, y = as_probabilities(scores, "scores"), as_binary(y, "y")
    group = as_groups(group, n_groups)
    check_same_length(scores=scores, y=y, group=group)
    if scores.shape[0] == 0:
        raise ValueError("metrics need at least one row, got 0")
    return scores, y, group, n_groups


def check_aggregate(aggregate: Any) -> str:
    """``aggregate`` is one of :data:`AGGREGATES`."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate={aggregate!r}: accepted: {', '.join(AGGREGATES)}")
    return aggregate


def check_threshold(threshold: Any) -> float:
    """A real number in [0, 1]."""
    ok = isinstance(threshold, (int, float, np.floating, np.integer)) and not isinstance(threshold, bool)
    if not ok or not 0.0 <= float(threshold) <= 1.0:  # also rejects NaN
        raise ValueError(f"threshold={threshold!r}: must be a number in [0, 1]")
    return float(threshold)


def check_bins(bins: Any) -> int:
    """A histogram bin count: an int >= 1."""
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"wd_bins={bins!r}: must be an integer >= 1")
    return int(bins)
