"""All seeds at once: S copies of the census MLP, one per seed, trained together in one process.

A run's seeds share the data, the architecture and the algorithm; they differ in the initial
weights and in the random streams. :class:`StackedMLPOracle` holds the S models' parameters
as the rows of one (S, P) float32 array ``x`` and evaluates all of them with one batched numpy
pass (:class:`~fairbench.backends.numpy_mlp.NumpyMLPMath`, the single-seed fast path's code
with a leading seed axis: every product is an ``np.matmul`` over the seeds). Per step that is
one Python/numpy call sequence for S models instead of S sequences, which is where a small
MLP's time goes.

Per seed, everything is what a single-seed run of that seed does:

- **parameters**: row s of ``x`` is the flat parameter buffer of seed s's torch model (its
  ``nn.Linear`` weights and biases are views of that row, as
  :func:`~fairbench.problems.fairness.flatten_parameters` makes them), so the runner evaluates
  each seed's model with torch exactly as before;
- **sampling**: seed s's objective and constraint streams are built from
  ``SeedSequence(seed, spawn_key=(kind, stream))`` with the same :class:`EpochSampler` /
  :class:`GroupSampler` objects as :class:`~fairbench.problems.fairness.FairnessOracle`, so its
  batches are the rows a single-seed run draws (:class:`StackedSampler`);
- **numbers**: the same float32 operations on the same shapes, so the values agree with
  :class:`~fairbench.backends.numpy_oracle.NumpyMLPOracle` (bitwise, in the tests so far).

Shapes: batches carry (S, n) row arrays; ``objective`` returns ``f`` (S,) and ``g`` (S, P);
``constraints`` ``c`` (S, m) and ``J`` (S, m, P); ``lagrangian_grad`` ``f`` (S,), ``c`` (S, m),
``g`` (S, P), with weights (S, m) (or (m,), shared) or a callable of ``c`` (S, m) returning
them. Counters are per seed (:class:`StackedCounters`: int64 arrays of shape (S,)).

Methods that step every seed alike (SGD, SSL-ALM, ALM) draw for all seeds. A method whose
seeds take different branches (the switching subgradient) passes ``active`` (a boolean (S,)
mask) to ``sample_*``: only those seeds draw (and are counted); the batch's rows for the
others are placeholders, and the evaluation methods return NaN values and zero gradients for
them (the caller ignores those rows).

Stacking applies to the fast path only: :func:`fairbench.backends.stacking.stacked_oracle` builds
the stacked version of the oracle a problem would build per seed (``constrained``,
``unconstrained``, and ``penalized`` through :class:`StackedPenalizedOracle`) when
:func:`~fairbench.backends.stacking.can_stack` allows it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fairbench.backends.numpy_mlp import NumpyMLPMath, _layers, check_flat_layout
from fairbench.backends.numpy_oracle import NumpyMLPOracle
from fairbench.problems.base import Batch, Oracle, Weights, Weights2
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import TensorSplit, constraint_cells
from fairbench.problems.penalized import PenalizedOracle
from fairbench.problems.penalty import penalty_slope, penalty_value
from fairbench.problems.sampling import EpochSampler, GroupSampler, SamplingStreams

_F32 = np.float32


def _blank_idle(active: np.ndarray | None, value: np.ndarray, derivative: np.ndarray | None) -> None:
    """Seeds that drew no rows (``active`` False) get NaN values and zero derivatives, in place."""
    if active is None:
        return
    value[~active] = np.nan
    if derivative is not None:
        derivative[~active] = 0.0


class StackedCounters:
    """Per-seed :class:`~fairbench.problems.base.Counters`: ``samples`` and ``grad_evals`` are
    int64 arrays of shape (S,); ``counters.samples += n`` adds to every seed."""

    def __init__(self, n_seeds: int):
        self.samples = np.zeros(n_seeds, dtype=np.int64)
        self.grad_evals = np.zeros(n_seeds, dtype=np.int64)

    def __repr__(self) -> str:
        return f"StackedCounters(samples={self.samples.tolist()}, grad_evals={self.grad_evals.tolist()})"


def _counts(size: int, active: np.ndarray | None):
    """What a draw or a backward pass of ``size`` rows adds to per-seed counters."""
    return size if active is None else size * active


class StackedSampler:
    """The samplers of S seeds, drawn together; seed s gets exactly the rows its own sampler gives.

    ``samplers[s]`` is seed s's :class:`EpochSampler` (an objective stream) or
    :class:`GroupSampler` (a constraint stream). The stacked sampler keeps a table of every
    seed's current permutation(s) of row indices and every seed's position in it, so a draw
    that stays inside the current pass is one fancy index for all seeds. A seed whose draw
    reaches the end of a pass goes through its own sampler object (its position synchronised
    first), which draws the fresh permutation from that seed's generator exactly as a
    single-seed run does; its table row is then refreshed.

    ``draw(size, active)``: ``active`` (bool (S,)) restricts the draw to some seeds; the others
    keep their position and get placeholder rows. Until the first such draw the seeds move in
    lockstep and a draw is a slice of the table per group.
    """

    def __init__(self, samplers: list[EpochSampler] | list[GroupSampler]):
        self._samplers = list(samplers)
        self._grouped = isinstance(self._samplers[0], GroupSampler)
        if self._grouped:
            self._units = [list(s.samplers) for s in self._samplers]
            self._limit = self._samplers[0].smallest
        else:
            self._units = [[s] for s in self._samplers]
            self._limit = self._samplers[0].n
        sizes = np.array([unit.n for unit in self._units[0]], dtype=np.int64)
        for units in self._units:
            if [unit.n for unit in units] != sizes.tolist():
                raise ValueError("the seeds of a stack must sample from the same data")
        self._n = sizes                                            # (G,) rows per group
        self._offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        n_seeds = len(self._samplers)
        self._table = np.empty((n_seeds, int(sizes.sum())), dtype=np.int64)
        self._pos = np.empty((n_seeds, len(sizes)), dtype=np.int64)
        self._seed_index = np.arange(n_seeds)[:, None]
        self._cols: dict[int, np.ndarray] = {}
        self._copied_passes = [[-1] * len(sizes) for _ in range(n_seeds)]  # per seed and group
        for s in range(n_seeds):
            self._refresh(s)
        self._n_list, self._offsets_list = sizes.tolist(), self._offsets.tolist()
        # while every seed has drawn the same sizes (no ``active`` draw yet), the seeds share
        # their positions: ``_shared`` (one per group) stands for every row of ``_pos``
        self._shared: list[int] | None = self._pos[0].tolist() if (self._pos == self._pos[0]).all() else None
        self._room = self._shared_room()

    def _shared_room(self) -> int:
        """Rows a lockstep draw may take before some group's pass ends (0 when not in lockstep)."""
        return 0 if self._shared is None else min(n - p for p, n in zip(self._shared, self._n_list))

    def _refresh(self, s: int) -> None:
        """Copy seed s's permutation(s) and position(s) from its sampler objects (a group's
        permutation only when its sampler began a new pass since the last copy)."""
        copied = self._copied_passes[s]
        for g, unit in enumerate(self._units[s]):
            if copied[g] != unit.passes:
                start = self._offsets[g]
                self._table[s, start:start + unit.n] = unit._drawn  # the rows its draws return
                copied[g] = unit.passes
            self._pos[s, g] = unit._pos

    def _check(self, size: int) -> None:
        # the single-seed samplers' checks and messages
        if self._grouped:
            if not 0 < size <= self._limit:
                raise ValueError(
                    f"{size} rows per group without replacement: the smallest group has {self._limit}"
                )
        elif size > self._limit:
            raise ValueError(f"batch of {size} rows from {self._limit} rows without replacement")

    def draw(self, size: int, active: np.ndarray | None = None) -> np.ndarray:
        """Rows (S, G * size) (groups in order) or (S, size) for an objective stream."""
        self._check(size)
        if active is None and self._shared is not None:
            return self._draw_shared(size)
        if self._shared is not None:  # the seeds' positions part ways from here on
            self._pos[:] = self._shared
            self._shared = None
        cols = self._cols.get(size)
        if cols is None:
            cols = self._cols[size] = (self._offsets[:, None] + np.arange(size)).ravel()
        pos = self._pos
        crossing = (pos + size > self._n).any(axis=1)
        if active is not None:
            crossing &= active
        fast = ~crossing if active is None else active & ~crossing
        every = bool(fast.all())
        start = pos if every else np.where(fast[:, None], pos, 0)
        rows = self._table[self._seed_index, cols + np.repeat(start, size, axis=1)]
        if every:
            pos += size
        else:
            pos[fast] += size
            for s in np.flatnonzero(crossing):
                self._draw_own(s, size, rows)
        return rows

    def _draw_own(self, s: int, size: int, rows: np.ndarray) -> None:
        """Seed s's draw through its own sampler (at a pass boundary) into ``rows[s]``."""
        for unit, p in zip(self._units[s], self._pos[s]):
            unit._pos = int(p)
        rows[s] = self._samplers[s].draw(size)
        self._refresh(s)

    def _draw_shared(self, size: int) -> np.ndarray:
        """Lockstep draws (every seed drew the same sizes so far): one position per group for
        all seeds, plain slices of the table; every seed reaches a pass boundary at the same draw."""
        shared = self._shared
        if size > self._room:  # some group's pass ends within this draw
            self._pos[:] = shared
            rows = np.empty((len(self._samplers), len(shared) * size), dtype=np.int64)
            for s in range(len(self._samplers)):
                self._draw_own(s, size, rows)
            if (self._pos != self._pos[0]).any():  # (cannot happen: same sizes, same data)
                self._shared = None
            else:
                self._shared = self._pos[0].tolist()
            self._room = self._shared_room()
            return rows
        rows = np.empty((len(self._samplers), len(shared) * size), dtype=np.int64)
        self._slice_shared(size, rows)
        return rows

    def _slice_shared(self, size: int, out: np.ndarray) -> None:
        """A lockstep draw that stays inside every group's pass (``size <= _room``): one slice of
        the table per group into ``out`` (S, G * size), every seed's positions moved on."""
        self._room -= size
        shared, table = self._shared, self._table
        for g, o in enumerate(self._offsets_list):
            p = shared[g]
            out[:, g * size:(g + 1) * size] = table[:, o + p:o + p + size]
            shared[g] = p + size

    def draw_into(self, size: int, out: np.ndarray) -> None:
        """:meth:`draw` for every seed (no ``active``) written into ``out`` (S, G * size): in
        lockstep within a pass, one slice assignment per group, no new arrays."""
        if self._shared is None or size > self._room:
            out[...] = self.draw(size)
            return
        self._check(size)
        self._slice_shared(size, out)


