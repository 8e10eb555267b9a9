"""Undefined-rate conventions, rates from counts (not from TPR/FPR) and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from pytest import approx

from fairbench.metrics import fairness_metrics, group_confusion, group_rates
from metrics_helpers import counts_from_cells, rows_from_counts

CORE_KEYS = {"ind", "sp", "sf", "ina", "wd", "wd2_binned", "auc", "auc_gap", "undefined_rates"}


def assert_all_finite(m: dict[str, float]) -> None:
    assert CORE_KEYS <= m.keys()
    assert all(np.isfinite(v) for v in m.values()), m


def test_ppv_npv_come_from_counts_not_from_tpr_fpr():
    # Same TPR = 1/2 and FPR = 1/8 in both groups, different prevalence (8/20 vs 4/20):
    #            TN FP FN TP | PPV            NPV
    # group 0:    7  1  4  4 | 4/5            7/11
    # group 1:   14  2  2  2 | 1/2            14/16 = 7/8
    # sf = (4/5 - 1/2) + (7/8 - 7/11) = 3/10 + 21/88.
    # The wrong derivation PPV = TPR / (TPR + FPR) (prevalence ignored) gives 4/5 for both,
    # NPV = (1 - FPR) / ((1 - FPR) + (1 - TPR)) gives 7/11 for both: sf would be 0.
    counts = counts_from_cells({0: (7, 1, 4, 4), 1: (14, 2, 2, 2)}, 2)
    rates = group_rates(counts)
    np.testing.assert_allclose(rates["tpr"], [1 / 2, 1 / 2])
    np.testing.assert_allclose(rates["fpr"], [1 / 8, 1 / 8])
    wrong_ppv = rates["tpr"] / (rates["tpr"] + rates["fpr"])
    wrong_npv = (1 - rates["fpr"]) / ((1 - rates["fpr"]) + (1 - rates["tpr"]))
    assert np.ptp(wrong_ppv) == 0 and np.ptp(wrong_npv) == 0
    np.testing.assert_allclose(rates["ppv"], [4 / 5, 1 / 2])
    np.testing.assert_allclose(rates["npv"], [7 / 11, 7 / 8])
    m = fairness_metrics(*rows_from_counts(counts), 2)
    assert m["sf"] == approx(3 / 10 + 21 / 88)
    assert m["sp"] == approx(0.0, abs=1e-15)


def test_group_without_positives_is_left_out_of_tpr_gap():
    # group 0 has only negatives: its TPR is undefined, so the TPR gap covers groups 1, 2 only
    counts = counts_from_cells({0: (3, 1, 0, 0), 1: (2, 2, 1, 3), 2: (4, 0, 3, 1)}, 3)
    m = fairness_metrics(*rows_from_counts(counts), 3)
    assert_all_finite(m)
    assert "tpr_g0" not in m and "auc_g0" not in m
    assert m["tpr_gap"] == approx(3 / 4 - 1 / 4)
    assert m["undefined_rates"] == 2  # tpr_g0, auc_g0


def test_no_predicted_positives_anywhere_gives_zero_ppv_gap():
    # an untrained model predicting 0 everywhere: PPV undefined in every group
    scores = np.full(6, 0.1)
    y = np.array([1, 0, 1, 0, 0, 1])
    group = np.array([0, 0, 0, 1, 1, 1])
    m = fairness_metrics(scores, y, group, 2)
    assert_all_finite(m)
    assert m["ppv_gap"] == 0.0 and "ppv_g0" not in m and "ppv_g1" not in m
    assert m["ind"] == 0.0 and m["tpr_gap"] == 0.0 and m["fpr_gap"] == 0.0
    assert m["npv_gap"] == approx(2 / 3 - 1 / 3)
    assert m["auc"] == 0.5 and m["wd"] == 0.0 and m["wd2_binned"] == 0.0
    assert m["undefined_rates"] == 2


def test_empty_group_is_left_out_everywhere():
    scores = np.array([0.9, 0.2, 0.7, 0.4])
    y = np.array([1, 0, 0, 1])
    group = np.array([0, 0, 2, 2])
    m = fairness_metrics(scores, y, group, 3)
    reference = fairness_metrics(scores, y, np.array([0, 0, 1, 1]), 2)
    assert_all_finite(m)
    assert m["size_g1"] == 0 and not any(k.endswith("_g1") and k != "size_g1" for k in m)
    assert m["undefined_rates"] == 7 + reference["undefined_rates"]
    for key in CORE_KEYS - {"undefined_rates"}:
        assert m[key] == approx(reference[key]), key


def test_single_group_with_rows_gives_zero_gaps():
    m = fairness_metrics(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]), np.array([1, 1, 1]), 2)
    assert_all_finite(m)
    assert all(m[k] == 0.0 for k in ("ind", "sp", "sf", "wd", "wd2_binned", "auc_gap"))
    assert m["ina"] == approx(1 / 3) and m["auc"] == 1.0


def test_single_class_everywhere_reports_auc_one_half():
    m = fairness_metrics(np.array([0.9, 0.2, 0.6, 0.3]), np.zeros(4), np.array([0, 0, 1, 1]), 2)
    assert_all_finite(m)
    assert m["auc"] == 0.5 and m["auc_gap"] == 0.0
    assert m["undefined_rates"] == 2 * 2 + 1  # tpr and auc in both groups, plus the pooled auc


def test_threshold_is_inclusive():
    scores, y, group = np.array([0.5, 0.4999]), np.array([1, 1]), np.array([0, 1])
    m = fairness_metrics(scores, y, group, 2)
    assert (m["positive_rate_g0"], m["positive_rate_g1"]) == (1.0, 0.0)
    assert fairness_metrics(scores, y, group, 2, threshold=0.4)["ind"] == 0.0


def test_accepts_the_split_dtypes():
    # data.Split: y float32, group int64; scores may come as float32 from torch
    scores = np.array([0.9, 0.1, 0.6, 0.3], dtype=np.float32)
    m = fairness_metrics(scores, np.array([1, 0, 0, 1], dtype=np.float32), np.array([0, 0, 1, 1]), 2)
    assert_all_finite(m)
    assert all(type(v) in (float, int) for v in m.values())


GOOD = (np.array([0.2, 0.8, 0.6]), np.array([0, 1, 1]), np.array([0, 1, 1]), 2)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((GOOD[0][:2], *GOOD[1:]), {}, "length mismatch"),
        ((np.array([0.2, 1.5, 0.6]), *GOOD[1:]), {}, "scores must lie in"),
        ((np.array([0.2, np.nan, 0.6]), *GOOD[1:]), {}, "scores must lie in"),
        ((np.array([0.2, -0.1, 0.6]), *GOOD[1:]), {}, "scores must lie in"),
        ((GOOD[0], np.array([0, 2, 1]), *GOOD[2:]), {}, "y must contain only 0 and 1"),
        ((*GOOD[:2], np.array([0, 2, 1]), 2), {}, "group ids must lie in 0..1"),
        ((*GOOD[:2], np.array([0, -1, 1]), 2), {}, "group ids must lie in 0..1"),
        ((*GOOD[:2], np.array([0.0, 1.0, 1.0]), 2), {}, "group must have"),
        ((*GOOD[:3], 0), {}, "n_groups must be"),
        ((*GOOD[:3], 2.0), {}, "n_groups must be"),
        ((GOOD[0][:, None], *GOOD[1:]), {}, "scores must be 1-D"),
        ((np.array([]), np.array([]), np.array([], dtype=np.int64), 2), {}, "at least one row"),
        (GOOD, {"aggregate": "mean"}, "aggregate='mean'"),
        (GOOD, {"threshold": float("nan")}, "threshold"),
        (GOOD, {"wd_bins": 0}, "wd_bins"),
    ],
)
def test_invalid_inputs_raise_one_line_value_error(args, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        fairness_metrics(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_group_confusion_validates_its_inputs():
    with pytest.raises(ValueError, match="y_pred must contain only 0 and 1"):
        group_confusion([0, 1], [0, 0.5], [0, 0], 1)
    with pytest.raises(ValueError, match="confusion must have shape"):
        group_rates(np.zeros((2, 4)))


def test_many_groups_keep_exact_gaps_and_skip_the_pairwise_distances():
    from fairbench.metrics import fairness as fm
    from fairbench.metrics.gaps import gap, over_pairs

    rng = np.random.default_rng(5)
    rates = rng.random(40)
    rates[3] = np.nan
    defined = [float(r) for r in rates if not np.isnan(r)]
    assert gap(rates, "max") == over_pairs(defined, lambda a, b: abs(a - b), "max")
    n_groups = fm.DISTANCE_GROUP_LIMIT + 1
    group = np.repeat(np.arange(n_groups), 6)
    y = np.tile([0, 1, 0, 1, 1, 0], n_groups)
    scores = rng.random(group.size)
    many = fm.fairness_metrics(scores, y, group, n_groups)
    assert all(np.isnan(many[k]) for k in ("wd", "wd2_binned", "wd2_fixed_bins"))
    for g in (0, 7, n_groups - 1):  # per-group AUCs as the per-group masks give them
        member = group == g
        assert many[f"auc_g{g}"] == fm.fairness_metrics(scores[member], y[member], np.zeros(6, int), 1)["auc"]
    few = fm.fairness_metrics(scores[:60], y[:60], group[:60], 10)
    assert np.isfinite(few["wd"]) and np.isfinite(few["wd2_fixed_bins"])
