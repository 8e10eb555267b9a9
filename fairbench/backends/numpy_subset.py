"""k of m constraints per step on the numpy (and compiled) oracle (``problem.constraints_per_step``).

The autograd :class:`~fairbench.problems.fairness.FairnessOracle` defines the sampled interface
(:mod:`fairbench.problems.constraint_sampling`, docs/scale.md): ``draw_constraint_subset``,
``sample_constraints(per_group, stream, subset=S)``, ``constraints(xi, jac)`` of the k
constraints of S and ``lagrangian_grad(zeta, xi, w_S)``. :class:`SubsetSteps` gives the numpy
oracles the same calls on the numpy MLP pass of :class:`~fairbench.backends.numpy_mlp.NumpyMLPMath`,
with the same draws (the rows come from the same streams, cell by cell in ``S.cells`` order).

A subset batch holds ``pg`` rows of each of the ``K`` cells S involves (at most 2k, plus the
overall cells of ``vs_all``), so every array below has O(k) rows:

- cell statistics ``s_c = (1/pg) sum_{i in c} q_i`` (``q`` the statistic's per-row quantity)
  and ``c_S = form(sign (s[first] - s[second])) - delta`` (:meth:`ConstraintIndex.values`);
- ``lagrangian_grad``: with ``w = weights(c_S)`` and ``D = dc_S/ds`` (k, K), the row weight of a
  row of cell c is ``(w^T D)_c / pg`` times its slope ``dq/dz``; the objective rows get
  ``(sigmoid(z) - y) / B``; one backward pass over all rows gives ``grad f + sum_j w_j grad c_j``;
- ``constraints(jac=True)``: one backward pass per cell (its rows only) gives the K statistic
  gradients, and ``J_S = D @ ds/dx`` (k, n).

Nothing here touches an (m, .) array: a step costs O(k) in rows, cells and Jacobian rows. The
compiled oracle uses these numpy passes for subset batches (its kernels evaluate all G groups).
"""

from __future__ import annotations

import numpy as np

from fairbench.backends.numpy_mlp import NumpyMLPMath, _joined_rows, _loss_slopes, _rows
from fairbench.problems.base import Batch, Weights
from fairbench.problems.constraint_sampling import ConstraintSubset
from fairbench.problems.statistics import row_slopes_np, row_values_np


def is_subset(batch: Batch | None) -> bool:
    """Whether ``batch`` was drawn for a constraint subset."""
    return batch is not None and "subset" in batch.extra


class SubsetSteps:
    """The sampled-constraint calls of a numpy oracle (a mixin of
    :class:`~fairbench.backends.numpy_oracle.NumpyMLPOracle`; module doc)."""

    def _sample_subset(self, per_group: int, stream: int, subset: ConstraintSubset) -> Batch:
        rows = self._subset_rows(per_group, stream, subset)
        return Batch(len(rows), rows, per_group=per_group, extra={"subset": subset})

    def _subset_forward(self, rows: np.ndarray):
        """Logits and layer inputs of the numpy pass (also on the compiled oracle)."""
        return NumpyMLPMath._forward(self, self._X[rows])

    def _subset_stats(self, z: np.ndarray, y: np.ndarray, batch: Batch):
        """Per-row quantities, cell statistics (K,) and ``c_S`` (k,) of a subset batch."""
        subset, pg = batch.extra["subset"], batch.per_group
        q = row_values_np(self._statistic, z, y, self._inv_t)
        stats = np.dot(q.reshape(len(subset.cells), pg), self._mean_vec(pg))
        d = (stats[subset.first] - stats[subset.second]) * subset.sign.astype(stats.dtype)
        c = (np.abs(d) if self._index.absolute else d) - stats.dtype.type(self._index.delta)
        return stats, c.astype(self.x.dtype)

    def _subset_constraints(self, batch: Batch, jac: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``c_S`` (k,) and, with ``jac``, ``J_S`` (k, n): one backward pass per involved cell."""
        rows, pg = _rows(batch), batch.per_group
        y = self._y[rows]
        z, hs = self._subset_forward(rows)
        stats, c = self._subset_stats(z, y, batch)
        if not jac:
            return c, None
        slopes = row_slopes_np(self._statistic, z, y, self._inv_t)
        slopes *= self._dt(1.0 / pg)
        cells = len(stats)
        stat_grads = np.stack([
            NumpyMLPMath._np_backward(self, slopes[i * pg:(i + 1) * pg], [h[i * pg:(i + 1) * pg] for h in hs])
            for i in range(cells)])
        self.counters.grad_evals += batch.size
        jmap = self._index.jacobian_map(stats.astype(np.float64), batch.extra["subset"])
        return c, (jmap @ stat_grads).astype(self.x.dtype)

    def _subset_lagrangian(self, obj_batch: Batch | None, con_batch: Batch,
                           weights: Weights) -> tuple[float, np.ndarray, np.ndarray]:
        """``f``, ``c_S`` and ``grad f + sum_{j in S} w_j grad c_j`` (one forward, one backward)."""
        n_obj, rows = _joined_rows(None if obj_batch is None else _rows(obj_batch), _rows(con_batch))
        pg, subset = con_batch.per_group, con_batch.extra["subset"]
        y = self._y[rows]
        z, hs = self._subset_forward(rows)
        stats, c = self._subset_stats(z[n_obj:], y[n_obj:], con_batch)
        w = np.asarray(weights(c) if callable(weights) else weights, dtype=np.float64)
        per_cell = (w @ self._index.jacobian_map(stats.astype(np.float64), subset)).astype(self._dt)
        per_cell *= self._dt(1.0 / pg)
        delta = np.empty_like(z)
        if n_obj:
            f = float(np.dot(self._losses_np(z[:n_obj], y[:n_obj]), self._mean_vec(n_obj)))
            delta[:n_obj] = _loss_slopes(z[:n_obj], y[:n_obj], n_obj)
        else:
            f = 0.0
        con = row_slopes_np(self._statistic, z[n_obj:], y[n_obj:], self._inv_t)
        con.reshape(len(stats), pg)[...] *= per_cell[:, None]
        delta[n_obj:] = con
        g = NumpyMLPMath._np_backward(self, delta, hs)
        self.counters.grad_evals += n_obj + con_batch.size
        return f, c, g