def _share_parameters(model: nn.Module, row: torch.Tensor, grad_row: torch.Tensor) -> None:
    """Re-point ``model``'s parameters (and their gradients) into the 1-D buffers ``row`` and
    ``grad_row`` (as :func:`~fairbench.problems.fairness.flatten_parameters`, into given rows)."""
    offset = 0
    for p in model.parameters():
        n = p.numel()
        row[offset:offset + n].copy_(p.data.reshape(-1))
        p.data = row[offset:offset + n].view_as(p)
        p.grad = grad_row[offset:offset + n].view_as(p)
        offset += n


class StackedMLPOracle(NumpyMLPMath, Oracle):
    """The census oracle for S seeds at once (see the module doc).

    Parameters
    ----------
    models : one fairbench ``MLP`` per seed, all of one architecture (each built after
        ``torch.manual_seed(seed)``, as the runner does); their parameters move into the rows
        of one (S, P) buffer.
    train, n_groups, constraints : as :class:`~fairbench.problems.fairness.FairnessOracle`.
    seeds : the seeds (entropy of each row's sampling streams), distinct.
    """

    #: marks a stacked oracle (``x`` of shape (S, P)); see :func:`is_stacked`
    stacked = True
    #: :func:`~fairbench.backends.oracles.oracle_path`'s name for this oracle
    fast_path_name = "numpy-stacked"

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """The single-seed fast path's rule (:meth:`NumpyMLPOracle.supports`)."""
        return NumpyMLPOracle.supports(model)

    def __init__(
        self,
        models: list[nn.Module],
        train: TensorSplit,
        n_groups: int,
        constraints: GroupConstraints | None,
        seeds: list[int],
    ):
        models, seeds = list(models), [int(s) for s in seeds]
        if not models or len(models) != len(seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("a stack needs one model per seed and distinct seeds")
        found = [_layers(model) for model in models]
        if any(f is None for f in found):
            bad = next(m for m, f in zip(models, found) if f is None)
            raise TypeError(f"StackedMLPOracle does not support {type(bad).__name__}; use FairnessOracle per seed")
        linears, acts = found[0]
        arch = [(lin.in_features, lin.out_features) for lin in linears], acts
        if any(([(lin.in_features, lin.out_features) for lin in lins], a) != arch for lins, a in found):
            raise ValueError("the models of a stack must share one architecture")
        if train.X.shape[1] != linears[0].in_features:
            raise ValueError(f"model takes {linears[0].in_features} features, the data has {train.X.shape[1]}")
        self.models, self.seeds, self.train = models, seeds, train
        self._n_groups = n_groups
        self.group_constraints = constraints
        self.n_constraints = 0 if constraints is None else constraints.n_constraints
        self.constraint_names = [] if constraints is None else list(constraints.names)
        n_params = sum(p.numel() for p in models[0].parameters())
        self.flat = torch.zeros((len(models), n_params), dtype=torch.float32)
        self.flat_grad = torch.zeros((len(models), n_params), dtype=torch.float32)
        for s, (model, (lins, _)) in enumerate(zip(models, found)):
            _share_parameters(model, self.flat[s], self.flat_grad[s])
            check_flat_layout(lins, self.flat[s])
        self.x = self.flat.numpy()
        self.counters = StackedCounters(len(models))
        rows_of = constraint_cells(train, n_groups, constraints)
        self.streams = [SamplingStreams(len(train), rows_of, s) for s in seeds]
        self._objective_sampler = StackedSampler([st.objective for st in self.streams])
        self._constraint_samplers: dict[int, StackedSampler] = {}
        self._init_math(linears, acts, train.X.numpy(), train.y.numpy(), constraints)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def n_groups(self) -> int:
        return self._n_groups

    @property
    def smallest_group(self) -> int:
        """Training rows of the smallest group: the largest possible ``per_group``."""
        return self.streams[0].smallest_group

    def finite_seeds(self) -> np.ndarray:
        """(S,) bool: which rows of ``x`` hold only finite numbers."""
        return np.isfinite(self.x).all(axis=1)

    # -- sampling ------------------------------------------------------------------------
    def sample_objective(self, size: int, active: np.ndarray | None = None) -> Batch:
        rows = self._objective_sampler.draw(size, active)
        self.counters.samples += _counts(size, active)
        return Batch(size, rows, extra={} if active is None else {"active": active})

    def _constraint_sampler(self, stream: int) -> StackedSampler:
        sampler = self._constraint_samplers.get(stream)
        if sampler is None:
            sampler = self._constraint_samplers[stream] = StackedSampler(
                [st.constraint_sampler(stream) for st in self.streams]
            )
        return sampler

    def sample_constraints(self, per_group: int, stream: int = 0, active: np.ndarray | None = None) -> Batch:
        rows = self._constraint_sampler(stream).draw(per_group, active)
        n = rows.shape[1]
        self.counters.samples += _counts(n, active)
        return Batch(n, rows, per_group=per_group, extra={} if active is None else {"active": active})

    # -- evaluation ----------------------------------------------------------------------
    def objective(self, batch: Batch, grad: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        f, g = self._objective_np(batch.data, grad)
        active = batch.extra.get("active")
        if grad:
            self.counters.grad_evals += _counts(batch.size, active)
        _blank_idle(active, f, g)
        return f, g

    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        S, P = self.x.shape
        active = batch.extra.get("active")
        if self.group_constraints is None:
            return np.zeros((S, 0), dtype=_F32), (np.zeros((S, 0, P), dtype=_F32) if jac else None)
        c, J = self._constraints_np(batch.data, batch.per_group, jac)
        if jac:
            self.counters.grad_evals += _counts(batch.size, active)
        _blank_idle(active, c, J)
        return c, J

    def lagrangian_grad(
        self, obj_batch: Batch | None, con_batch: Batch, weights: Weights
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        S = self.x.shape[0]
        con_active = con_batch.extra.get("active")
        if self.group_constraints is None:
            if obj_batch is None:
                f, g = np.zeros(S), np.zeros_like(self.x)
            else:
                f, g = self.objective(obj_batch, grad=True)
            self.counters.grad_evals += _counts(con_batch.size, con_active)
            return f, np.zeros((S, 0), dtype=_F32), g
        obj_rows = None if obj_batch is None else obj_batch.data
        f, c, g = self._lagrangian_np(obj_rows, con_batch.data, con_batch.per_group, weights)
        f = np.zeros(S) if f is None else f.astype(np.float64)
        if obj_batch is not None:
            obj_active = obj_batch.extra.get("active")
            self.counters.grad_evals += _counts(obj_batch.size, obj_active)
            if obj_active is not None:
                f[~obj_active] = np.nan
        self.counters.grad_evals += _counts(con_batch.size, con_active)
        idle = None
        for active in (con_active, None if obj_batch is None else obj_batch.extra.get("active")):
            if active is not None:
                idle = ~active if idle is None else idle & ~active
        if idle is not None:  # seeds that drew neither batch
            c[idle] = np.nan
            g[idle] = 0.0
        return f, c, g

    def lagrangian_grad_and_values(
        self, obj_batch: Batch | None, con_batch: Batch, value_batch: Batch, weights: Weights2
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        masked = "active" in con_batch.extra or "active" in value_batch.extra or (
            obj_batch is not None and "active" in obj_batch.extra)
        if (self._fused_values and self.group_constraints is not None and not masked
                and value_batch.per_group == con_batch.per_group):
            obj_rows = None if obj_batch is None else obj_batch.data
            f, c, v, g = self._lagrangian_values_np(obj_rows, con_batch.data, value_batch.data, con_batch.per_group,
                                                    weights)
            self.counters.grad_evals += (0 if obj_batch is None else obj_batch.size) + con_batch.size
            return (np.zeros(self.x.shape[0]) if f is None else f.astype(np.float64)), c, v, g
        return super().lagrangian_grad_and_values(obj_batch, con_batch, value_batch, weights)

    def sample_lagrangian_grad_and_values(
        self, batch_size: int, per_group: int, weights: Weights2, streams: tuple[int, int] = (0, 1)
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.group_constraints is None or not self._fused_values:
            return super().sample_lagrangian_grad_and_values(batch_size, per_group, weights, streams)
        n_con = self._n_groups * per_group
        rows = np.empty((self.x.shape[0], batch_size + 2 * n_con), dtype=np.int64)
        self._objective_sampler.draw_into(batch_size, rows[:, :batch_size])
        self._constraint_sampler(streams[0]).draw_into(per_group, rows[:, batch_size:batch_size + n_con])
        self._constraint_sampler(streams[1]).draw_into(per_group, rows[:, batch_size + n_con:])
        self.counters.samples += rows.shape[1]
        f, c, v, g = self._lagrangian_values_rows(rows, batch_size, per_group, weights)
        self.counters.grad_evals += batch_size + n_con
        return (np.zeros(self.x.shape[0]) if f is None else f.astype(np.float64)), c, v, g


def is_stacked(oracle) -> bool:
    """True for a stacked oracle (``x`` of shape (S, P)), also inside a wrapper."""
    return bool(getattr(getattr(oracle, "inner", oracle), "stacked", False))


class StackedPenalizedOracle(PenalizedOracle):
    """:class:`~fairbench.problems.penalized.PenalizedOracle` over a :class:`StackedMLPOracle`:
    the same batches and formula per seed, with values (S,) and gradients (S, P)."""

    stacked = True

    def _penalty(self, c: np.ndarray) -> np.ndarray:
        """:func:`~fairbench.problems.penalty.penalty_value` of every seed's ``c`` (S, m), as float64 (S,)."""
        if self.penalty == "positive":
            per_seed = np.maximum(c, 0.0).sum(axis=-1)
        elif self.penalty == "squared":
            per_seed = (np.maximum(c, 0.0) ** 2).sum(axis=-1)
        elif self.penalty == "abs":
            per_seed = np.abs(c + self.delta).sum(axis=-1)
        else:  # a penalty this vectorised form does not know: the single-seed function per seed
            return np.array([penalty_value(self.penalty, row, self.delta) for row in c])
        return per_seed.astype(np.float64)

    def objective(self, batch: Batch, grad: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        obj, con = batch.data
        if not grad:
            f, _ = self.inner.objective(obj)
            c, _ = self.inner.constraints(con)
            return f + self.weight * self._penalty(c), None
        f, c, g = self.inner.lagrangian_grad(
            obj, con, lambda c: self.weight * penalty_slope(self.penalty, c, self.delta)
        )
        return f + self.weight * self._penalty(c), g

    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        S, P = self.x.shape
        return np.zeros((S, 0), _F32), (np.zeros((S, 0, P), _F32) if jac else None)

    def lagrangian_grad(self, obj_batch: Batch | None, con_batch: Batch, weights: Weights):
        S = self.x.shape[0]
        f, g = self.objective(obj_batch, grad=True) if obj_batch is not None else (np.zeros(S), np.zeros_like(self.x))
        return f, np.zeros((S, 0), _F32), g

    def finite_seeds(self) -> np.ndarray:
        return self.inner.finite_seeds()
