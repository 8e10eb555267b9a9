"""Distances between two groups' predicted-probability distributions.

Two variants, both 0 for identical distributions:

``wd``: 1-Wasserstein distance on the raw scores
    The earth mover's distance between two groups' empirical score distributions,
    ``W1 = integral |F_g(x) - F_h(x)| dx``: the quantity
    ``scipy.stats.wasserstein_distance(scores_g, scores_h)`` computes, by the same CDF formula.
    Here all scores are sorted once (:func:`sorted_group_cdfs`) and every group's CDF is
    evaluated on that common grid, so G groups cost one sort instead of one per pair. In
    [0, 1] for scores in [0, 1]. This is what the benchmark's later code reported.

``wd2_binned``: squared 2-Wasserstein distance between histograms (the paper code's variant)
    Each group's scores go into ``bins`` equal-width bins on [0, 1] (bin index
    ``min(floor(s * bins), bins - 1)``, so bin ``i`` holds ``[i / bins, (i + 1) / bins)`` and
    the last bin also holds 1.0); each histogram is normalised to a probability vector placed
    at the bin centres ``(i + 0.5) / bins``. The value is the *squared* 2-Wasserstein distance
    between these two discrete distributions, computed exactly in 1-D through the quantile
    functions: ``W2^2 = integral_0^1 (Q_p(t) - Q_q(t))^2 dt`` with ``Q(t) = min{x : F(x) >= t}``,
    a step function, so the integral is a finite sum over the union of both CDFs' breakpoints.
    In ``[0, ((bins - 1) / bins)^2]``; point masses in bins ``i`` and ``j`` give ``((i - j) / bins)^2``.
"""

from __future__ import annotations

import numpy as np


def sorted_group_cdfs(
    sorted_scores: np.ndarray, sorted_group: np.ndarray, groups: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDFs of ``groups`` (each non-empty) on the grid of all scores.

    Returns ``cdfs`` of shape ``(len(groups), n - 1)``, ``cdfs[k, i]`` = share of group
    ``groups[k]``'s scores that are <= ``sorted_scores[i]`` (exact at the last of tied values,
    the only place it matters), and ``deltas = diff(sorted_scores)``, the widths over which
    those CDF values hold.
    """
    counts = np.cumsum(sorted_group[None, :] == np.asarray(groups)[:, None], axis=1)
    return counts[:, :-1] / counts[:, -1:], np.diff(sorted_scores)


def w1_from_cdfs(cdf_g: np.ndarray, cdf_h: np.ndarray, deltas: np.ndarray) -> float:
    """``integral |F_g - F_h|`` for step CDFs on a common grid (see :func:`sorted_group_cdfs`)."""
    return float(np.abs(cdf_g - cdf_h) @ deltas)


def group_histograms(scores: np.ndarray, group: np.ndarray, n_groups: int, bins: int) -> np.ndarray:
    """Counts of scores per (group, bin): int64 array ``(n_groups, bins)``, bins as in the module docstring."""
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    return np.bincount(group * bins + index, minlength=n_groups * bins).reshape(n_groups, bins)


def binned_w2_squared(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Squared W2 between two non-empty histograms over the same equal-width bins on [0, 1]."""
    bins = p_counts.shape[0]
    centres = (np.arange(bins) + 0.5) / bins
    cdf_p, cdf_q = normalised_cdf(p_counts), normalised_cdf(q_counts)
    breaks = np.union1d(np.union1d(cdf_p, cdf_q), [0.0])
    mids = 0.5 * (breaks[:-1] + breaks[1:])
    q_p = centres[np.searchsorted(cdf_p, mids)]
    q_q = centres[np.searchsorted(cdf_q, mids)]
    return float(np.sum(np.diff(breaks) * (q_p - q_q) ** 2))


def normalised_cdf(counts: np.ndarray) -> np.ndarray:
    """Cumulative distribution of a histogram, ending at exactly 1.0."""
    cdf = np.cumsum(counts, dtype=np.float64) / counts.sum()
    cdf[-1] = 1.0
    return cdf
