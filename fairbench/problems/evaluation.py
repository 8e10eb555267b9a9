"""Whole-split evaluation: mean loss, exact per-group mean losses, constraint values, scores.

The runner evaluates every split at every log point (a paper preset: ~3,800 evaluations of
the three census splits), which made evaluation about half of a whole experiment's CPU time.
:class:`SplitsEvaluator` therefore evaluates the splits of a run together: the per-row
losses of all splits go through one float64 group-sum (a weighted ``np.bincount`` over
(split, group) cells), the cells and their counts are computed once per run, and the scores
are computed only when asked for (the final evaluation writes them; a trajectory row does not
use them).

Every number is the one a split-by-split evaluation gives, bit for bit: each split keeps its
own forward and element-wise operations (so its rows meet the same blocks of the inference
forward and the same vector lanes), the group sums are
float64 sums in row order (``np.bincount`` with weights adds sequentially, as
``index_add_`` does), and each split's mean loss is ``torch``'s mean over its own rows.
``tests/problems/test_evaluation.py`` checks this against the per-split definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import TensorSplit


@dataclass
class SplitEvaluation:
    """The model on one whole split: mean loss, per-group losses, constraints, scores.

    ``scores`` (predicted probabilities, float64) is ``None`` when the evaluation was made
    without them (a trajectory row)."""

    loss: float
    group_losses: np.ndarray
    constraints: np.ndarray
    scores: np.ndarray | None

    @property
    def max_violation(self) -> float:
        return float(max(0.0, self.constraints.max())) if self.constraints.size else 0.0


class SplitsEvaluator:
    """Evaluates a model on a fixed set of named splits with ``n_groups`` groups.

    The (split, group) cell of every row and the cells' counts are made once, at
    construction; :meth:`evaluate` then costs one forward per split and a handful of
    whole-array operations.
    """

    def __init__(self, splits: dict[str, TensorSplit], n_groups: int):
        if not splits:
            raise ValueError("SplitsEvaluator needs at least one split")
        self.splits = dict(splits)
        self.n_groups = int(n_groups)
        groups = [split.group.numpy() for split in self.splits.values()]
        for name, group in zip(self.splits, groups):
            # a group index outside [0, n_groups) would be counted in the next split's cells
            if group.size and (group.min() < 0 or group.max() >= self.n_groups):
                raise ValueError(f"split {name!r}: group indices must lie in [0, {self.n_groups}), "
                                 f"got {int(group.min())}..{int(group.max())}")
        self.cells = np.concatenate([group + i * self.n_groups for i, group in enumerate(groups)])
        counts = np.bincount(self.cells, minlength=len(self.splits) * self.n_groups).astype(np.float64)
        # an empty group divides by 1 (its mean loss is then 0), as torch's clamp(min=1) did
        self.divisors = np.maximum(counts, 1.0).reshape(len(self.splits), self.n_groups)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, bound: GroupConstraints, scores: bool = True) -> dict[str, SplitEvaluation]:
        """Every split's :class:`SplitEvaluation`, in the order the splits were given."""
        # element-wise operations run split by split: a vectorised kernel may round a row at
        # the tail of an array differently from the same row mid-array (torch's sigmoid does)
        logits = [model(split.X) for split in self.splits.values()]
        losses = [F.binary_cross_entropy_with_logits(z, split.y, reduction="none").double()
                  for z, split in zip(logits, self.splits.values())]
        sums = np.bincount(self.cells, weights=torch.cat(losses).numpy(), minlength=self.divisors.size)
        group_losses = sums.reshape(self.divisors.shape) / self.divisors
        evaluations = {}
        for i, name in enumerate(self.splits):
            split_losses = group_losses[i].copy()
            evaluations[name] = SplitEvaluation(
                loss=float(losses[i].mean()),
                group_losses=split_losses,
                constraints=bound.values(split_losses),
                scores=torch.sigmoid(logits[i]).double().numpy() if scores else None,
            )
        return evaluations
