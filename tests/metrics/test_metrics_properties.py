"""Property-based tests: random confusion counts (empty cells and groups included)."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pytest import approx

from fairbench.metrics import fairness_metrics, group_confusion
from metrics_helpers import rows_from_counts

CORE_RANGES = {"ind": 1, "sp": 2, "sf": 2, "ina": 1, "auc": 1, "auc_gap": 1, "wd": 1, "wd2_binned": 1,
               "wd2_fixed_bins": 1}
# the paper's binned distance takes its bins from the first group of each pair, so it (and the
# count of its undefined pairs in undefined_rates) depends on the order of the groups
ORDER_DEPENDENT = {"wd2_binned", "undefined_rates"}
SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def confusions(draw, max_groups: int = 4) -> np.ndarray:
    """Counts ``(G, 2, 2)`` with at least one row; cells and whole groups may be empty."""
    n_groups = draw(st.integers(1, max_groups))
    counts = draw(arrays(np.int64, (n_groups, 2, 2), elements=st.integers(0, 5)))
    if counts.sum() == 0:
        counts[draw(st.integers(0, n_groups - 1)), draw(st.integers(0, 1)), draw(st.integers(0, 1))] = 1
    return counts


@st.composite
def metric_inputs(draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Rows realising random counts, with scores spread over 21 tied levels on each side of 0.5."""
    counts = draw(confusions())
    pred_scores, y, group = rows_from_counts(counts)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    levels = rng.integers(0, 11, y.size) / 20  # 0, 0.05, ..., 0.5
    scores = np.where(pred_scores > 0.5, 0.5 + levels, np.minimum(levels, 0.45))
    return scores, y, group, counts.shape[0]


@SETTINGS
@given(confusions())
def test_group_confusion_recovers_the_counts(counts):
    scores, y, group = rows_from_counts(counts)
    np.testing.assert_array_equal(group_confusion(y, scores >= 0.5, group, counts.shape[0]), counts)


@SETTINGS
@given(metric_inputs())
def test_outputs_are_finite_and_in_range(inputs):
    m = fairness_metrics(*inputs)
    assert all(np.isfinite(v) for v in m.values())
    for key, upper in CORE_RANGES.items():
        assert 0.0 <= m[key] <= upper + 1e-12, key
    assert m["undefined_rates"] >= 0


@SETTINGS
@given(metric_inputs())
def test_sum_aggregation_is_bounded_by_the_number_of_pairs(inputs):
    n_groups = inputs[3]
    m_max = fairness_metrics(*inputs, aggregate="max")
    m_sum = fairness_metrics(*inputs, aggregate="sum")
    pairs = n_groups * (n_groups - 1) // 2
    for key in ("ind", "sp", "sf", "wd", "wd2_binned", "wd2_fixed_bins", "auc_gap"):
        assert m_max[key] - 1e-12 <= m_sum[key] <= max(pairs, 1) * m_max[key] + 1e-12, key
    if n_groups == 2:
        assert m_sum == approx(m_max)


def relabel(key: str, perm: list[int]) -> str:
    """``name_g{k}`` -> ``name_g{perm[k]}``; other keys unchanged."""
    match = re.fullmatch(r"(.+)_g(\d+)", key)
    return f"{match[1]}_g{perm[int(match[2])]}" if match else key


@SETTINGS
@given(metric_inputs(), st.randoms(use_true_random=False))
def test_invariant_to_permuting_group_labels(inputs, random):
    scores, y, group, n_groups = inputs
    perm = list(range(n_groups))
    random.shuffle(perm)
    for aggregate in ("max", "sum"):
        before = fairness_metrics(scores, y, group, n_groups, aggregate=aggregate)
        after = fairness_metrics(scores, y, np.array(perm)[group], n_groups, aggregate=aggregate)
        relabelled = {relabel(key, perm): value for key, value in before.items()}
        assert relabelled.keys() == after.keys()
        for key, value in relabelled.items():
            if key not in ORDER_DEPENDENT:
                assert after[key] == approx(value, abs=1e-12), key


@SETTINGS
@given(
    arrays(np.int64, (2, 2), elements=st.integers(0, 5)).filter(lambda c: c.sum() > 0),
    st.lists(st.integers(0, 4), min_size=1, max_size=5).filter(any),
)
def test_identical_scaled_confusions_have_no_gaps(base, scales):
    counts = np.stack([k * base for k in scales])
    m = fairness_metrics(*rows_from_counts(counts), len(scales))
    assert m["ind"] == 0.0 and m["sp"] == 0.0 and m["sf"] == 0.0
    assert m["wd"] == approx(0.0, abs=1e-12) and m["wd2_binned"] == approx(0.0, abs=1e-12)
    assert m["wd2_fixed_bins"] == approx(0.0, abs=1e-12)
