"""The census task as an :class:`~fairbench.problems.base.Oracle`: a torch model, BCE loss, groups.

:class:`FairnessOracle` is the generic (autograd) path: it works with any ``torch.nn.Module``
that maps feature rows to one logit. The model's parameters are re-pointed into one flat
buffer whose numpy view is ``oracle.x``, and their ``.grad`` into a second flat buffer, so
algorithms update plain numpy vectors and a backward pass writes a flat gradient with no
copying.

Group statistics are per-cell means of the statistic's per-row quantity (the BCE loss, or a
soft rate: :mod:`fairbench.problems.statistics`) on a balanced batch (``per_group`` rows of each
cell: a group, or a group within one label); constraints are formed from them by a
:class:`~fairbench.problems.constraints.GroupConstraints`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairbench.data.compact import CompactX
from fairbench.problems.base import Batch, Counters, Oracle, Weights
from fairbench.problems.constraint_sampling import (SUBSET_KIND, ConstraintIndex, ConstraintSubset, SubsetSampler,
                                                   check_constraints_per_step)
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.features import CompactTensor
from fairbench.problems.sampling import EpochSampler, SamplingStreams, stream_rng
from fairbench.problems.statistics import CELL_LABELS, cell_rows, row_values_torch


@dataclass(frozen=True)
class TensorSplit:
    """One data split as torch tensors (features float32, labels float32, groups int64)."""

    X: torch.Tensor | CompactTensor
    y: torch.Tensor
    group: torch.Tensor

    @classmethod
    def from_arrays(cls, X: np.ndarray | CompactX, y: np.ndarray, group: np.ndarray) -> "TensorSplit":
        """The arrays as tensors, sharing their memory; compact one-hot features stay compact
        (:class:`~fairbench.problems.features.CompactTensor`)."""
        return cls(
            CompactTensor(X) if isinstance(X, CompactX) else torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32)),
            torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32)),
            torch.as_tensor(np.ascontiguousarray(group, dtype=np.int64)),
        )

    def __len__(self) -> int:
        return len(self.y)


def flatten_parameters(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-point ``model``'s parameters and their gradients into two flat buffers.

    Returns ``(params, grads)``, 1-D tensors; each parameter's ``.data`` and ``.grad`` become
    views into them, so ``params`` always holds the model's current weights and a backward
    pass accumulates into ``grads``.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in parameters)
    dtype = parameters[0].dtype
    flat, flat_grad = torch.zeros(total, dtype=dtype), torch.zeros(total, dtype=dtype)
    offset = 0
    for p in parameters:
        n = p.numel()
        flat[offset:offset + n].copy_(p.data.reshape(-1))
        p.data = flat[offset:offset + n].view_as(p)
        p.grad = flat_grad[offset:offset + n].view_as(p)
        offset += n
    return flat, flat_grad


def group_rows(group: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Row indices of each group."""
    return [np.flatnonzero(group == g) for g in range(n_groups)]


def constraint_cells(train: TensorSplit, n_cells: int, constraints: GroupConstraints | None) -> list[np.ndarray]:
    """Row indices of each cell a balanced constraint batch draws from: the groups, or, for a
    conditional rate, group x label (:func:`~fairbench.problems.statistics.cell_rows`)."""
    if constraints is None or CELL_LABELS[constraints.statistic] is None:
        return group_rows(train.group.numpy(), n_cells)
    return cell_rows(train.group.numpy(), train.y.numpy(), constraints.n_groups, constraints.statistic)


