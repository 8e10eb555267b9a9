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

Beside what the algorithm saw (the surrogate statistics: mean losses or soft rates, and
their constraint values), every evaluation gives the **true** statistics of the thresholded
predictions ``1[sigmoid(z) >= 0.5]`` and their constraint values (``constraints_true``), and
the true rate gaps of every run whatever its statistic (``pr_gap``, ``tpr_gap``, ``fpr_gap``:
the largest minus the smallest group's positive rate, true positive rate and false positive
rate). All come from one table per split of sums over (group, label) cells
(:func:`~fairbench.problems.statistics.cell_statistics`), one more ``np.bincount`` each for the
hard and (for a rate statistic) the soft predictions. An empty cell (a group without a row of
a label in a split) counts as rate 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairbench.models import INFERENCE_BLOCK
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.features import CompactTensor
from fairbench.problems.mlp_rows import LookupFirstLayer, first_layer, forward, mlp_arrays
from fairbench.problems.statistics import cell_statistics

#: rows per chunk of the evaluation forward (a multiple of the model's inference block)
CHUNK_ROWS = 2 * INFERENCE_BLOCK
#: the true rate gaps every evaluation reports, and the statistic whose cells give each
RATE_GAPS = {"pr_gap": ("positive_rate", 0), "tpr_gap": ("equalized_odds", 0), "fpr_gap": ("equalized_odds", 1)}


@dataclass
class SplitEvaluation:
    """The model on one whole split: mean loss, per-group losses, constraints, scores.

    ``scores`` (predicted probabilities, float64) is ``None`` when the evaluation was made
    without them (a trajectory row)."""

    loss: float
    group_losses: np.ndarray
    constraints: np.ndarray
    scores: np.ndarray | None
    #: the constraints' values on the true statistics of the thresholded predictions
    constraints_true: np.ndarray
    #: ``pr_gap``, ``tpr_gap``, ``fpr_gap`` of the thresholded predictions
    rate_gaps: dict
    #: the rows evaluated, and whether they are a subsample of the split (``eval.subsample``)
    rows: int = 0
    subsampled: bool | None = None  # None: a run without eval.subsample

    @property
    def max_violation(self) -> float:
        return float(max(0.0, self.constraints.max())) if self.constraints.size else 0.0

    @property
    def max_violation_true(self) -> float:
        return float(max(0.0, self.constraints_true.max())) if self.constraints_true.size else 0.0


