"""Aggregating a per-group quantity (or a between-group distance) over pairs of groups.

For ``G`` groups and a symmetric distance ``d`` between two groups:

* ``aggregate="max"``: the largest ``d(g, h)`` over pairs ``g < h``. For a scalar rate with
  ``d = |r_g - r_h|`` this is ``max_g r_g - min_g r_g``.
* ``aggregate="sum"``: ``sum_{g < h} d(g, h)``. For rates this can exceed 1 when ``G > 2``
  (at most ``floor(G^2 / 4)``); with two groups both equal ``d(0, 1)``.

Only *defined* items take part (the caller drops empty groups, single-class groups, NaN
rates); with fewer than two of them there is no pair and the result is 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def over_pairs(items: Sequence[T], distance: Callable[[T, T], float], aggregate: str) -> float:
    """``distance`` over all pairs of ``items``, reduced by ``aggregate``; 0.0 for < 2 items.

    The sum uses ``math.fsum`` so the result does not depend on the order of the items.
    """
    return reduce_pairs([float(distance(a, b)) for a, b in itertools.combinations(items, 2)], aggregate)


def reduce_pairs(values: Sequence[float], aggregate: str) -> float:
    """The values of the defined pairs reduced by ``aggregate``; 0.0 when there are none."""
    if not values:
        return 0.0
    return max(values) if aggregate == "max" else math.fsum(values)


def gap(rates: np.ndarray, aggregate: str) -> float:
    """Between-group gap of a per-group rate, ignoring undefined (NaN) entries."""
    defined = [float(r) for r in rates if not math.isnan(r)]
    if aggregate == "max":  # max over pairs of |a - b| (rounding is monotone): O(G), not O(G^2)
        return abs(max(defined) - min(defined)) if len(defined) >= 2 else 0.0
    return over_pairs(defined, lambda a, b: abs(a - b), aggregate)
