"""``wd2_binned`` is the paper code's binned distance, checked against a transcription.

The paper's evaluation code, written out: ``np.histogram`` of the first group's scores into
50 bins (its own min-max range), the second group's scores into the same edges, both
normalised, masses at the right edges ``edges[1:]``, and the squared 2-Wasserstein distance
between the two discrete distributions (the optimal-transport cost, not its root). Here the
transport cost is computed by the north-west-corner (monotone) coupling, which is optimal in
1-D for the cost ``|x - y|^2``: a different algorithm from the quantile integral of
:mod:`fairbench.metrics.distances`.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest import approx

from fairbench.metrics import fairness_metrics
from fairbench.metrics.distances import paper_binned_w2_squared


def monotone_cost(support: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """sum |x_i - x_j|^2 * mass moved, moving mass left to right (north-west corner)."""
    p, q = p.astype(float).copy(), q.astype(float).copy()
    i = j = 0
    cost = 0.0
    while i < len(p) and j < len(q):
        moved = min(p[i], q[j])
        cost += moved * (support[i] - support[j]) ** 2
        p[i] -= moved
        q[j] -= moved
        if p[i] <= 1e-15:
            i += 1
        if q[j] <= 1e-15:
            j += 1
    return cost


def paper_formula(first: np.ndarray, second: np.ndarray, bins: int = 50) -> float:
    a0, x0 = np.histogram(first, bins=bins)
    a1, _ = np.histogram(second, bins=x0)
    a0 = a0 / a0.sum()
    a1 = a1 / a1.sum()
    return monotone_cost(x0[1:], a0, a1)


def two_groups(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.concatenate([first, second])
    group = np.repeat([0, 1], [first.size, second.size])
    return scores, np.arange(scores.size) % 2, group


def test_hand_made_example():
    # first group: range [0.25, 1], 2 bins [0.25, 0.625) [0.625, 1] -> masses 1/2, 1/2 at
    # 0.625 and 1 (the right edges); second group: 0.125 lies outside that range and is not
    # counted, 3 of the other 4 fall in the first bin -> 1/4 of the mass moves from 1 to 0.625:
    # 0.25 * 0.375^2 = 0.03515625 (edges chosen exact in binary floating point)
    first = np.array([0.25, 0.375, 0.625, 1.0])
    second = np.array([0.125, 0.3, 0.5, 0.55, 0.9])
    assert paper_formula(first, second, bins=2) == approx(0.03515625)
    m = fairness_metrics(*two_groups(first, second), 2, wd_bins=2)
    assert m["wd2_binned"] == approx(0.03515625, rel=1e-12)
    # the fixed [0, 1] bins at their centres (the other variant) count all five:
    # masses (1/2, 1/2) vs (2/5, 3/5) at 0.25, 0.75 -> 0.1 * 0.5^2
    assert m["wd2_fixed_bins"] == approx(0.025, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_paper_formula_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    first = rng.beta(2, 3, 300) * 0.8 + 0.1           # range inside [0.1, 0.9]
    second = rng.beta(3, 2, 200 + 50 * seed)           # some scores outside the first's range
    m = fairness_metrics(*two_groups(first, second), 2)
    assert m["wd2_binned"] == approx(paper_formula(first, second), rel=1e-9)
    assert m["wd2_binned"] != approx(m["wd2_fixed_bins"], rel=1e-3)


def test_the_first_group_of_each_pair_fixes_the_bins():
    rng = np.random.default_rng(7)
    parts = [rng.random(80) * 0.5, rng.random(60) * 0.6 + 0.2, rng.random(70) * 0.9]
    scores = np.concatenate(parts)
    group = np.repeat([0, 1, 2], [p.size for p in parts])
    y = np.arange(scores.size) % 2
    pairs = [paper_formula(parts[g], parts[h]) for g, h in ((0, 1), (0, 2), (1, 2))]
    assert fairness_metrics(scores, y, group, 3)["wd2_binned"] == approx(max(pairs), rel=1e-9)
    assert fairness_metrics(scores, y, group, 3, aggregate="sum")["wd2_binned"] == approx(sum(pairs), rel=1e-9)
    swapped = paper_formula(parts[1], parts[0])
    assert swapped != approx(pairs[0], rel=1e-3)  # (not symmetric)


def test_a_constant_first_group_takes_numpys_unit_range():
    first = np.full(5, 0.3)                 # edges -0.2 .. 0.8, mass at the right edge 0.32
    second = np.array([0.05, 0.3, 0.79, 0.95])
    expected = paper_formula(first, second)
    assert paper_binned_w2_squared(first, second, 50) == approx(expected, rel=1e-12)
    assert expected > 0


def test_no_score_of_the_second_group_in_the_first_groups_range_is_undefined():
    first, second = np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.9])
    assert paper_binned_w2_squared(first, second, 50) is None
    m = fairness_metrics(*two_groups(first, second), 2)
    assert m["wd2_binned"] == 0.0 and np.isfinite(list(m.values())).all()
    reference = fairness_metrics(*two_groups(first, np.array([0.15, 0.25])), 2)
    assert m["undefined_rates"] == reference["undefined_rates"] + 1
