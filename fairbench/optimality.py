"""First-order optimality of an iterate on the whole training split (trajectory columns).

For ``min f(x) s.t. c(x) <= 0`` with Lagrangian ``L(x, lam) = f(x) + lam^T c(x)`` the KKT
conditions are (Nocedal & Wright, *Numerical Optimization*, 2nd ed., Thm 12.1)::

    grad f(x) + J(x)^T lam = 0,   c(x) <= 0,   lam >= 0,   lam_j c_j(x) = 0.

Every log point adds two columns measuring the first and last of them, with ``f``, ``c``, the
gradient and the Jacobian on the full training split (what the trajectory's ``train_loss``
and ``train_c<j>`` report); the middle ones are ``train_max_violation`` and the sign of lam:

- ``train_stationarity`` = ``||grad f(x) + J(x)^T lam||_2``;
- ``train_complementarity`` = ``sum_j |lam_j c_j(x)|``.

``lam`` is the method's own multiplier vector (``algo.multipliers``, one entry per constraint)
when it keeps one for these constraints. A method that keeps none (SGD, a penalty, Ghost,
an unconstrained or penalized formulation) is measured with **least-squares multipliers**,
the nonnegative lam that minimises the whole KKT residual of stationarity and
complementarity::

    lam = argmin_{lam >= 0} ||grad f + J^T lam||^2 + sum_j (lam_j c_j)^2,

a nonnegative least-squares problem with the matrix ``[J^T; diag(c)]``, solved by the
active-set method of Lawson & Hanson (*Solving Least Squares Problems*, 1974, ch. 23) in
:func:`nnls` (numpy only: a training job does not import ``scipy.optimize``). It needs no activity threshold: a constraint far from its bound
(``|c_j|`` large) gets a multiplier only if it buys much stationarity, and what it gets shows
in the complementarity column; an active one (``c_j = 0``) is free.

Cost: one forward and one backward pass over the training rows per log point (the log points'
training rows: the evaluation's fixed stratified subsample of them when ``eval.subsample`` is
set, else the whole split; those of ``train_loss`` and ``train_c<j>``), outside the timed
region. The G group-mean gradients give both ``grad f = sum_g (n_g / n) grad s_g`` and
``J = dc/ds @ [grad s_g]``; a rate statistic (``problem.statistic`` other than ``loss``) takes
its cells' soft rates instead, ``J = dc/ds @ [grad s_cell]``, backpropagated in the same pass.
A stock MLP takes one numpy pass in its own dtype (:mod:`fairbench.optimality_mlp`: the numpy
oracle's maths, per-row slopes summed set by set); any other model goes through
``torch.autograd.grad`` set by set. Neither goes through the oracle, so no sampling stream,
counter or gradient buffer of the training is touched and every other trajectory column is
unchanged. A problem without group statistics (``problem=weight_norm``) logs NaN in both
columns.

Many groups. Beyond :data:`~fairbench.algorithms.base.PER_CONSTRAINT_STATE_LIMIT` cells (where
the trajectory summarises its per-constraint columns), the per-set gradients and the (m, n)
Jacobian cost O(G P) memory and O(m G P) time per log point; with the method's multipliers the
residual is then taken in one weighted pass instead: ``grad f + J^T lam = grad sum_cells a_cell
s_cell`` with ``a = pi + (dc/ds)^T lam`` (the loss term's group shares ``pi`` plus the
multipliers mapped to the cells), one forward and one backward over the rows with per-row
weights ``a_cell / n_cell`` (the same quantity, summed in another order; a rate statistic's
cell values, which ``dc/ds`` depends on, take one more forward pass first). A stock MLP takes
it in numpy (:func:`fairbench.optimality_mlp.weighted_gradient`), any other model through
autograd. Least-squares multipliers need J: beyond the limit a method without multipliers logs
NaN in both columns.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from fairbench.constraint_columns import capped
from fairbench.optimality_mlp import SetGradients, mlp_arrays, row_values, weighted_gradient
from fairbench.problems.constraints import GroupConstraints
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.features import CompactTensor
from fairbench.problems.statistics import cell_rows, row_values_torch

COLUMNS = ("train_stationarity", "train_complementarity")
#: rows made dense at once for a set's gradient when the features are compact one-hot ones
COMPACT_CHUNK_ROWS = 16384


def nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``argmin_{x >= 0} ||A x - b||`` by Lawson and Hanson's active-set algorithm (NNLS)."""
    n = A.shape[1]
    x, passive = np.zeros(n), np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(float).eps * max(A.shape) * max(np.abs(A).sum(axis=0).max(initial=0.0), 1.0)
    w = A.T @ (b - A @ x)
    for _ in range(3 * n + 1):
        if passive.all() or not (w[~passive] > tol).any():
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            bad = passive & (z <= tol)
            alpha = np.min(x[bad] / np.maximum(x[bad] - z[bad], np.finfo(float).tiny))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
            if not passive.any():
                break
        w = A.T @ (b - A @ x)
    return x