def chunk_bounds(n: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges of a split of ``n`` rows, ``chunk_rows`` (a multiple of
    :data:`~fairbench.models.INFERENCE_BLOCK`) each; a last chunk of at most one block joins
    the one before.

    Each row then meets the same blocks of the model's inference forward, and the same vector
    lanes of the element-wise operations, as in one forward over the whole split (chunks start
    at multiples of the block, and no chunk but a whole split of at most one block takes the
    model's unblocked path), so a chunked evaluation gives the numbers of an unchunked one bit
    for bit (``tests/problems/test_evaluation.py``)."""
    bounds = [(start, min(n, start + chunk_rows)) for start in range(0, n, chunk_rows)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] <= INFERENCE_BLOCK:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


class SplitsEvaluator:
    """Evaluates a model on a fixed set of named splits with ``n_groups`` groups.

    The (split, group) cell of every row and the cells' counts are made once, at
    construction; :meth:`evaluate` then costs one forward per split and a handful of
    whole-array operations.
    """

    def __init__(self, splits: dict[str, TensorSplit], n_groups: int, subsampled: bool | None = None,
                 chunk_rows: int | None = None):
        if not splits:
            raise ValueError("SplitsEvaluator needs at least one split")
        self.splits = dict(splits)
        self.n_groups = int(n_groups)
        self.subsampled = subsampled
        self.chunk_rows = CHUNK_ROWS if chunk_rows is None else int(chunk_rows)
        if self.chunk_rows <= 0 or self.chunk_rows % INFERENCE_BLOCK:
            raise ValueError(f"chunk_rows must be a positive multiple of {INFERENCE_BLOCK}, got {chunk_rows}")
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
        # (split, group, label) cells of the rate tables, and their counts
        labels = np.concatenate([(split.y.numpy() > 0.5).astype(np.int64) for split in self.splits.values()])
        self.label_cells = self.cells * 2 + labels
        self.label_counts = np.bincount(self.label_cells, minlength=2 * counts.size).reshape(
            len(self.splits), self.n_groups, 2)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, bound: GroupConstraints, scores: bool = True) -> dict[str, SplitEvaluation]:
        """Every split's :class:`SplitEvaluation`, in the order the splits were given.

        Each split goes through the model in chunks of :attr:`chunk_rows` rows (see
        :func:`chunk_bounds`); only per-row float64 vectors (losses, thresholded and soft
        predictions, scores) are kept whole."""
        # element-wise operations run split by split: a vectorised kernel may round a row at
        # the tail of an array differently from the same row mid-array (torch's sigmoid does)
        statistic = getattr(bound, "statistic", None)
        T = float(bound.spec.temperature) if statistic not in (None, "loss") else None
        total = self.cells.size
        losses, hard = np.empty(total), np.empty(total)
        soft = np.empty(total) if T is not None else None
        split_scores, offset = [], 0
        layers, firsts = mlp_arrays(model), {}
        for split in self.splits.values():
            out = np.empty(len(split)) if scores else None
            first = None
            if layers is not None and isinstance(split.X, CompactTensor):
                layout = id(split.X.compact.off)  # (the splits of a dataset share their layout)
                if layout not in firsts:
                    firsts[layout] = first_layer(layers, split.X)
                first = firsts[layout]
            for start, stop in chunk_bounds(len(split), self.chunk_rows):
                if isinstance(first, LookupFirstLayer):  # compact one-hot rows: never made dense
                    z = torch.from_numpy(forward(layers, first, split.X.compact.take(slice(start, stop)))[0])
                else:
                    z = model(split.X[start:stop])
                rows = slice(offset + start, offset + stop)
                losses[rows] = F.binary_cross_entropy_with_logits(z, split.y[start:stop], reduction="none").double().numpy()
                p = torch.sigmoid(z)
                hard[rows] = (p >= 0.5).double().numpy()
                if soft is not None:
                    soft[rows] = (p if T == 1.0 else torch.sigmoid(z / T)).double().numpy()
                if out is not None:
                    out[start:stop] = p.double().numpy()
            split_scores.append(out)
            offset += len(split)
        sums = np.bincount(self.cells, weights=losses, minlength=self.divisors.size)
        group_losses = sums.reshape(self.divisors.shape) / self.divisors
        shape = self.label_counts.shape
        hard = np.bincount(self.label_cells, weights=hard, minlength=self.label_counts.size).reshape(shape)
        if soft is not None:
            soft = np.bincount(self.label_cells, weights=soft, minlength=self.label_counts.size).reshape(shape)
        starts = np.cumsum([0] + [len(split) for split in self.splits.values()])
        model_values = bound.model_values(model) if statistic is None else None  # data-free constraints
        evaluations = {}
        for i, name in enumerate(self.splits):
            split_losses = group_losses[i].copy()
            counts = self.label_counts[i]
            if statistic is None:
                constraints = constraints_true = model_values
            else:
                surrogate = split_losses if soft is None else cell_statistics(statistic, soft[i], counts)
                constraints = bound.values(surrogate)
                constraints_true = bound.values(cell_statistics(statistic, hard[i], counts))
            gaps = {}
            for key, (stat, block) in RATE_GAPS.items():
                rates = cell_statistics(stat, hard[i], counts)[block * self.n_groups:(block + 1) * self.n_groups]
                gaps[key] = float(rates.max() - rates.min())
            evaluations[name] = SplitEvaluation(
                loss=float(torch.from_numpy(losses[starts[i]:starts[i + 1]]).mean()),
                group_losses=split_losses,
                constraints=constraints,
                scores=split_scores[i],
                constraints_true=np.asarray(constraints_true, dtype=np.float64),
                rate_gaps=gaps,
                rows=int(starts[i + 1] - starts[i]),
                subsampled=self.subsampled,
            )
        return evaluations
