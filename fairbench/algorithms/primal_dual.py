"""Shared pieces of the Lagrangian primal–dual methods (PBM, iALM, nuPI, GDA, extragradient).

Each such method, per iteration, draws an objective minibatch ``zeta`` (``batch_size`` rows,
objective stream) and a balanced constraint batch ``xi`` (``per_group`` rows of every group,
constraint stream 0), forms the gradient in ``x`` of a Lagrangian-type surrogate
``f(x; zeta) + sum_j phi_j(c_j(x; xi))`` by one backward pass (``lagrangian_grad`` with the
weights ``w_j = phi_j'(c_j)``), updates its multipliers from ``c(x; xi)`` and hands the primal
gradient to its :class:`~fairbench.algorithms.primal.PrimalStep` (``primal=sgd|adam``). The
multipliers are ``self.multipliers`` (the trajectory's ``lambda_<j>``); the output iterate is
:mod:`fairbench.algorithms.output`'s.
"""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.output import check_output
from fairbench.algorithms.primal import PrimalStep
from fairbench.errors import check_positive


class PrimalDual(Algorithm):
    """Base of the Lagrangian primal–dual methods: the primal optimizer, batches, output."""

    needs_constraints = True

    def _init_primal_dual(self, primal: str, lr: float, beta1: float, beta2: float, eps: float,
                          weight_decay: float, batch_size: int, per_group: int, output: str,
                          tail_fraction: float) -> None:
        self._primal = PrimalStep(primal, lr, beta1, beta2, eps, weight_decay)
        check_positive("algo.batch_size", batch_size, integer=True)
        check_positive("algo.per_group", per_group, integer=True)
        check_output(output, tail_fraction)
        self.primal, self.lr = primal, float(lr)
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)
        self.batch_size, self.per_group = int(batch_size), int(per_group)
        self.output, self.tail_fraction = output, float(tail_fraction)

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.check_per_group("algo.per_group", self.per_group)
        self._primal.reset(oracle.x)
        self.multipliers = np.zeros(oracle.n_constraints, dtype=oracle.x.dtype)

    def _batches(self):
        oracle = self.oracle
        return oracle.sample_objective(self.batch_size), oracle.sample_constraints(self.per_group, stream=0)

    def primal_step(self, g: np.ndarray) -> None:
        self._primal.step(self.oracle.x, g)

    def state(self) -> dict[str, float]:
        return {f"lambda_{j}": float(v) for j, v in enumerate(self.multipliers)}
