"""The numpy fast path of the census oracle: :class:`NumpyMLPOracle`, the autograd
:class:`~fairbench.problems.fairness.FairnessOracle` with every computation on the numpy maths of
:mod:`fairbench.backends.numpy_mlp` (same constructor, sampling streams, counters, balanced
batches, constraint values and Jacobian semantics).

Batches drawn by this oracle carry their rows as a numpy ``int64`` array in ``Batch.data``
(the autograd oracle uses a torch tensor of the same indices; both index a torch tensor or
a numpy array alike). Every method accepts either.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from fairbench.backends.numpy_mlp import NumpyMLPMath, _layers, _rows, check_flat_layout
from fairbench.backends.numpy_subset import SubsetSteps, is_subset
from fairbench.problems.base import Batch, Weights, Weights2
from fairbench.problems.constraint_sampling import ConstraintSubset
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import FairnessOracle, TensorSplit

_F32 = np.float32


class NumpyMLPOracle(SubsetSteps, NumpyMLPMath, FairnessOracle):
    """:class:`FairnessOracle` with a numpy forward/backward of a fairbench :class:`MLP`.

    Same constructor and semantics as :class:`FairnessOracle` (see the module doc); raises
    ``TypeError`` for a model :meth:`supports` rejects. ``objective``, ``constraints``,
    ``objective_and_constraints`` and ``lagrangian_grad`` are numpy (:class:`NumpyMLPMath`);
    :meth:`custom_grad` (arbitrary torch losses of the logits) runs the MLP in numpy and only
    the loss of the logits in autograd. With ``enable_constraint_sampling`` (k of m constraints
    per step) the subset batches run on :class:`~fairbench.backends.numpy_subset.SubsetSteps`.

    A float64 model (with float64 features and labels) is accepted by the constructor, for
    tests that compare with the autograd oracle in double precision; :meth:`supports` (what
    :func:`~fairbench.backends.oracles.build_fairness_oracle` asks) accepts float32 only.
    """

    #: :func:`oracle_path`'s name for this oracle
    fast_path_name = "numpy"

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """True for a fairbench ``MLP`` this oracle can evaluate exactly (float32 Linear
        layers with bias, ReLU/Tanh/Sigmoid activations, no hooks, ``forward`` not overridden)."""
        return _layers(model) is not None

    def __init__(
        self,
        model: nn.Module,
        train: TensorSplit,
        n_groups: int,
        constraints: GroupConstraints | None,
        seed: int,
    ):
        found = _layers(model) or _layers(model, dtype=torch.float64)
        if found is None:
            raise TypeError(f"NumpyMLPOracle does not support {type(model).__name__}; use FairnessOracle")
        linears, acts = found
        if train.X.shape[1] != linears[0].in_features:
            raise ValueError(f"model takes {linears[0].in_features} features, the data has {train.X.shape[1]}")
        super().__init__(model, train, n_groups, constraints, seed)
        self._groups = train.group.numpy()
        check_flat_layout(linears, self.flat)
        self._init_math(linears, acts, train.X.numpy(), train.y.numpy(), constraints)

    # -- sampling (same streams as FairnessOracle; rows stay numpy) -------------------------
    def sample_objective(self, size: int) -> Batch:
        rows = self.streams.objective.draw(size)
        self.counters.samples += size
        return Batch(size, rows)

    def sample_constraints(self, per_group: int, stream: int = 0, subset: ConstraintSubset | None = None) -> Batch:
        if subset is not None:
            return self._sample_subset(per_group, stream, subset)
        rows = self.streams.constraint_sampler(stream).draw(per_group)
        n = rows.size
        self.counters.samples += n
        return Batch(n, rows, per_group=per_group)

    # -- oracle interface ------------------------------------------------------------------
    def objective(self, batch: Batch, grad: bool = False) -> tuple[float, np.ndarray | None]:
        f, g = self._objective_np(_rows(batch), grad)
        if grad:
            self.counters.grad_evals += batch.size
        return f, g

    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        if is_subset(batch):
            return self._subset_constraints(batch, jac)
        if self.group_constraints is None:
            return super().constraints(batch, jac)
        c, J = self._constraints_np(_rows(batch), batch.per_group, jac)
        if jac:
            self.counters.grad_evals += batch.size
        return c, J

    def objective_and_constraints(
        self, obj_batch: Batch, con_batch: Batch
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        if self.group_constraints is None:
            return super().objective_and_constraints(obj_batch, con_batch)
        f, g, c, J = self._objective_and_constraints_np(_rows(obj_batch), _rows(con_batch), con_batch.per_group)
        self.counters.grad_evals += obj_batch.size + con_batch.size
        return f, g, c, J

    def objective_and_constraints_halves(self, obj_batch: Batch, con_batch: Batch):
        if self.group_constraints is not None:
            sets = self._halves_np(_rows(obj_batch), _rows(con_batch), con_batch.per_group)
            if sets is not None:
                self.counters.grad_evals += 2 * (obj_batch.size + con_batch.size)  # as the three calls
                return sets
        return super().objective_and_constraints_halves(obj_batch, con_batch)

    def lagrangian_grad(
        self, obj_batch: Batch | None, con_batch: Batch, weights: Weights
    ) -> tuple[float, np.ndarray, np.ndarray]:
        if is_subset(con_batch):
            return self._subset_lagrangian(obj_batch, con_batch, weights)
        if self.group_constraints is None:
            # (the autograd oracle has no constraints to add here either): f and grad f only
            f, g = (0.0, np.zeros_like(self.x)) if obj_batch is None else self.objective(obj_batch, grad=True)
            self.counters.grad_evals += con_batch.size
            return f, np.zeros(0, dtype=_F32), g
        obj_rows = None if obj_batch is None else _rows(obj_batch)
        f, c, g = self._lagrangian_np(obj_rows, _rows(con_batch), con_batch.per_group, weights)
        self.counters.grad_evals += (0 if obj_batch is None else obj_batch.size) + con_batch.size
        return (0.0 if f is None else float(f)), c, g

    def lagrangian_grad_and_values(
        self, obj_batch: Batch | None, con_batch: Batch, value_batch: Batch, weights: Weights2
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        if self._fused_values and self.group_constraints is not None and value_batch.per_group == con_batch.per_group:
            obj_rows = None if obj_batch is None else _rows(obj_batch)
            f, c, v, g = self._lagrangian_values_np(obj_rows, _rows(con_batch), _rows(value_batch),
                                                    con_batch.per_group, weights)
            self.counters.grad_evals += (0 if obj_batch is None else obj_batch.size) + con_batch.size
            return (0.0 if f is None else float(f)), c, v, g
        return super().lagrangian_grad_and_values(obj_batch, con_batch, value_batch, weights)

    def sample_lagrangian_grad_and_values(
        self, batch_size: int, per_group: int, weights: Weights2, streams: tuple[int, int] = (0, 1)
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        if self.group_constraints is None or not self._fused_values:
            return super().sample_lagrangian_grad_and_values(batch_size, per_group, weights, streams)
        n_con = self._n_groups * per_group
        rows = np.empty(batch_size + 2 * n_con, dtype=np.int64)
        rows[:batch_size] = self.streams.objective.draw(batch_size)
        self.streams.constraint_sampler(streams[0]).draw_into(per_group, rows[batch_size:batch_size + n_con])
        self.streams.constraint_sampler(streams[1]).draw_into(per_group, rows[batch_size + n_con:])
        self.counters.samples += rows.size
        f, c, v, g = self._lagrangian_values_rows(rows, batch_size, per_group, weights)
        self.counters.grad_evals += batch_size + n_con
        return (0.0 if f is None else float(f)), c, v, g

    def logit_grad(
        self, batch: Batch, loss_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, np.ndarray]]
    ) -> tuple[float, np.ndarray]:
        """Value and gradient of a loss of the logits given in numpy with its own derivative:
        ``loss_fn(z, y, group) -> (value, dvalue/dz)``; no autograd at all."""
        rows = _rows(batch)
        z, hs = self._forward(self._X[rows])
        value, dz = loss_fn(z, self._y[rows], self._groups[rows])
        self.counters.grad_evals += batch.size
        return float(value), self._np_backward(np.asarray(dz, dtype=_F32), hs)

    def custom_grad(
        self, batch: Batch, loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> tuple[float, np.ndarray]:
        """Value and gradient of ``loss_fn(logits, y, group)`` (any torch loss of the logits).

        The MLP runs forward and backward in numpy; only the loss itself goes through
        autograd, on the B logits, to get ``d loss / d logits`` for the numpy backward pass.
        """
        rows = _rows(batch)
        z, hs = self._forward(self._X[rows])
        logits = torch.from_numpy(np.array(z, dtype=_F32)).requires_grad_(True)
        index = torch.from_numpy(rows)
        value = loss_fn(logits, self.train.y[index], self.train.group[index])
        (dz,) = torch.autograd.grad(value, logits)
        self.counters.grad_evals += batch.size
        return float(value.detach()), self._np_backward(dz.numpy(), hs)
