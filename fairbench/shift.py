"""Fairness under shift: the final model on the full data of states it never trained on.

For each state of ``eval.states`` (prepared as the training data was:
:mod:`fairbench.data.shift`) the final model gets every metric of a split (the metrics
function of the run's final evaluation) and the **true** constraint violations: the
problem's constraints on the true statistics of the thresholded predictions in that state.

The constraints are bound to the state's groups: the problem is bound with the state's group
shares (and, for a conditional rate, its counts per group and label), which matters for
``vs_all`` comparisons and the aggregated forms (``sum_h pi_h s_h`` is then the state's own
population statistic). When a cell of the statistic is empty in the state (a training group
without a row there, or without a row of a label a conditional rate needs), the training
binding is used instead (``shares: "training"``), and every constraint that involves an
empty cell (a nonzero entry of the comparison matrix in its column; for an aggregated form,
any) is not evaluated: its value is ``None``, it is left out of ``max_violation`` and
``max_violation_true``, and ``constraints_evaluated`` counts the rest. A data-free
constraint (the weight norm) has the same value in every state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from fairbench.data.shift import StateData
from fairbench.problems.evaluation import SplitEvaluation, SplitsEvaluator
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.statistics import CELL_LABELS, label_counts

MetricsOf = Callable[[SplitEvaluation, TensorSplit, int], dict]


def present_cells(statistic: str, counts: np.ndarray) -> np.ndarray:
    """Which cells of ``statistic`` hold a row: per group, or per group within each label
    block of a conditional rate (``counts``: (G, 2) rows per group and label)."""
    labels = CELL_LABELS[statistic]
    if labels is None:
        return counts.sum(axis=1) > 0
    return np.concatenate([counts[:, label] > 0 for label in labels])


def state_bound(problem, training_bound, split: TensorSplit, n_groups: int, group_names: list[str]):
    """``(bound, shares, evaluable)``: the constraints bound to the state's groups, which
    binding was used (``"state"`` or ``"training"``) and a mask of the constraints that can be
    evaluated (see the module doc)."""
    statistic = getattr(training_bound, "statistic", None)
    if statistic is None:  # data-free constraints
        return training_bound, "training", np.ones(len(training_bound.names), dtype=bool)
    counts = label_counts(split.group.numpy(), split.y.numpy(), n_groups)
    present = present_cells(statistic, counts)
    if present.all():
        proportions = counts.sum(axis=1) / counts.sum()
        return problem.bind(proportions, group_names, counts), "state", np.ones(len(training_bound.names), dtype=bool)
    if training_bound.spec.form == "aggregate":
        return training_bound, "training", np.zeros(len(training_bound.names), dtype=bool)
    evaluable = ~(training_bound.matrix[:, ~present] != 0).any(axis=1)
    return training_bound, "training", evaluable


def state_metrics(problem, training_bound, model: nn.Module, state: StateData, n_groups: int,
                  group_names: list[str], metrics_of: MetricsOf) -> dict:
    """Every metric of the final model on one other state, and its true constraint values."""
    split = TensorSplit.from_arrays(state.split.X, state.split.y, state.split.group)
    bound, shares, evaluable = state_bound(problem, training_bound, split, n_groups, group_names)
    ev = SplitsEvaluator({state.state: split}, n_groups).evaluate(model, bound)[state.state]
    metrics = metrics_of(ev, split, n_groups)
    for key, values in (("constraints", ev.constraints), ("constraints_true", ev.constraints_true)):
        values = np.asarray(values, dtype=np.float64)
        metrics[key] = [float(v) if ok else None for v, ok in zip(values, evaluable)]
        kept = values[evaluable]
        suffix = "" if key == "constraints" else "_true"
        metrics[f"max_violation{suffix}"] = float(max(0.0, kept.max())) if kept.size else None
    metrics.update(rows=len(split), constraints_evaluated=int(evaluable.sum()), shares=shares,
                   absent_groups=state.absent_groups, dropped_rows=state.dropped_rows,
                   unseen_level_rows=state.unseen_level_rows)
    return metrics


def shift_metrics(problem, training_bound, model: nn.Module, states: list[StateData], n_groups: int,
                  group_names: list[str], metrics_of: MetricsOf) -> dict[str, dict]:
    """``{state: metrics}`` for every other state, in the order given."""
    return {s.state: state_metrics(problem, training_bound, model, s, n_groups, group_names, metrics_of)
            for s in states}
