"""Distances between two groups' predicted-probability distributions.

Three variants, each 0 for identical distributions:

``wd``: 1-Wasserstein distance on the raw scores
    The earth mover's distance between two groups' empirical score distributions,
    ``W1 = integral |F_g(x) - F_h(x)| dx``: the quantity
    ``scipy.stats.wasserstein_distance(scores_g, scores_h)`` computes, by the same CDF formula.
    Here all scores are sorted once (:func:`sorted_group_cdfs`) and every group's CDF is
    evaluated on that common grid, so G groups cost one sort instead of one per pair. In
    [0, 1] for scores in [0, 1]. This is what the benchmark's later code reported.

``wd2_binned``: the paper code's binned squared 2-Wasserstein distance
    For an ordered pair of groups (``first``, ``second``), exactly as the paper's evaluation
    code defines it:

    1. ``bins`` equal-width bins over the *first* group's own score range: edges
       ``e_k = lo + k (hi - lo) / bins``, ``k = 0..bins``, with ``lo, hi`` the first group's
       smallest and largest score (``lo - 0.5, hi + 0.5`` when they are equal);
       ``numpy.histogram``'s convention: bin ``k`` is ``[e_k, e_{k+1})``, the last bin also
       holds ``e_bins``.
    2. Both groups' scores are counted in these bins; scores of the second group outside
       ``[e_0, e_bins]`` are not counted. Each histogram is divided by its own total.
    3. Both probability vectors are placed at the bins' *right* edges ``e_1..e_bins``, and
       the value is the squared 2-Wasserstein distance between these two discrete
       distributions (optimal-transport cost with cost ``|x - y|^2``, not its square root),
       computed exactly in 1-D through the quantile functions:
       ``W2^2 = integral_0^1 (Q_p(t) - Q_q(t))^2 dt`` with ``Q(t) = min{x : F(x) >= t}``, a
       step function, so the integral is a finite sum over the union of both CDFs' breakpoints.

    It is not symmetric: the first group fixes the bins. In the paper the first group is
    group 0 (white); over G groups the pair ``g < h`` takes ``g`` first. When no score of the
    second group lies in the first group's range the paper's code divides 0 by 0; here that
    pair is *undefined* (:func:`paper_binned_w2_squared` returns None). In [0, 1] otherwise.

``wd2_fixed_bins``: squared 2-Wasserstein distance between fixed-bin histograms (symmetric)
    Each group's scores go into ``bins`` equal-width bins on [0, 1] (bin index
    ``min(floor(s * bins), bins - 1)``, so bin ``i`` holds ``[i / bins, (i + 1) / bins)`` and
    the last bin also holds 1.0); each histogram is normalised to a probability vector placed
    at the bin centres ``(i + 0.5) / bins``; the value is the squared 2-Wasserstein distance
    between them, computed as above. The same bins for every group make it symmetric and
    always defined. In ``[0, ((bins - 1) / bins)^2]``; point masses in bins ``i`` and ``j``
    give ``((i - j) / bins)^2``. Not the paper's definition: on two-group runs it differs
    from ``wd2_binned`` by tens of percent.
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


def paper_binned_w2_squared(first: np.ndarray, second: np.ndarray, bins: int) -> float | None:
    """``wd2_binned`` of the ordered pair (module docstring); None when undefined.

    ``first`` must be non-empty.
    """
    edges = np.histogram_bin_edges(first, bins=bins)
    p_counts = np.histogram(first, bins=edges)[0]
    q_counts = np.histogram(second, bins=edges)[0]
    if q_counts.sum() == 0:
        return None
    return discrete_w2_squared(edges[1:], p_counts, q_counts)


def group_histograms(scores: np.ndarray, group: np.ndarray, n_groups: int, bins: int) -> np.ndarray:
    """Counts of scores per (group, bin) on [0, 1] for ``wd2_fixed_bins``: int64 array
    ``(n_groups, bins)``, bins as in the module docstring."""
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    return np.bincount(group * bins + index, minlength=n_groups * bins).reshape(n_groups, bins)


def binned_w2_squared(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """``wd2_fixed_bins``: squared W2 between two non-empty histograms over the same
    equal-width bins on [0, 1], masses at the bin centres."""
    bins = p_counts.shape[0]
    return discrete_w2_squared((np.arange(bins) + 0.5) / bins, p_counts, q_counts)


def discrete_w2_squared(support: np.ndarray, p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Squared W2 between two non-empty histograms on the same increasing ``support``."""
    cdf_p, cdf_q = normalised_cdf(p_counts), normalised_cdf(q_counts)
    breaks = np.union1d(np.union1d(cdf_p, cdf_q), [0.0])
    mids = 0.5 * (breaks[:-1] + breaks[1:])
    q_p = support[np.searchsorted(cdf_p, mids)]
    q_q = support[np.searchsorted(cdf_q, mids)]
    return float(np.sum(np.diff(breaks) * (q_p - q_q) ** 2))


def normalised_cdf(counts: np.ndarray) -> np.ndarray:
    """Cumulative distribution of a histogram, ending at exactly 1.0."""
    cdf = np.cumsum(counts, dtype=np.float64) / counts.sum()
    cdf[-1] = 1.0
    return cdf
