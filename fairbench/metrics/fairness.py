"""Group-fairness metrics of a probabilistic binary classifier (paper section "Metrics").

:func:`fairness_metrics` thresholds the scores, counts a confusion matrix per group and
returns a flat ``dict`` of plain Python numbers. Smaller is better for every gap and distance.

Prediction
    ``Ŷ = 1`` iff ``score >= threshold`` (default 0.5). A score of exactly 0.5 is positive,
    matching ``logit >= 0`` for ``score = sigmoid(logit)``.

Core keys (always present, always finite)
    ``ind``          independence: gap of ``P(Ŷ=1 | g)`` (``positive_rate``).
    ``sp``           separation: gap(TPR) + gap(FPR).
    ``sf``           sufficiency: gap(PPV) + gap(NPV).
    ``ina``          inaccuracy: pooled error rate ``(FP + FN) / n`` over all rows.
    ``wd``           1-Wasserstein distance between groups' raw score distributions (equal to
                     ``scipy.stats.wasserstein_distance``; see :mod:`fairbench.metrics.distances`).
    ``wd2_binned``   the paper code's distance: squared 2-Wasserstein distance between
                     ``wd_bins``-bin histograms over the first group's score range, masses
                     at the bins' right edges (see :mod:`fairbench.metrics.distances`).
    ``wd2_fixed_bins``  squared 2-Wasserstein distance between ``wd_bins``-bin histograms
                     on [0, 1], masses at the bin centres (symmetric; not the paper's).
    ``auc``          pooled ROC AUC (ties averaged).
    ``auc_gap``      gap of the per-group AUCs.
    ``tpr_gap``, ``fpr_gap``, ``ppv_gap``, ``npv_gap``: the summands of ``sp`` and ``sf``.
    ``undefined_rates``  (int) how many per-group quantities were undefined (see below).

Per-group keys (``k`` = group id), present only where defined
    ``size_g{k}`` (int, always present), ``positive_rate_g{k}``, ``tpr_g{k}``, ``fpr_g{k}``,
    ``ppv_g{k}``, ``npv_g{k}``, ``error_g{k}``, ``auc_g{k}``.

Gaps over G groups (:mod:`fairbench.metrics.gaps`)
    ``aggregate="max"``: max over groups minus min over groups (the largest pairwise gap);
    ``aggregate="sum"``: sum over pairs ``g < h`` of ``|r_g - r_h|``. With two groups both are
    ``|r_0 - r_1|``. The distances ``wd``, ``wd2_binned`` and ``wd2_fixed_bins`` take the max (or
    sum) over pairs of groups ``g < h`` likewise (``wd2_binned`` is not symmetric: ``g`` fixes
    its bins). Ranges with ``"max"``: ``ind``, ``ina``, ``auc``, ``auc_gap``, ``wd``,
    ``wd2_binned``, ``wd2_fixed_bins`` in [0, 1]; ``sp``, ``sf`` in [0, 2]. With ``"sum"`` and G > 2 each gap can
    reach ``floor(G^2 / 4)`` times those bounds.

Undefined quantities (no NaN ever reaches the result)
    Every rate comes from confusion counts (:mod:`fairbench.metrics.confusion`); a rate whose
    denominator is 0 is undefined: TPR of a group without positives, FPR without negatives,
    PPV without predicted positives, NPV without predicted negatives, every rate of an empty
    group. A per-group AUC is undefined when the group holds a single class (or no rows).

    * An undefined per-group value is left out of its gap: the gap is taken over the groups
      where it is defined, and is 0 when fewer than two groups remain.
    * Its ``*_g{k}`` key is omitted (so the key set can vary between calls; the core keys
      never do).
    * ``undefined_rates`` counts the undefined (group, quantity) cells among positive_rate,
      tpr, fpr, ppv, npv, error and auc (an empty group contributes 7), plus 1 if the pooled
      AUC is undefined, plus 1 for each pair of non-empty groups whose ``wd2_binned`` is
      undefined (no score of group ``h`` inside group ``g``'s score range); such a pair is
      left out of ``wd2_binned`` like an undefined rate out of its gap.
    * Empty groups are left out of the distances; fewer than two non-empty groups give 0.
    * More than :data:`DISTANCE_GROUP_LIMIT` non-empty groups: the three pairwise distances
      (``wd``, ``wd2_binned``, ``wd2_fixed_bins``) are not computed and are NaN (``null`` in
      ``metrics.json``), the one exception to "always finite": their cost is O(G^2 n) time and
      O(G n) memory (G = 3,000 groups over 600,000 rows: hours and tens of GB). The gaps stay
      exact (``max``: the largest minus the smallest defined value, O(G)).
    * The pooled AUC is undefined only when all rows share one label; it is reported as 0.5.

Invalid inputs (mismatched lengths, scores outside [0, 1] or NaN, labels outside {0, 1}, group
ids outside ``0..n_groups-1``, no rows, an unknown ``aggregate``) raise ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fairbench.metrics._validation import as_metric_inputs, check_aggregate, check_bins, check_threshold
from fairbench.metrics.auc import sorted_auc
from fairbench.metrics.confusion import confusion_counts, group_rates
from fairbench.metrics.distances import (binned_w2_squared, group_histograms, paper_binned_w2_squared,
                                         sorted_group_cdfs, w1_from_cdfs)
from fairbench.metrics.gaps import gap, over_pairs, reduce_pairs

PER_GROUP_KEYS = ("positive_rate", "tpr", "fpr", "ppv", "npv", "error", "auc")
#: beyond this many non-empty groups the pairwise distances are NaN (module doc)
DISTANCE_GROUP_LIMIT = 256


def fairness_metrics(
    scores: Any,
    y: Any,
    group: Any,
    n_groups: int,
    *,
    threshold: float = 0.5,
    aggregate: str = "max",
    wd_bins: int = 50,
) -> dict[str, float]:
    """Fairness and accuracy metrics of probabilities ``scores`` for labels ``y`` by ``group``.

    See the module docstring for the keys, the aggregation over groups and the conventions
    for undefined rates.
    """
    scores, y, group, n_groups = as_metric_inputs(scores, y, group, n_groups)
    aggregate = check_aggregate(aggregate)
    threshold, wd_bins = check_threshold(threshold), check_bins(wd_bins)

    confusion = confusion_counts(y, (scores >= threshold).astype(np.int64), group, n_groups)
    rates = group_rates(confusion)
    order = np.argsort(scores)
    sorted_scores, sorted_y, sorted_group = scores[order], y[order], group[order]
    pooled_auc = sorted_auc(sorted_scores, sorted_y)
    rates["auc"] = group_aucs(sorted_scores, sorted_y, sorted_group, n_groups)

    result: dict[str, float] = rate_gaps(rates, aggregate)
    result["ina"] = float(confusion[:, 0, 1].sum() + confusion[:, 1, 0].sum()) / scores.shape[0]
    result["auc"] = 0.5 if np.isnan(pooled_auc) else pooled_auc
    if np.count_nonzero(confusion.sum(axis=(1, 2))) > DISTANCE_GROUP_LIMIT:
        distance_values, undefined_pairs = dict.fromkeys(("wd", "wd2_binned", "wd2_fixed_bins"), float("nan")), 0
    else:
        distance_values, undefined_pairs = distances(sorted_scores, sorted_group, n_groups, wd_bins, aggregate)
    result.update(distance_values)
    result["undefined_rates"] = count_undefined(rates) + int(np.isnan(pooled_auc)) + undefined_pairs
    result.update(per_group_values(rates))
    return result


def group_aucs(sorted_scores: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """ROC AUC within each group (rows sorted by score); NaN for groups without both classes."""
    aucs = np.full(n_groups, np.nan)
    by_group = np.argsort(group, kind="stable")  # each group's rows, still in score order
    ends = np.cumsum(np.bincount(group, minlength=n_groups))
    for g in range(n_groups):
        member = by_group[ends[g - 1] if g else 0:ends[g]]
        aucs[g] = sorted_auc(sorted_scores[member], y[member])
    return aucs


def rate_gaps(rates: dict[str, np.ndarray], aggregate: str) -> dict[str, float]:
    """The gap-based keys: ``ind``, ``sp``, ``sf``, ``auc_gap`` and the four rate gaps."""
    gaps = {name: gap(rates[name], aggregate) for name in ("positive_rate", "tpr", "fpr", "ppv", "npv", "auc")}
    return {
        "ind": gaps["positive_rate"],
        "sp": gaps["tpr"] + gaps["fpr"],
        "sf": gaps["ppv"] + gaps["npv"],
        "auc_gap": gaps["auc"],
        **{f"{name}_gap": gaps[name] for name in ("tpr", "fpr", "ppv", "npv")},
    }


def distances(
    sorted_scores: np.ndarray, group: np.ndarray, n_groups: int, bins: int, aggregate: str
) -> tuple[dict[str, float], int]:
    """``wd``, ``wd2_binned`` and ``wd2_fixed_bins`` over pairs ``g < h`` of non-empty groups
    (rows sorted by score), and the number of pairs whose ``wd2_binned`` is undefined."""
    histograms = group_histograms(sorted_scores, group, n_groups, bins)
    nonempty = [g for g in range(n_groups) if histograms[g].sum() > 0]
    cdfs, deltas = sorted_group_cdfs(sorted_scores, group, nonempty)
    members = [sorted_scores[group == g] for g in nonempty]
    paper = [paper_binned_w2_squared(members[i], members[j], bins)
             for i in range(len(members)) for j in range(i + 1, len(members))]
    defined = [value for value in paper if value is not None]
    return {
        "wd": over_pairs(list(cdfs), lambda a, b: w1_from_cdfs(a, b, deltas), aggregate),
        "wd2_binned": reduce_pairs(defined, aggregate),
        "wd2_fixed_bins": over_pairs([histograms[g] for g in nonempty], binned_w2_squared, aggregate),
    }, len(paper) - len(defined)


def count_undefined(rates: dict[str, np.ndarray]) -> int:
    """Number of NaN (group, quantity) cells among the per-group rates and AUCs."""
    return sum(int(np.isnan(rates[name]).sum()) for name in PER_GROUP_KEYS)


def per_group_values(rates: dict[str, np.ndarray]) -> dict[str, float]:
    """``size_g{k}`` for every group and ``{rate}_g{k}`` wherever that rate is defined."""
    values: dict[str, float] = {}
    for g, size in enumerate(rates["size"]):
        values[f"size_g{g}"] = int(size)
        for name in PER_GROUP_KEYS:
            if not np.isnan(rates[name][g]):
                values[f"{name}_g{g}"] = float(rates[name][g])
    return values
