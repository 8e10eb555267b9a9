"""Stochastic gradient descent: the baseline without fairness constraints."""

from __future__ import annotations

import numpy as np

from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.primal import STEP_RULES, step_size
from fairbench.errors import check_in, check_positive


class SGD(Algorithm):
    """Plain minibatch SGD on the objective (the paper's baseline, batch 8, lr 5e-3).

    Update rule, per iteration k with a fresh minibatch xi_k of ``batch_size`` rows::

        x_{k+1} = x_k - lr_k * grad f(x_k; xi_k)

    with ``lr_k = lr`` (``lr_rule=constant``) or ``lr / sqrt(k + 1)`` (``lr_rule=sqrt``).

    Constraints, if the problem has any, are ignored (they are still reported). On a
    ``problem=penalized`` run ``f`` is the penalized objective, which makes this penalized
    SGD (paper eq. 13).
    """

    def __init__(self, lr: float, batch_size: int, lr_rule: str):
        check_positive("algo.lr", lr)
        check_positive("algo.batch_size", batch_size, integer=True)
        check_in("algo.lr_rule", lr_rule, STEP_RULES)
        self.lr, self.batch_size, self.lr_rule = float(lr), int(batch_size), lr_rule

    def setup(self, oracle, rng: np.random.Generator) -> None:
        super().setup(oracle, rng)
        self.k = 0

    def step(self) -> None:
        oracle = self.oracle
        _, g = oracle.objective(oracle.sample_objective(self.batch_size), grad=True)
        if self.lr_rule == "constant":
            oracle.x -= self.lr * g
        else:
            oracle.x -= step_size(self.lr_rule, self.lr, self.k) * g
        self.k += 1