def least_squares_multipliers(g: np.ndarray, J: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``argmin_{lam >= 0} ||g + J^T lam||^2 + ||c * lam||^2`` (see the module doc)."""
    m = len(c)
    if m == 0:
        return np.zeros(0)
    A = np.vstack([np.asarray(J, dtype=np.float64).T, np.diag(np.asarray(c, dtype=np.float64))])
    b = np.concatenate([-np.asarray(g, dtype=np.float64), np.zeros(m)])
    return nnls(A, b)


def measures(g: np.ndarray, J: np.ndarray, c: np.ndarray, multipliers: np.ndarray | None) -> dict[str, float]:
    """``{"train_stationarity", "train_complementarity"}`` of gradient ``g`` (n,), Jacobian ``J``
    (m, n) and constraint values ``c`` (m,), with ``multipliers`` (m,) or, when ``None``, the
    least-squares multipliers. NaN when any input is not finite (a diverged iterate)."""
    g, J, c = (np.asarray(a, dtype=np.float64) for a in (g, J, c))
    if not (np.isfinite(g).all() and np.isfinite(J).all() and np.isfinite(c).all()):
        return dict.fromkeys(COLUMNS, math.nan)
    lam = least_squares_multipliers(g, J, c) if multipliers is None else np.asarray(multipliers, dtype=np.float64)
    if not np.isfinite(lam).all():
        return dict.fromkeys(COLUMNS, math.nan)
    residual = g + J.T @ lam if len(c) else g
    return {"train_stationarity": float(np.linalg.norm(residual)),
            "train_complementarity": float(np.abs(lam * c).sum())}


def method_multipliers(algo, n_constraints: int, index: int | None) -> np.ndarray | None:
    """The algorithm's multipliers for seed ``index`` of a stack (``None``: a single seed), or
    ``None`` when it keeps none for these ``n_constraints`` constraints."""
    lam = getattr(algo, "multipliers", None)
    if lam is None:
        return None
    lam = np.asarray(lam, dtype=np.float64)
    if index is not None and lam.ndim == 2:
        lam = lam[index]
    return lam.copy() if lam.shape == (n_constraints,) else None


class TrainOptimality:
    """The optimality columns of a model on one split (the training split) with ``bound``'s
    constraints: :meth:`derivatives` gives ``(grad f, J)``, :meth:`columns` the row entries."""

    def __init__(self, split: TensorSplit, bound: GroupConstraints):
        self.split, self.bound = split, bound
        #: the constraints' statistic (``None``: no group statistics, as with weight norms)
        self.statistic = getattr(bound, "statistic", None)
        n_groups = 0 if self.statistic is None else bound.n_groups
        group = split.group.numpy()
        self.rows = [torch.from_numpy(np.flatnonzero(group == g)) for g in range(n_groups)]
        self.weights = np.array([len(r) for r in self.rows], dtype=np.float64) / max(len(group), 1)
        self.cells = None  # the statistic's cells' rows, where it is not the groups' loss
        if self.statistic not in (None, "loss"):
            self.cells = [torch.from_numpy(rows) for rows in
                          cell_rows(group, split.y.numpy(), n_groups, self.statistic)]
        self._X: dict[torch.dtype, torch.Tensor] = {}
        self._sets: SetGradients | None = None

    def set_gradients(self) -> SetGradients:
        """The numpy pass over the split (:mod:`fairbench.optimality_mlp`), built on first use:
        pieces are the groups, or the (group, label) rows where the statistic has cells."""
        if self._sets is None:
            group, y = self.split.group.numpy(), self.split.y.numpy()
            groups = [rows.numpy() for rows in self.rows]
            if self.cells is None:
                pieces, cells = groups, None
            else:
                positive = y > 0.5
                pieces = [np.flatnonzero((group == g) & (positive == label))
                          for g in range(len(groups)) for label in (False, True)]
                cells = [rows.numpy() for rows in self.cells]
            self._sets = SetGradients(self.split.X, y, pieces, groups, cells)
        return self._sets

    def features(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._X:
            self._X[dtype] = self.split.X if self.split.X.dtype == dtype else self.split.X.to(dtype)
        return self._X[dtype]

    def derivatives(self, model: nn.Module, group_losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(grad f, J)`` at the model's parameters (float64, in the order of the oracle's flat
        vector: ``model.parameters()`` that require a gradient). ``group_losses`` are the
        split's per-group mean losses (the evaluation's), where ``abs`` constraints take their sign.
        A stock MLP goes through one numpy pass (:mod:`fairbench.optimality_mlp`), any other
        model through autograd (:meth:`autograd_derivatives`); the two agree to rounding."""
        layers = mlp_arrays(model)
        if layers is None:
            return self.autograd_derivatives(model, group_losses)
        loss_grads, mapping, set_grads = self.numpy_parts(layers, group_losses)
        return self.weights @ loss_grads, mapping @ set_grads

    def numpy_parts(self, layers, group_losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(group loss gradients (G, P), M, set gradients (S, P))`` of the numpy pass, with
        ``grad f = weights @ group loss gradients`` and ``J = M @ set gradients`` (the sets: the
        groups, or the statistic's cells)."""
        loss_grads, stats, cell_grads = self.set_gradients().derivatives(layers, self.statistic,
                                                                          self.bound.spec.temperature)
        if cell_grads is None:
            return loss_grads, self.bound.jacobian_map(np.asarray(group_losses)), loss_grads
        return loss_grads, self.bound.jacobian_map(stats), cell_grads

    def autograd_derivatives(self, model: nn.Module, group_losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`derivatives` by ``torch.autograd.grad``, set by set (any model)."""
        params = [p for p in model.parameters() if p.requires_grad]
        X = self.features(params[0].dtype)
        y = self.split.y.to(params[0].dtype)

        def gradients(sets, statistic):
            """Per set of rows: the mean of the statistic's per-row quantity and its gradient."""
            values, grads = np.zeros(len(sets)), np.zeros((len(sets), sum(p.numel() for p in params)))
            with torch.enable_grad():
                for i, rows in enumerate(sets):
                    if not len(rows):
                        continue  # an empty group's (cell's) statistic is 0 (as in the evaluation)
                    # compact features: a large set in chunks of rows made dense (the float32
                    # sum of a set's mean then runs chunk by chunk)
                    chunks = ([rows] if not isinstance(X, CompactTensor) or len(rows) <= COMPACT_CHUNK_ROWS
                              else torch.split(rows, COMPACT_CHUNK_ROWS))
                    for k, chunk in enumerate(chunks):
                        z = model(X[chunk]).reshape(-1)
                        value = row_values_torch(statistic, z, y[chunk], self.bound.spec.temperature)
                        value = value.mean() if len(chunks) == 1 else value.sum() / len(rows)
                        parts = torch.autograd.grad(value, params, allow_unused=True)
                        grad = torch.cat([(torch.zeros_like(p) if d is None else d).reshape(-1)
                                          for p, d in zip(params, parts)]).double().numpy()
                        values[i] = float(value.detach()) + (values[i] if k else 0.0)
                        grads[i] = grad + grads[i] if k else grad
            return values, grads

        _, loss_grads = gradients(self.rows, "loss")
        if self.cells is None:
            return self.weights @ loss_grads, self.bound.jacobian_map(np.asarray(group_losses)) @ loss_grads
        stats, cell_grads = gradients(self.cells, self.statistic)
        return self.weights @ loss_grads, self.bound.jacobian_map(stats) @ cell_grads

    def columns(self, model: nn.Module, group_losses: np.ndarray, constraints: np.ndarray,
                multipliers: np.ndarray | None) -> dict[str, float]:
        """The row's ``train_stationarity`` and ``train_complementarity`` (``constraints``: the
        logged ``train_c<j>``; ``multipliers``: the method's, or ``None`` for least squares)."""
        if self.statistic is None or not np.isfinite(group_losses).all():
            return dict.fromkeys(COLUMNS, math.nan)  # (a problem without group statistics: weight norms)
        many = capped(len(self.rows) if self.cells is None else len(self.cells))
        layers = mlp_arrays(model)
        if many or (multipliers is not None and layers is not None):
            # the method's multipliers: only the residual grad f + J^T lam is needed, not J itself
            if multipliers is None or not (np.isfinite(constraints).all() and np.isfinite(multipliers).all()):
                return dict.fromkeys(COLUMNS, math.nan)
            lam = np.asarray(multipliers, dtype=np.float64)
            if many:
                residual = self.lagrangian_gradient(model, group_losses, lam)
            else:
                loss_grads, mapping, set_grads = self.numpy_parts(layers, group_losses)
                residual = self.weights @ loss_grads + (mapping.T @ lam) @ set_grads
            if not np.isfinite(residual).all():
                return dict.fromkeys(COLUMNS, math.nan)
            return {"train_stationarity": float(np.linalg.norm(residual)),
                    "train_complementarity": float(np.abs(lam * np.asarray(constraints)).sum())}
        g, J = self.derivatives(model, group_losses)
        return measures(g, J, constraints, multipliers)

    def lagrangian_gradient(self, model: nn.Module, group_losses: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``grad f + J^T lam`` in one weighted forward and backward pass (module doc, "Many
        groups"): per-row weights ``a_cell / n_cell`` on the BCE (the groups) and, for a rate
        statistic, on its per-row quantity (the cells). A stock MLP takes the numpy pass, any
        other model autograd."""
        layers = mlp_arrays(model)
        group = self.split.group.numpy()
        sizes = np.array([len(r) for r in self.rows], dtype=np.float64)
        per_row = (self.weights / np.maximum(sizes, 1.0))[group]  # grad f: the groups' shares
        if self.cells is None:
            per_row = per_row + ((self.bound.jacobian_map(np.asarray(group_losses)).T @ lam)
                                 / np.maximum(sizes, 1.0))[group]
            weights = {"loss": per_row}
        else:
            values = self._row_values(model, layers)
            stats = np.array([values[rows.numpy()].mean() if len(rows) else 0.0 for rows in self.cells])
            mapped = self.bound.jacobian_map(stats).T @ lam
            on_cells = np.zeros(len(group))
            for rows, a in zip(self.cells, mapped):
                if len(rows):
                    on_cells[rows.numpy()] += a / len(rows)
            weights = {"loss": per_row, self.statistic: on_cells}
        if layers is not None:
            return weighted_gradient(layers, self.split.X, self.split.y.numpy(), weights,
                                     self.bound.spec.temperature)
        return self._autograd_weighted(model, weights)

    def _chunks(self, X) -> list:
        """The row ranges of one pass: all rows at once, or chunks of compact features."""
        n = len(self.split.group)
        if not isinstance(X, CompactTensor) or n <= COMPACT_CHUNK_ROWS:
            return [slice(None)]
        return [slice(a, min(a + COMPACT_CHUNK_ROWS, n)) for a in range(0, n, COMPACT_CHUNK_ROWS)]

    def _row_values(self, model: nn.Module, layers) -> np.ndarray:
        """The statistic's per-row quantity on every row (float64), forward only."""
        if layers is not None:
            return row_values(layers, self.split.X, self.split.y.numpy(), self.statistic,
                              self.bound.spec.temperature)
        dtype = next(p for p in model.parameters() if p.requires_grad).dtype
        X, y = self.features(dtype), self.split.y.to(dtype)
        with torch.no_grad():
            return np.concatenate([row_values_torch(self.statistic, model(X[rows]).reshape(-1), y[rows],
                                                    self.bound.spec.temperature).double().numpy()
                                   for rows in self._chunks(X)])

    def _autograd_weighted(self, model: nn.Module, weights: dict[str, np.ndarray]) -> np.ndarray:
        """``grad sum_i sum_s weights[s][i] q_s(z_i)`` by autograd (chunks of compact features)."""
        params = [p for p in model.parameters() if p.requires_grad]
        X = self.features(params[0].dtype)
        y = self.split.y.to(params[0].dtype)
        grad = np.zeros(sum(p.numel() for p in params))
        with torch.enable_grad():
            for rows in self._chunks(X):
                z = model(X[rows]).reshape(-1)
                total = sum((torch.from_numpy(w[rows]).to(z.dtype)
                             * row_values_torch(statistic, z, y[rows], self.bound.spec.temperature)).sum()
                            for statistic, w in weights.items())
                parts = torch.autograd.grad(total, params, allow_unused=True)
                grad += torch.cat([(torch.zeros_like(p) if d is None else d).reshape(-1)
                                   for p, d in zip(params, parts)]).double().numpy()
        return grad
