"""Small examples worked by hand: every metric, with max and sum aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from pytest import approx
from scipy.stats import wasserstein_distance

from fairbench.metrics import fairness_metrics, group_confusion, group_rates
from metrics_helpers import counts_from_cells, rows_from_counts

# --- Example A: two groups, explicit rows ------------------------------------------------
# group 0:  y     1   1   1   0   0   0
#           s    .9  .8  .3  .6  .3  .1     pred (s >= .5): 1 1 0 1 0 0
#           TP=2 FN=1 FP=1 TN=2 -> rate 3/6, TPR 2/3, FPR 1/3, PPV 2/3, NPV 2/3, error 2/6
# group 1:  y     1   0   0   0
#           s    .7  .4 .55 .05                 pred: 1 0 1 0
#           TP=1 FN=0 FP=1 TN=2 -> rate 2/4, TPR 1, FPR 1/3, PPV 1/2, NPV 1, error 1/4
# ind = |1/2 - 1/2| = 0;  sp = |2/3 - 1| + |1/3 - 1/3| = 1/3
# sf = |2/3 - 1/2| + |2/3 - 1| = 1/6 + 1/3 = 1/2;  ina = (2 + 1) / 10 = 3/10
# AUC g0: pos {.9,.8,.3} vs neg {.6,.3,.1}: 3 + 3 + (1 win + 1 tie = 1.5) = 7.5 of 9 = 5/6
# AUC g1: pos {.7} beats all of {.4,.55,.05} = 1;  auc_gap = 1/6
# pooled: .9, .8, .7 beat all 6 negatives (18); .3 beats .1, .05 and ties .3 (2.5) -> 20.5/24
# W1: sorted g0 = .1 .3 .3 .6 .8 .9, g1 = .05 .4 .55 .7; integral of |F0 - F1| over
#   [.05,.1) 1/4*.05  [.1,.3) 1/12*.2  [.3,.4) 1/4*.1  [.4,.55) 0  [.55,.6) 1/4*.05
#   [.6,.7) 1/12*.1  [.7,.8) 1/3*.1  [.8,.9) 1/6*.1          = 1/8
# wd2 with 4 bins (centres .125 .375 .625 .875): g0 -> (1,2,1,2)/6, g1 -> (1,1,2,0)/4;
#   CDFs (1/6,1/2,2/3,1) and (1/4,1/2,1,1); quantiles differ on (1/6,1/4) by .25 and on
#   (2/3,1) by .25: W2^2 = .0625 * (1/12 + 1/3) = 5/192
A_SCORES = np.array([0.9, 0.8, 0.3, 0.6, 0.3, 0.1, 0.7, 0.4, 0.55, 0.05])
A_Y = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 0])
A_GROUP = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_example_a_confusion_and_rates():
    confusion = group_confusion(A_Y, A_SCORES >= 0.5, A_GROUP, 2)
    assert confusion.dtype == np.int64
    np.testing.assert_array_equal(confusion, [[[2, 1], [1, 2]], [[2, 1], [0, 1]]])
    rates = group_rates(confusion)
    np.testing.assert_allclose(rates["positive_rate"], [1 / 2, 1 / 2])
    np.testing.assert_allclose(rates["tpr"], [2 / 3, 1])
    np.testing.assert_allclose(rates["fpr"], [1 / 3, 1 / 3])
    np.testing.assert_allclose(rates["ppv"], [2 / 3, 1 / 2])
    np.testing.assert_allclose(rates["npv"], [2 / 3, 1])
    np.testing.assert_allclose(rates["error"], [2 / 6, 1 / 4])
    np.testing.assert_array_equal(rates["size"], [6, 4])
    np.testing.assert_array_equal(rates["positives"], [3, 1])


@pytest.mark.parametrize("aggregate", ["max", "sum"])  # two groups: both are |r0 - r1|
def test_example_a_metrics(aggregate):
    m = fairness_metrics(A_SCORES, A_Y, A_GROUP, 2, aggregate=aggregate, wd_bins=4)
    assert m["ind"] == approx(0.0, abs=1e-15)
    assert m["sp"] == approx(1 / 3)
    assert m["sf"] == approx(1 / 2)
    assert m["ina"] == approx(3 / 10)
    assert m["auc"] == approx(20.5 / 24)
    assert (m["auc_g0"], m["auc_g1"], m["auc_gap"]) == approx((5 / 6, 1.0, 1 / 6))
    assert m["wd"] == approx(1 / 8)
    assert m["wd"] == approx(wasserstein_distance(A_SCORES[:6], A_SCORES[6:]))
    assert m["wd2_fixed_bins"] == approx(5 / 192)
    assert m["undefined_rates"] == 0
    assert (m["size_g0"], m["size_g1"]) == (6, 4)
    assert (m["ppv_g0"], m["ppv_g1"], m["npv_g1"]) == approx((2 / 3, 1 / 2, 1.0))


# --- Example B: three groups built from counts (scores .75 if predicted 1, else .25) ---------
#            TN FP FN TP  size | rate  TPR  FPR  PPV  NPV  error
# group 0:    3  1  1  3    8  | 1/2   3/4  1/4  3/4  3/4  1/4
# group 1:    4  0  2  2    8  | 1/4   1/2  0    1    2/3  1/4
# group 2:    1  1  0  2    4  | 3/4   1    1/2  2/3  1    1/4
# max: ind = 3/4 - 1/4 = 1/2; sp = (1 - 1/2) + (1/2 - 0) = 1; sf = (1 - 2/3) + (1 - 2/3) = 2/3
# sum: ind = 1/4 + 1/4 + 1/2 = 1;  TPR 1/4 + 1/4 + 1/2 = 1;  FPR 1/4 + 1/4 + 1/2 = 1 -> sp = 2
#      PPV 1/4 + 1/12 + 1/3 = 2/3;  NPV 1/12 + 1/4 + 1/3 = 2/3 -> sf = 4/3
# ina = (2 + 2 + 1) / 20 = 1/4
# Two score values: AUC = (TPR + 1 - FPR) / 2 = 3/4 in every group, pooled (7/10 + 8/10) / 2 = 3/4.
# Each group's scores sit at .25 and .75 with mass `rate` at .75, so between two groups
# W1 = |rate_g - rate_h| * .5 and W2^2 = |rate_g - rate_h| * .5^2 (.25, .75 are bin centres
# for 50 bins): max -> wd = 1/4, wd2 = 1/8; sum -> wd = 1/2, wd2 = 1/4.
B_COUNTS = counts_from_cells({0: (3, 1, 1, 3), 1: (4, 0, 2, 2), 2: (1, 1, 0, 2)}, 3)
B_EXPECTED = {
    "max": {"ind": 1 / 2, "sp": 1.0, "sf": 2 / 3, "wd": 1 / 4, "wd2_fixed_bins": 1 / 8},
    "sum": {"ind": 1.0, "sp": 2.0, "sf": 4 / 3, "wd": 1 / 2, "wd2_fixed_bins": 1 / 4},
}


def test_example_b_confusion():
    scores, y, group = rows_from_counts(B_COUNTS)
    np.testing.assert_array_equal(group_confusion(y, scores >= 0.5, group, 3), B_COUNTS)


@pytest.mark.parametrize("aggregate", ["max", "sum"])
def test_example_b_metrics(aggregate):
    m = fairness_metrics(*rows_from_counts(B_COUNTS), 3, aggregate=aggregate)
    for key, value in B_EXPECTED[aggregate].items():
        assert m[key] == approx(value), key
    assert m["ina"] == approx(1 / 4)
    assert m["auc"] == approx(3 / 4)
    assert [m[f"auc_g{g}"] for g in range(3)] == approx([3 / 4] * 3)
    assert m["auc_gap"] == approx(0.0, abs=1e-15)
    assert m["undefined_rates"] == 0


# --- Example C: four groups with undefined cells (n_groups=4, group 3 empty) -----------------
#            TN FP FN TP  size | rate  TPR  FPR  PPV  NPV  error  AUC
# group 0:    2  0  0  0    2  | 0     -    0    -    1    0      -    (no positives, no pred. pos.)
# group 1:    0  0  1  3    4  | 3/4   3/4  -    1    0    1/4    -    (no negatives)
# group 2:    1  1  1  1    4  | 1/2   1/2  1/2  1/2  1/2  1/2    1/2
# group 3:    empty            | all 7 undefined
# undefined cells: 3 + 2 + 0 + 7 = 12
# max: ind = 3/4 - 0; TPR {3/4,1/2} 1/4; FPR {0,1/2} 1/2 -> sp = 3/4;
#      PPV {1,1/2} 1/2; NPV {1,0,1/2} 1 -> sf = 3/2; auc_gap: one defined group -> 0
# sum: ind = 3/4 + 1/2 + 1/4 = 3/2; sp = 1/4 + 1/2 = 3/4; NPV 1 + 1/2 + 1/2 = 2 -> sf = 5/2
# ina = (0 + 1 + 2) / 10 = 3/10; pooled AUC = (TPR 4/6 + 1 - FPR 1/4) / 2 = 17/24
# wd over the non-empty groups 0..2: max .5 * |0 - 3/4| = 3/8
C_COUNTS = counts_from_cells({0: (2, 0, 0, 0), 1: (0, 0, 1, 3), 2: (1, 1, 1, 1)}, 4)
C_EXPECTED = {"max": {"ind": 3 / 4, "sp": 3 / 4, "sf": 3 / 2}, "sum": {"ind": 3 / 2, "sp": 3 / 4, "sf": 5 / 2}}


@pytest.mark.parametrize("aggregate", ["max", "sum"])
def test_example_c_undefined_cells(aggregate):
    m = fairness_metrics(*rows_from_counts(C_COUNTS), 4, aggregate=aggregate)
    for key, value in C_EXPECTED[aggregate].items():
        assert m[key] == approx(value), key
    assert m["ina"] == approx(3 / 10)
    assert m["auc"] == approx(17 / 24)
    assert m["auc_gap"] == 0.0
    assert m["undefined_rates"] == 12
    assert all(np.isfinite(v) for v in m.values())


def test_example_c_reports_only_defined_per_group_values():
    m = fairness_metrics(*rows_from_counts(C_COUNTS), 4)
    assert m["wd"] == approx(3 / 8)
    assert [m[f"size_g{g}"] for g in range(4)] == [2, 4, 4, 0]
    absent = {"tpr_g0", "ppv_g0", "auc_g0", "fpr_g1", "auc_g1"}
    absent |= {f"{name}_g3" for name in ("positive_rate", "tpr", "fpr", "ppv", "npv", "error", "auc")}
    assert absent.isdisjoint(m)
    assert (m["positive_rate_g0"], m["fpr_g0"], m["npv_g0"], m["error_g0"]) == (0.0, 0.0, 1.0, 0.0)
    assert (m["npv_g1"], m["ppv_g1"], m["auc_g2"]) == (0.0, 1.0, 0.5)


def test_group_rates_marks_undefined_with_nan():
    rates = group_rates(C_COUNTS)
    np.testing.assert_array_equal(np.isnan(rates["tpr"]), [True, False, False, True])
    np.testing.assert_array_equal(np.isnan(rates["fpr"]), [False, True, False, True])
    np.testing.assert_array_equal(np.isnan(rates["ppv"]), [True, False, False, True])
    np.testing.assert_array_equal(rates["size"], [2, 4, 4, 0])