class FairnessOracle(Oracle):
    """Oracle for ``min E[BCE]  s.t.  c(group losses) <= 0`` on a training split.

    Parameters
    ----------
    model : the network (its parameters are moved into a flat buffer, see module doc).
    train : the training split.
    n_groups : number of cells a balanced constraint batch draws from: the groups (ids
        ``0..n_groups-1``), or group x label for a conditional rate (``constraints.n_cells``).
    constraints : the constraints the algorithm sees; ``None`` for an unconstrained problem.
    seed : entropy of this run's random streams; stream k of the constraint sampler and the
        objective sampler draw from independent children of ``SeedSequence(seed)``.
    """

    def __init__(
        self,
        model: nn.Module,
        train: TensorSplit,
        n_groups: int,
        constraints: GroupConstraints | None,
        seed: int,
    ):
        self.model = model
        self.train = train
        self._n_groups = n_groups
        self.group_constraints = constraints
        self.n_constraints = 0 if constraints is None else constraints.n_constraints
        self.constraint_names = [] if constraints is None else list(constraints.names)
        self._matrix = None if constraints is None else torch.as_tensor(constraints.matrix, dtype=torch.float32)
        self.flat, self.flat_grad = flatten_parameters(model)
        self.x = self.flat.numpy()
        self.counters = Counters()
        self.streams = SamplingStreams(len(train), constraint_cells(train, n_groups, constraints), seed)
        self._statistic = "loss" if constraints is None else constraints.statistic
        self._temperature = 1.0 if constraints is None else float(constraints.spec.temperature)

    # -- sampling ----------------------------------------------------------------------
    @property
    def n_groups(self) -> int:
        return self._n_groups

    @property
    def smallest_group(self) -> int:
        """Training rows of the smallest group: the largest possible ``per_group``."""
        return self.streams.smallest_group

    def sample_objective(self, size: int) -> Batch:
        rows = self.streams.objective.draw(size)
        self.counters.samples += size
        return Batch(size, torch.from_numpy(rows))

    def sample_constraints(self, per_group: int, stream: int = 0, subset: ConstraintSubset | None = None) -> Batch:
        if subset is not None:
            return self._sample_subset(per_group, stream, subset)
        rows = self.streams.constraint_sampler(stream).draw(per_group)
        self.counters.samples += len(rows)
        return Batch(len(rows), torch.from_numpy(rows), per_group=per_group)

    # -- k of m constraints per step (problem.constraints_per_step) ------------------------
    constraints_per_step: int | None = None

    def enable_constraint_sampling(self, k: int) -> None:
        """Let methods draw ``k`` constraints per step (:mod:`~fairbench.problems.constraint_sampling`)."""
        bound = self.group_constraints
        index = ConstraintIndex.from_spec(bound.spec, bound.n_groups)
        check_constraints_per_step(k, index.n_constraints)
        self.constraints_per_step, self._index = int(k), index
        self._subset_samplers: dict[int, SubsetSampler] = {}
        self._overall: dict[tuple[int, int], EpochSampler] = {}

    def draw_constraint_subset(self, stream: int = 0) -> ConstraintSubset:
        """k of the m constraints, uniformly without replacement, from subset stream ``stream``."""
        sampler = self._subset_samplers.get(stream)
        if sampler is None:
            sampler = self._subset_samplers[stream] = SubsetSampler(
                self._index, self.constraints_per_step, stream_rng(self.streams.seed, SUBSET_KIND, stream))
        return sampler.draw()

    def _overall_sampler(self, stream: int, block: int) -> EpochSampler:
        """Uniform rows of label block ``block`` (all rows for an unconditional statistic)."""
        sampler = self._overall.get((stream, block))
        if sampler is None:
            labels = CELL_LABELS[self._statistic]
            y = self.train.y.numpy()
            rows = np.arange(len(y)) if labels is None else np.flatnonzero((y > 0.5) == (labels[block] == 1))
            sampler = self._overall[(stream, block)] = EpochSampler(
                len(rows), stream_rng(self.streams.seed, SUBSET_KIND + 1, stream * 16 + block), values=rows)
        return sampler

    def _subset_rows(self, per_group: int, stream: int, subset: ConstraintSubset) -> np.ndarray:
        """``per_group`` rows of every cell ``subset`` involves (overall cells: uniform rows),
        cell by cell in ``subset.cells`` order; counted as samples."""
        cells = self.streams.constraint_sampler(stream).samplers
        n_cells = self._index.n_cells
        rows = np.concatenate([cells[c].draw(per_group) if c < n_cells
                               else self._overall_sampler(stream, c - n_cells).draw(per_group)
                               for c in subset.cells])
        self.counters.samples += len(rows)
        return rows

    def _sample_subset(self, per_group: int, stream: int, subset: ConstraintSubset) -> Batch:
        rows = self._subset_rows(per_group, stream, subset)
        return Batch(len(rows), torch.from_numpy(rows), per_group=per_group, extra={"subset": subset})

    # -- model evaluation ----------------------------------------------------------------
    def _losses(self, rows: torch.Tensor) -> torch.Tensor:
        logits = self.model(self.train.X[rows])
        return F.binary_cross_entropy_with_logits(logits, self.train.y[rows], reduction="none")

    def _row_stats(self, rows: torch.Tensor) -> torch.Tensor:
        """The statistic's per-row quantity on constraint rows (the BCE for ``loss``)."""
        if self._statistic == "loss":
            return self._losses(rows)
        return row_values_torch(self._statistic, self.model(self.train.X[rows]), self.train.y[rows],
                                self._temperature)

    def _group_stats(self, losses: torch.Tensor, per_group: int) -> torch.Tensor:
        return losses.view(self._n_groups, per_group).mean(dim=1)

    def _constraint_values(self, stats: torch.Tensor) -> torch.Tensor:
        return self.group_constraints.values(stats, self._matrix)

    def _backward(self, value: torch.Tensor, rows: int, retain: bool = False) -> np.ndarray:
        self.flat_grad.zero_()
        value.backward(retain_graph=retain)
        self.counters.grad_evals += rows
        return self.flat_grad.numpy().copy()

    def objective(self, batch: Batch, grad: bool = False) -> tuple[float, np.ndarray | None]:
        with torch.set_grad_enabled(grad):
            f = self._losses(batch.data).mean()
        return float(f.detach()), (self._backward(f, batch.size) if grad else None)

    def _subset_values(self, values: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell statistics and ``c_S`` of a subset batch from its per-row quantities."""
        subset = batch.extra["subset"]
        stats = values.view(len(subset.cells), batch.per_group).mean(dim=1)
        return stats, self._index.values(stats, subset)

    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        if "subset" in batch.extra:
            return self._subset_constraints(batch, jac)
        if self.group_constraints is None:
            return np.zeros(0, dtype=self.x.dtype), (np.zeros((0, self.x.size), self.x.dtype) if jac else None)
        with torch.set_grad_enabled(jac):
            stats = self._group_stats(self._row_stats(batch.data), batch.per_group)
            c = self._constraint_values(stats)
        c_np = c.detach().numpy().astype(self.x.dtype)
        if not jac:
            return c_np, None
        # G backward passes (one per group statistic) instead of m: J = dc/ds @ ds/dx.
        stat_grads = np.stack(
            [self._backward(stats[g], 0, retain=g < self._n_groups - 1) for g in range(self._n_groups)]
        )
        self.counters.grad_evals += batch.size
        jmap = self.group_constraints.jacobian_map(stats.detach().numpy())
        return c_np, (jmap @ stat_grads).astype(self.x.dtype)

    def _subset_constraints(self, batch: Batch, jac: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``c_S`` (k,) and, with ``jac``, its (k, n) Jacobian: one backward pass per involved cell."""
        with torch.set_grad_enabled(jac):
            stats, c = self._subset_values(self._row_stats(batch.data), batch)
        c_np = c.detach().numpy().astype(self.x.dtype)
        if not jac:
            return c_np, None
        n = len(stats)
        stat_grads = np.stack([self._backward(stats[i], 0, retain=i < n - 1) for i in range(n)])
        self.counters.grad_evals += batch.size
        jmap = self._index.jacobian_map(stats.detach().numpy(), batch.extra["subset"])
        return c_np, (jmap @ stat_grads).astype(self.x.dtype)

    def lagrangian_grad(
        self, obj_batch: Batch | None, con_batch: Batch, weights: Weights
    ) -> tuple[float, np.ndarray, np.ndarray]:
        n_obj = 0 if obj_batch is None else obj_batch.size
        rows = con_batch.data if obj_batch is None else torch.cat([obj_batch.data, con_batch.data])
        if self._statistic == "loss":
            losses = self._losses(rows)  # one forward pass for both batches
            f = losses[:n_obj].mean() if n_obj else losses.new_zeros(())
            con_values = losses[n_obj:]
        else:
            z = self.model(self.train.X[rows])
            y = self.train.y[rows]
            f = (F.binary_cross_entropy_with_logits(z[:n_obj], y[:n_obj]) if n_obj else z.new_zeros(()))
            con_values = row_values_torch(self._statistic, z[n_obj:], y[n_obj:], self._temperature)
        if "subset" in con_batch.extra:
            c = self._subset_values(con_values, con_batch)[1]
        else:
            c = self._constraint_values(self._group_stats(con_values, con_batch.per_group))
        c_np = c.detach().numpy().astype(self.x.dtype)
        w = weights(c_np) if callable(weights) else weights
        total = f + (torch.as_tensor(w, dtype=c.dtype) * c).sum()
        g = self._backward(total, n_obj + con_batch.size)
        return float(f.detach()), c_np, g

    def custom_grad(
        self, batch: Batch, loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> tuple[float, np.ndarray]:
        """Value and gradient of ``loss_fn(logits, y, group)`` on ``batch``.

        For methods that train on a loss of the model's outputs other than ``f`` (e.g. a
        fairret regulariser); the loss sees the logits, labels and group ids of the batch.
        """
        rows = batch.data
        value = loss_fn(self.model(self.train.X[rows]), self.train.y[rows], self.train.group[rows])
        return float(value.detach()), self._backward(value, batch.size)
