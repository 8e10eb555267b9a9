"""Stochastic gradient descent: the baseline without fairness constraints."""

from __future__ import annotations

from fairbench.algorithms.base import Algorithm
from fairbench.errors import check_positive


class SGD(Algorithm):
    """Plain minibatch SGD on the objective (the paper's baseline, batch 8, lr 5e-3).

    Update rule, per iteration k with a fresh minibatch xi_k of ``batch_size`` rows::

        x_{k+1} = x_k - lr * grad f(x_k; xi_k)

    Constraints, if the problem has any, are ignored (they are still reported). On a
    ``problem=penalized`` run ``f`` is the penalized objective, which makes this penalized
    SGD (paper eq. 13).
    """

    def __init__(self, lr: float, batch_size: int):
        check_positive("algo.lr", lr)
        check_positive("algo.batch_size", batch_size, integer=True)
        self.lr, self.batch_size = float(lr), int(batch_size)

    def step(self) -> None:
        oracle = self.oracle
        _, g = oracle.objective(oracle.sample_objective(self.batch_size), grad=True)
        oracle.x -= self.lr * g
