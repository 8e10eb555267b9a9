"""Fairness metrics from per-group confusion counts, score distances and ROC AUC.

Public API:

* :func:`fairness_metrics` — the flat, NaN-free metrics dict the runner records
  (definitions and conventions in :mod:`fairbench.metrics.fairness`).
* :func:`group_confusion` — int64 counts ``[group, true, pred]``.
* :func:`group_rates` — per-group rates from those counts (NaN where undefined).

The building blocks (:func:`~fairbench.metrics.auc.roc_auc`,
:func:`~fairbench.metrics.distances.paper_binned_w2_squared`, ...) take validated arrays and live
in their modules.
"""

from fairbench.metrics.confusion import group_confusion, group_rates
from fairbench.metrics.fairness import fairness_metrics

__all__ = ["fairness_metrics", "group_confusion", "group_rates"]
