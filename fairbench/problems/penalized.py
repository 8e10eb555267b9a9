"""An oracle wrapper that turns a constrained problem into a penalized, unconstrained one.

``f_pen(x) = f(x) + weight * sum_j penalty(c_j(x))`` (paper eq. 13). Each objective batch
carries a balanced constraint batch of ``per_group`` rows per group from stream 0; the
gradient is one backward pass of ``f + sum_j weight * penalty'(c_j) c_j``.

With ``problem.constraints_per_step`` = k on the inner oracle, each objective batch carries a
uniform draw S of k constraints and rows of the cells they involve only, and the sum becomes
``(m / k) sum_{j in S}``: the same expectation as the sum over all m, at O(k) cost
(:mod:`fairbench.problems.constraint_sampling`).
"""

from __future__ import annotations

import numpy as np

from fairbench.problems.base import Batch, Oracle, Weights
from fairbench.problems.penalty import penalty_slope, penalty_value


class PenalizedOracle(Oracle):
    """Penalized view of ``inner``; it exposes no constraints (``n_constraints == 0``)."""

    n_constraints = 0
    constraint_names: list[str] = []

    def __init__(self, inner: Oracle, weight: float, penalty: str, per_group: int, delta: float):
        self.inner, self.weight, self.penalty, self.per_group, self.delta = inner, weight, penalty, per_group, delta
        self.x, self.counters = inner.x, inner.counters

    @property
    def n_groups(self) -> int:
        return self.inner.n_groups

    @property
    def smallest_group(self) -> int:
        return self.inner.smallest_group

    def sample_objective(self, size: int) -> Batch:
        obj = self.inner.sample_objective(size)
        if getattr(self.inner, "constraints_per_step", None) is None:
            con = self.inner.sample_constraints(self.per_group, stream=0)
            return Batch(obj.size + con.size, (obj, con))
        subset = self.inner.draw_constraint_subset(0)
        con = self.inner.sample_constraints(self.per_group, stream=0, subset=subset)
        return Batch(obj.size + con.size, (obj, con), extra={"scale": subset.scale})

    def sample_constraints(self, per_group: int, stream: int = 0) -> Batch:
        # stream 0 feeds the penalty; hand out the others so they stay independent of it
        return self.inner.sample_constraints(per_group, stream + 1)

    def objective(self, batch: Batch, grad: bool = False) -> tuple[float, np.ndarray | None]:
        obj, con = batch.data
        weight = self.weight * batch.extra.get("scale", 1.0)
        if not grad:
            f, _ = self.inner.objective(obj)
            c, _ = self.inner.constraints(con)
            return f + weight * penalty_value(self.penalty, c, self.delta), None
        f, c, g = self.inner.lagrangian_grad(
            obj, con, lambda c: weight * penalty_slope(self.penalty, c, self.delta)
        )
        return f + weight * penalty_value(self.penalty, c, self.delta), g

    def constraints(self, batch: Batch, jac: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        return np.zeros(0, self.x.dtype), (np.zeros((0, self.x.size), self.x.dtype) if jac else None)

    def lagrangian_grad(self, obj_batch: Batch | None, con_batch: Batch, weights: Weights):
        f, g = self.objective(obj_batch, grad=True) if obj_batch is not None else (0.0, np.zeros_like(self.x))
        return f, np.zeros(0, self.x.dtype), g
